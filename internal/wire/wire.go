// Package wire is the versioned message schema shared by facewatch's stages:
// the NATS subjects, the envelope (a small JSON metadata block plus raw bytes
// for bulky payloads), and the validation every stage applies to what it
// receives. It encodes and checks messages; it never talks to NATS itself
// and holds no state.
package wire

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
)

// Version is the schema version written into every envelope.
//
// Compatibility rule: a receiver accepts Version and PrevVersion (the one
// before), so that during a rolling upgrade a consumer upgraded first still
// reads what not-yet-upgraded publishers send. A version change may
// therefore only add optional fields or narrow what a publisher sends; a
// receiver of version N must decode every N-1 message. A message of any
// other version (a newer one from a publisher upgraded before its
// consumers, or one older than N-1) is refused with ErrVersion, and the
// consumers that matter keep it in the dead-letter stream rather than
// lose it. Upgrade consumers before publishers: alert, then match, then
// detect, then camera.
//
// Version 2: a Track carries no face crop (the matcher asks the detect
// stage for the crop of a hit only; docs/privacy.md); a v1 Track's crop is
// still accepted.
const Version = 2

// PrevVersion is the previous schema version, still accepted.
const PrevVersion = Version - 1

// ErrVersion is wrapped (with ErrMalformed) by the error for a message of a
// schema version this build does not accept.
var ErrVersion = errors.New("unsupported schema version")

// HeaderKind and HeaderVersion are NATS header names carried beside the
// body so that tools (and the dead-letter consumer) can tell what a message
// is without decoding it.
const (
	HeaderKind    = "Facewatch-Kind"
	HeaderVersion = "Facewatch-Version"
	// HeaderReason is set on dead letters: why the message was refused.
	HeaderReason = "Facewatch-Reason"
	// HeaderStage is set on dead letters: which stage refused it.
	HeaderStage = "Facewatch-Stage"
	// HeaderBody is set on dead letters whose body was not kept (a frame
	// or a track report may hold the face of anyone, strangers included,
	// and dead letters are kept on disk): what the body was.
	HeaderBody = "Facewatch-Body"
	// HeaderMsgID is set on dead letters: the refused message's
	// JetStream message ID, for a replay.
	HeaderMsgID = "Facewatch-Msg-Id"
)

// Kind names a message type.
type Kind string

// The message kinds.
const (
	KindFrame  Kind = "frame"
	KindHit    Kind = "hit"
	KindStatus Kind = "camera_status"
)

// JetStream stream names. Their subjects, retention and limits are
// declared in internal/natsbus (topology.go), the one place that creates
// them.
const (
	// TracksStream is the work queue that carries Track messages from
	// detect+embed to the matchers, so that a matcher that dies
	// mid-decision gets its tracks redelivered.
	TracksStream = "FACEWATCH_TRACKS"
	// HitsStream carries hits from the matchers to the alert service.
	HitsStream = "FACEWATCH_HITS"
	// GalleryStream carries gallery changes to every matcher's index.
	GalleryStream = "FACEWATCH_GALLERY"
	// AuditStream keeps signed checkpoints of the audit logs' heads, a
	// copy the databases' writers cannot alter (internal/audit).
	AuditStream = "FACEWATCH_AUDIT"
	// DeadLetterStream keeps refused messages with their reason, bounded,
	// for `facewatch deadletter list`.
	DeadLetterStream = "FACEWATCH_DEADLETTER"
)

// Subject prefixes. Camera IDs and watchlist IDs are single subject tokens
// (letters, digits, '-' and '_'), checked by ValidToken.
const (
	Prefix         = "facewatch"
	GalleryEvents  = Prefix + ".gallery.events"
	DeadLetterRoot = Prefix + ".deadletter"
	HitsWildcard   = Prefix + ".hits.>"
	StatusWildcard = Prefix + ".cameras.*.status"
	FramesWildcard = Prefix + ".frames.*"
	TracksWildcard = Prefix + ".tracks.*"
	AuditWildcard  = Prefix + ".audit.checkpoints.*"
	// DeadLetterWildcard covers every stage's dead letters.
	DeadLetterWildcard = DeadLetterRoot + ".*"
)

// FramesSubject carries frames of one camera (only when detection runs on
// another host).
func FramesSubject(camera string) string { return Prefix + ".frames." + camera }

// TracksSubject carries one camera's track reports (Track messages, on the
// TracksStream work queue).
func TracksSubject(camera string) string { return Prefix + ".tracks." + camera }

