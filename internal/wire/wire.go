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

// Version is the schema version written into every envelope. A receiver
// refuses a message of a newer major version it does not understand.
const Version = 1

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

// Decode splits an envelope, decodes the metadata into meta (unknown fields
// refused) and returns the payload, which aliases data.
func Decode(data []byte, meta any) ([]byte, error) {
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

// checkVersion refuses envelopes from a schema this code does not know.
func checkVersion(v int) error {
	if v != Version {
		return malformed("schema version %d, want %d", v, Version)
	}
	return nil
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
