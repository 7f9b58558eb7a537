package match

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Dim is the length of a face descriptor (dlib's ResNet v1).
const Dim = 128

// Vector is one face descriptor. It is an alias of the plain array type so
// that embed.Vector values assign to it without conversion.
type Vector = [Dim]float32

// ModelID names the network that computed a descriptor. Descriptors of
// different models are never compared.
type ModelID struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
}

func (m ModelID) String() string {
	h := m.SHA256
	if len(h) > 12 {
		h = h[:12]
	}
	return m.Name + "@" + h
}

// IsZero reports whether m names no model.
func (m ModelID) IsZero() bool { return m.Name == "" && m.SHA256 == "" }

// Kind is what a watchlist is for.
type Kind string

// The kinds of watchlist.
const (
	KindMissing Kind = "missing"
	KindWanted  Kind = "wanted"
	KindOther   Kind = "other"
)

// ParseKind checks a kind given by a user.
func ParseKind(s string) (Kind, error) {
	switch k := Kind(strings.ToLower(strings.TrimSpace(s))); k {
	case KindMissing, KindWanted, KindOther:
		return k, nil
	}
	return "", fmt.Errorf("watchlist kind %q is not one of missing, wanted, other", s)
}

// Watchlist is one list of people to look for. Its threshold, when set,
// overrides the configured default; it should come from `facewatch eval`
// for the list's size.
type Watchlist struct {
	ID         int64  `json:"id"`
	Name       string `json:"name"`
	Kind       Kind   `json:"kind"`
	Priority   int    `json:"priority"`
	Owner      string `json:"owner"`
	LegalBasis string `json:"legal_basis"`
	// Expires is when the whole list stops matching; zero means never.
	Expires time.Time `json:"expires,omitzero"`
	// Threshold is the Euclidean distance under which a face matches an
	// identity of this list; 0 means config.Match.DefaultThreshold.
	Threshold float64 `json:"threshold"`
	// SecondReviewer requires a second human to confirm an alert.
	SecondReviewer bool      `json:"second_reviewer"`
	Created        time.Time `json:"created"`
	// Version is the gallery event sequence of the last change.
	Version int64 `json:"version"`
}

// Active reports whether the list matches at time t.
func (w *Watchlist) Active(t time.Time) bool {
	return w.Expires.IsZero() || t.Before(w.Expires)
}

// Identity is one person on a watchlist.
type Identity struct {
	ID          int64     `json:"id"`
	WatchlistID int64     `json:"watchlist_id"`
	Name        string    `json:"name"`
	Notes       string    `json:"notes,omitempty"`
	ExternalRef string    `json:"external_ref,omitempty"`
	Expires     time.Time `json:"expires,omitzero"`
	Created     time.Time `json:"created"`
	Version     int64     `json:"version"`
}

// Active reports whether the identity matches at time t.
func (i *Identity) Active(t time.Time) bool {
	return i.Expires.IsZero() || t.Before(i.Expires)
}

// Enrolment is one enrolled photo of an identity.
type Enrolment struct {
	ID          int64  `json:"id"`
	IdentityID  int64  `json:"identity_id"`
	PhotoSHA256 string `json:"photo_sha256"`
	// Chip is the aligned 150x150 face as PNG.
	Chip       []byte    `json:"-"`
	Vector     Vector    `json:"-"`
	Model      ModelID   `json:"model"`
	Quality    float64   `json:"quality"`
	EnrolledBy string    `json:"enrolled_by"`
	Enrolled   time.Time `json:"enrolled"`
}

// Sentinel errors callers branch on with errors.Is.
var (
	ErrNotFound      = errors.New("not found")
	ErrExists        = errors.New("already exists")
	ErrInvalid       = errors.New("invalid")
	ErrModelMismatch = errors.New("descriptor model does not match the gallery's")
	ErrExpired       = errors.New("expired")
	ErrEmpty         = errors.New("empty")
	ErrNotReady      = errors.New("index not loaded yet")
)

// MaxNameRunes bounds names of watchlists and identities.
const MaxNameRunes = 200

// maxTextRunes bounds free text (notes, owner, legal basis).
const maxTextRunes = 4000

// checkName refuses empty, over-long, invalid UTF-8 and control-character
// names. what says which name it is, for the error.
func checkName(what, s string) error {
	if strings.TrimSpace(s) == "" {
		return fmt.Errorf("%s: %w: must not be empty", what, ErrInvalid)
	}
	return checkText(what, s, MaxNameRunes, false)
}

func checkText(what, s string, maxRunes int, newlines bool) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s: %w: not valid UTF-8", what, ErrInvalid)
	}
	if n := utf8.RuneCountInString(s); n > maxRunes {
		return fmt.Errorf("%s: %w: %d characters, at most %d allowed", what, ErrInvalid, n, maxRunes)
	}
	for _, r := range s {
		if unicode.IsControl(r) && !(newlines && (r == '\n' || r == '\t')) {
			return fmt.Errorf("%s: %w: contains control character %U", what, ErrInvalid, r)
		}
	}
	return nil
}

// CheckVector refuses a descriptor that holds NaN or Inf, or is all zeros.
func CheckVector(v *Vector) error {
	var sum float64
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("descriptor: %w: element %d is %v", ErrInvalid, i, x)
		}
		sum += float64(x) * float64(x)
	}
	if sum == 0 {
		return fmt.Errorf("descriptor: %w: all zeros", ErrInvalid)
	}
	return nil
}

// EncodeVector returns v as 512 little-endian float32 bytes, the form
// descriptors take in the gallery and in messages.
func EncodeVector(v *Vector) []byte {
	b := make([]byte, 4*Dim)
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// DecodeVector parses 512 little-endian float32 bytes and checks them.
func DecodeVector(b []byte) (Vector, error) {
	var v Vector
	if len(b) != 4*Dim {
		return v, fmt.Errorf("descriptor: %w: %d bytes, want %d (%d float32)", ErrInvalid, len(b), 4*Dim, Dim)
	}
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	if err := CheckVector(&v); err != nil {
		return Vector{}, err
	}
	return v, nil
}

// Distance is the Euclidean distance between two descriptors, the measure
// dlib's thresholds are stated in.
func Distance(a, b *Vector) float64 {
	return math.Sqrt(float64(sqDist(a[:], b[:])))
}

func ms(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

func fromMS(v *int64) time.Time {
	if v == nil {
		return time.Time{}
	}
	return time.UnixMilli(*v).UTC()
}