// AuditCheckpointSubject carries the signed checkpoints of one audit log
// ("alert", "gallery").
func AuditCheckpointSubject(log string) string { return Prefix + ".audit.checkpoints." + log }

// HitsSubject carries hits against one watchlist.
func HitsSubject(watchlist string) string { return Prefix + ".hits." + watchlist }

// StatusSubject carries a camera's health.
func StatusSubject(camera string) string { return Prefix + ".cameras." + camera + ".status" }

// DeadLetterSubject is where a stage sends what it refused.
func DeadLetterSubject(stage string) string { return DeadLetterRoot + "." + stage }

var token = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidToken reports whether s can be one subject token (a camera or
// watchlist ID).
func ValidToken(s string) bool { return token.MatchString(s) }

// ErrMalformed is wrapped by every decoding and validation error.
var ErrMalformed = errors.New("malformed message")

// MaxMeta bounds the JSON metadata block.
const MaxMeta = 64 << 10

// Encode builds an envelope: a 4-byte big-endian length, the JSON
// metadata, then the raw payload.
func Encode(meta any, payload []byte) ([]byte, error) {
	m, err := json.Marshal(meta)
	if err != nil {
		return nil, fmt.Errorf("encoding message metadata: %w", err)
	}
	if len(m) > MaxMeta {
		return nil, fmt.Errorf("encoding message metadata: %d bytes exceeds %d", len(m), MaxMeta)
	}
	out := make([]byte, 4+len(m)+len(payload))
	binary.BigEndian.PutUint32(out, uint32(len(m)))
	copy(out[4:], m)
	copy(out[4+len(m):], payload)
	return out, nil
}

// Decode splits an envelope, checks its schema version (the metadata's "v"
// field, before anything else, so that a newer message is refused for its
// version and not for a field this build does not know), decodes the
// metadata into meta (unknown fields refused) and returns the payload,
// which aliases data.
func Decode(data []byte, meta any) ([]byte, error) {
	v, err := PeekVersion(data)
	if err != nil {
		return nil, err
	}
	if err := checkVersion(v); err != nil {
		return nil, err
	}
	return decode(data, meta)
}

// PeekVersion returns the schema version of an envelope without decoding
// the rest of its metadata.
func PeekVersion(data []byte) (int, error) {
	if len(data) < 4 {
		return 0, fmt.Errorf("%w: %d bytes is shorter than the envelope header", ErrMalformed, len(data))
	}
	n := binary.BigEndian.Uint32(data)
	if n > MaxMeta || int(n) > len(data)-4 {
		return 0, fmt.Errorf("%w: metadata length %d does not fit in %d bytes", ErrMalformed, n, len(data))
	}
	var v struct {
		V *int `json:"v"`
	}
	if err := json.Unmarshal(data[4:4+n], &v); err != nil {
		return 0, fmt.Errorf("%w: metadata: %v", ErrMalformed, err)
	}
	if v.V == nil {
		return 0, malformed("metadata has no schema version")
	}
	return *v.V, nil
}

func decode(data []byte, meta any) ([]byte, error) {
	if len(data) < 4 {
		return nil, fmt.Errorf("%w: %d bytes is shorter than the envelope header", ErrMalformed, len(data))
	}
	n := binary.BigEndian.Uint32(data)
	if n > MaxMeta || int(n) > len(data)-4 {
		return nil, fmt.Errorf("%w: metadata length %d does not fit in %d bytes", ErrMalformed, n, len(data))
	}
	dec := json.NewDecoder(strings.NewReader(string(data[4 : 4+n])))
	dec.DisallowUnknownFields()
	if err := dec.Decode(meta); err != nil {
		return nil, fmt.Errorf("%w: metadata: %v", ErrMalformed, err)
	}
	return data[4+n:], nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// checkVersion refuses envelopes of a schema version other than Version
// and PrevVersion.
func checkVersion(v int) error {
	switch {
	case v == Version || v == PrevVersion:
		return nil
	case v > Version:
		return fmt.Errorf("%w: %w: schema version %d is newer than this build accepts (%d..%d); upgrade this consumer", ErrMalformed, ErrVersion, v, PrevVersion, Version)
	default:
		return fmt.Errorf("%w: %w: schema version %d is older than this build accepts (%d..%d)", ErrMalformed, ErrVersion, v, PrevVersion, Version)
	}
}

// finite reports whether every element is a finite number.
func finite(v []float32) bool {
	for _, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return false
		}
	}
	return true
}
