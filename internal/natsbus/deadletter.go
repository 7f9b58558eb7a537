package natsbus

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/facewatch/facewatch/internal/wire"
)

// Letter is one refused message on its way to the dead-letter stream.
type Letter struct {
	// Stage is the refusing stage (the subject's last token).
	Stage string
	// Subject is the subject the message came on; MsgID its JetStream
	// message ID, if any (kept for a replay).
	Subject string
	MsgID   string
	// Kind is what the message was meant to be (wire.Kind), if known.
	Kind wire.Kind
	Data []byte
	// KeepBody keeps Data in the letter. Leave it unset for frames and
	// track reports: they may hold the face of anyone, strangers included,
	// and dead letters are kept on disk. A letter without its body records
	// the body's size and SHA-256 (HeaderBody).
	KeepBody bool
	Reason   error
}

// HeaderSubject is set on dead letters: the subject the message came on.
const HeaderSubject = "Facewatch-Subject"

// deadLetterTimeout bounds one dead letter's trip to the stream.
const deadLetterTimeout = 5 * time.Second

// DeadLetter stores l in the dead-letter stream (wire.DeadLetterStream on
// wire.DeadLetterSubject(l.Stage)) with the reason and the original
// subject in headers, and counts it. It returns only once the stream has
// stored the letter, so that a consumer can acknowledge the refused
// message after it and lose nothing; on error the caller should leave the
// message for redelivery.
func (b *Bus) DeadLetter(ctx context.Context, l Letter) error {
	b.dlMu.Lock()
	b.dlCount[l.Stage]++
	b.dlMu.Unlock()
	b.deadLetters.WithLabelValues(l.Stage).Inc()
	m := LetterMsg(l)
	b.log.Warn("message refused", "stage", l.Stage, "subject", l.Subject, "bytes", len(l.Data), "reason", m.Header.Get(wire.HeaderReason), "body_kept", l.KeepBody)
	ctx, cancel := context.WithTimeout(ctx, deadLetterTimeout)
	defer cancel()
	if _, err := b.JS.PublishMsg(ctx, m); err != nil {
		b.log.Error("storing dead letter", "stage", l.Stage, "err", err)
		return fmt.Errorf("storing dead letter of %s: %w", l.Subject, err)
	}
	return nil
}

// LetterMsg builds the NATS message of a dead letter.
func LetterMsg(l Letter) *nats.Msg {
	why := "unknown"
	if l.Reason != nil {
		why = l.Reason.Error()
	}
	if len(why) > 1024 {
		why = why[:1024]
	}
	m := nats.NewMsg(wire.DeadLetterSubject(l.Stage))
	m.Header.Set(wire.HeaderReason, why)
	m.Header.Set(wire.HeaderStage, l.Stage)
	m.Header.Set(HeaderSubject, l.Subject)
	if l.Kind != "" {
		m.Header.Set(wire.HeaderKind, string(l.Kind))
	}
	if v, err := wire.PeekVersion(l.Data); err == nil {
		m.Header.Set(wire.HeaderVersion, strconv.Itoa(v))
	}
	if l.MsgID != "" {
		m.Header.Set(wire.HeaderMsgID, l.MsgID)
	}
	if l.KeepBody {
		m.Data = l.Data
	} else {
		sum := sha256.Sum256(l.Data)
		m.Header.Set(wire.HeaderBody, fmt.Sprintf("not kept: %d bytes, sha256 %s", len(l.Data), hex.EncodeToString(sum[:])))
	}
	return m
}

// DeadLetters returns how many messages stage has refused through this
// Bus.
func (b *Bus) DeadLetters(stage string) int64 {
	b.dlMu.Lock()
	defer b.dlMu.Unlock()
	return b.dlCount[stage]
}

// StoredLetter is a dead letter as the stream keeps it.
type StoredLetter struct {
	Seq     uint64      `json:"seq"`
	Time    time.Time   `json:"time"`
	Stage   string      `json:"stage"`
	Subject string      `json:"subject"`
	Kind    string      `json:"kind,omitempty"`
	Version string      `json:"version,omitempty"`
	MsgID   string      `json:"msg_id,omitempty"`
	Reason  string      `json:"reason"`
	Body    string      `json:"body,omitempty"` // why there is none
	Bytes   int         `json:"bytes"`
	Data    []byte      `json:"-"`
	Header  nats.Header `json:"-"`
}

// ListDeadLetters reads up to limit dead letters (the newest when there
// are more), oldest first, of stage (every stage when empty).
func ListDeadLetters(ctx context.Context, js jetstream.JetStream, stage string, limit int) ([]StoredLetter, error) {
	s, err := js.Stream(ctx, wire.DeadLetterStream)
	if err != nil {
		return nil, fmt.Errorf("opening the dead-letter stream: %w", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the dead-letter stream: %w", err)
	}
	var out []StoredLetter
	if info.State.Msgs == 0 {
		return out, nil
	}
	filter := wire.DeadLetterWildcard
	if stage != "" {
		filter = wire.DeadLetterSubject(stage)
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && ctx.Err() == nil; {
		raw, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading dead letter %d: %w", seq, err)
		}
		out = append(out, storedLetter(raw))
		if limit > 0 && len(out) > limit {
			out = out[1:]
		}
		seq = raw.Sequence + 1
	}
	return out, ctx.Err()
}

// GetDeadLetter reads one dead letter by its stream sequence.
func GetDeadLetter(ctx context.Context, js jetstream.JetStream, seq uint64) (StoredLetter, error) {
	s, err := js.Stream(ctx, wire.DeadLetterStream)
	if err != nil {
		return StoredLetter{}, fmt.Errorf("opening the dead-letter stream: %w", err)
	}
	raw, err := s.GetMsg(ctx, seq)
	if err != nil {
		return StoredLetter{}, fmt.Errorf("reading dead letter %d: %w", seq, err)
	}
	return storedLetter(raw), nil
}

func storedLetter(raw *jetstream.RawStreamMsg) StoredLetter {
	h := raw.Header
	return StoredLetter{
		Seq: raw.Sequence, Time: raw.Time.UTC(), Stage: h.Get(wire.HeaderStage), Subject: h.Get(HeaderSubject),
		Kind: h.Get(wire.HeaderKind), Version: h.Get(wire.HeaderVersion), MsgID: h.Get(wire.HeaderMsgID),
		Reason: h.Get(wire.HeaderReason), Body: h.Get(wire.HeaderBody), Bytes: len(raw.Data), Data: raw.Data, Header: h,
	}
}
