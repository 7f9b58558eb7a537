package wire

import (
	"encoding/binary"
	"fmt"
	"image"
	"math"
	"time"
)

// DescriptorDim is the length of a dlib face descriptor.
const DescriptorDim = 128

// DescriptorBytes is the size of a descriptor on the wire: 128
// little-endian float32.
const DescriptorBytes = DescriptorDim * 4

// ChipSide is the side of an aligned face chip; a chip is ChipSide² RGB
// pixels on the wire.
const ChipSide = 150

// ChipBytes is the size of an aligned chip on the wire.
const ChipBytes = ChipSide * ChipSide * 3

// MaxCrop bounds a face crop JPEG carried beside a face. With the metadata
// block and a chip it must stay under NATS's default max_payload (1 MiB); a
// face crop is tens of kilobytes.
const MaxCrop = 512 << 10

// Model identifies the network that made a descriptor. Descriptors of
// different models are never compared.
type Model struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
}

// Box is a face box in full-frame pixels.
type Box struct {
	X int `json:"x"`
	Y int `json:"y"`
	W int `json:"w"`
	H int `json:"h"`
}

// BoxOf converts an image rectangle to a Box.
func BoxOf(r image.Rectangle) Box { return Box{X: r.Min.X, Y: r.Min.Y, W: r.Dx(), H: r.Dy()} }

// FaceMeta is what every per-face message carries: where and when the face
// was seen and how good it is.
type FaceMeta struct {
	Version int       `json:"v"`
	Camera  string    `json:"camera"`
	Track   uint64    `json:"track"`
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Box     Box       `json:"box"`
	Quality float64   `json:"quality"`
	// CropLen is the length of the face crop JPEG at the end of the
	// payload (0 when none is carried).
	CropLen int `json:"crop_len"`
}

func (m *FaceMeta) validate(payload int, fixed int) error {
	if err := checkVersion(m.Version); err != nil {
		return err
	}
	if !ValidToken(m.Camera) {
		return malformed("camera %q is not a valid ID", m.Camera)
	}
	if m.Time.IsZero() {
		return malformed("time is missing")
	}
	if m.Box.W <= 0 || m.Box.H <= 0 {
		return malformed("box %dx%d is empty", m.Box.W, m.Box.H)
	}
	if math.IsNaN(m.Quality) || m.Quality < 0 || m.Quality > 1 {
		return malformed("quality %g is not in [0,1]", m.Quality)
	}
	if m.CropLen < 0 || m.CropLen > MaxCrop {
		return malformed("crop_len %d is out of range", m.CropLen)
	}
	if payload != fixed+m.CropLen {
		return malformed("payload is %d bytes, want %d", payload, fixed+m.CropLen)
	}
	return nil
}

// Face is a detected face travelling from detect to embed: its aligned
// chip and, optionally, a JPEG crop for the alert.
type Face struct {
	Meta FaceMeta
	Chip []byte // ChipBytes of RGB
	Crop []byte // JPEG, may be empty
}

// EncodeFace encodes f; the payload is the chip followed by the crop.
func EncodeFace(f Face) ([]byte, error) {
	f.Meta.Version = Version
	f.Meta.CropLen = len(f.Crop)
	if err := f.Meta.validate(len(f.Chip)+len(f.Crop), ChipBytes); err != nil {
		return nil, fmt.Errorf("encoding face: %w", err)
	}
	return Encode(f.Meta, append(append(make([]byte, 0, len(f.Chip)+len(f.Crop)), f.Chip...), f.Crop...))
}

// DecodeFace decodes and validates a face message.
func DecodeFace(data []byte) (Face, error) {
	var f Face
	p, err := Decode(data, &f.Meta)
	if err != nil {
		return Face{}, err
	}
	if err := f.Meta.validate(len(p), ChipBytes); err != nil {
		return Face{}, err
	}
	f.Chip, f.Crop = p[:ChipBytes], p[ChipBytes:]
	return f, nil
}

// DescriptorMeta is the metadata of a descriptor message.
type DescriptorMeta struct {
	FaceMeta
	Model Model `json:"model"`
}

// Descriptor is one face's descriptor travelling from embed to match.
type Descriptor struct {
	Meta   DescriptorMeta
	Vector [DescriptorDim]float32
	Crop   []byte // JPEG, may be empty
}

// EncodeDescriptor encodes d; the payload is the descriptor (128 LE
// float32) followed by the crop.
func EncodeDescriptor(d Descriptor) ([]byte, error) {
	d.Meta.Version = Version
	d.Meta.CropLen = len(d.Crop)
	if err := d.validate(DescriptorBytes + len(d.Crop)); err != nil {
		return nil, fmt.Errorf("encoding descriptor: %w", err)
	}
	p := make([]byte, DescriptorBytes+len(d.Crop))
	for i, x := range d.Vector {
		binary.LittleEndian.PutUint32(p[4*i:], math.Float32bits(x))
	}
	copy(p[DescriptorBytes:], d.Crop)
	return Encode(d.Meta, p)
}

func (d *Descriptor) validate(payload int) error {
	if err := d.Meta.FaceMeta.validate(payload, DescriptorBytes); err != nil {
		return err
	}
	if d.Meta.Model.Name == "" || len(d.Meta.Model.SHA256) != 64 {
		return malformed("model identity %q/%q is incomplete", d.Meta.Model.Name, d.Meta.Model.SHA256)
	}
	if !finite(d.Vector[:]) {
		return malformed("descriptor holds NaN or Inf")
	}
	return nil
}

// DecodeDescriptor decodes and validates a descriptor message: wrong
// length, NaN or Inf values and a missing model identity are refused.
func DecodeDescriptor(data []byte) (Descriptor, error) {
	var d Descriptor
	p, err := Decode(data, &d.Meta)
	if err != nil {
		return Descriptor{}, err
	}
	if len(p) < DescriptorBytes {
		return Descriptor{}, malformed("descriptor payload is %d bytes, want at least %d", len(p), DescriptorBytes)
	}
	for i := range d.Vector {
		d.Vector[i] = math.Float32frombits(binary.LittleEndian.Uint32(p[4*i:]))
	}
	if err := d.validate(len(p)); err != nil {
		return Descriptor{}, err
	}
	d.Crop = p[DescriptorBytes:]
	return d, nil
}

// TrackEnd tells the matcher that a track has ended, so that it decides
// once for the whole track.
type TrackEnd struct {
	Version int       `json:"v"`
	Camera  string    `json:"camera"`
	Track   uint64    `json:"track"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	// Faces is how many descriptors of the track were published, so that
	// the matcher can wait for stragglers.
	Faces int `json:"faces"`
}

// EncodeTrackEnd encodes t.
func EncodeTrackEnd(t TrackEnd) ([]byte, error) {
	t.Version = Version
	if err := t.validate(); err != nil {
		return nil, fmt.Errorf("encoding track end: %w", err)
	}
	return Encode(t, nil)
}

func (t *TrackEnd) validate() error {
	if err := checkVersion(t.Version); err != nil {
		return err
	}
	if !ValidToken(t.Camera) {
		return malformed("camera %q is not a valid ID", t.Camera)
	}
	if t.Start.IsZero() || t.End.Before(t.Start) {
		return malformed("track times %v..%v are invalid", t.Start, t.End)
	}
	if t.Faces < 0 {
		return malformed("faces %d is negative", t.Faces)
	}
	return nil
}

// DecodeTrackEnd decodes and validates a track-end message.
func DecodeTrackEnd(data []byte) (TrackEnd, error) {
	var t TrackEnd
	if _, err := Decode(data, &t); err != nil {
		return TrackEnd{}, err
	}
	return t, t.validate()
}

// FaceScore is one face of a track as the matcher saw it, kept for the
// reviewer.
type FaceScore struct {
	Time     time.Time `json:"time"`
	Distance float64   `json:"distance"`
	Quality  float64   `json:"quality"`
}

// Hit is the matcher's decision that a track is a person on a watchlist.
type Hit struct {
	Version int `json:"v"`
	// ID is the idempotency key: HitID(camera, track, identity). It is the
	// JetStream message ID, so a retried publish is not a duplicate, and
	// the alert service stores one alert per ID.
	ID            string    `json:"id"`
	Camera        string    `json:"camera"`
	Track         uint64    `json:"track"`
	Time          time.Time `json:"time"` // capture time of the best face
	Watchlist     string    `json:"watchlist"`
	WatchlistKind string    `json:"watchlist_kind"`
	Priority      int       `json:"priority"`
	// SecondReviewer is set when the list requires two reviewers.
	SecondReviewer bool   `json:"second_reviewer"`
	Identity       string `json:"identity"`
	IdentityName   string `json:"identity_name"`
	// Distance is the decided distance (lower is closer); Threshold the
	// list's threshold it was compared with; SecondDistance the best
	// distance to any other identity (0 when none).
	Distance       float64 `json:"distance"`
	Threshold      float64 `json:"threshold"`
	SecondDistance float64 `json:"second_distance"`
	Model          Model   `json:"model"`
	// EnrolledPhoto references the enrolled photo (its SHA-256) shown
	// beside the probe crop.
	EnrolledPhoto string      `json:"enrolled_photo"`
	Box           Box         `json:"box"`
	Faces         []FaceScore `json:"faces"`
	// CropLen is the length of the probe crop JPEG payload.
	CropLen int `json:"crop_len"`
}

// HitID is the idempotency key of a hit: one alert per camera, track and
// identity.
func HitID(camera string, track uint64, identity string) string {
	return fmt.Sprintf("%s/%d/%s", camera, track, identity)
}

func (h *Hit) validate(payload int) error {
	if err := checkVersion(h.Version); err != nil {
		return err
	}
	if !ValidToken(h.Camera) {
		return malformed("camera %q is not a valid ID", h.Camera)
	}
	if !ValidToken(h.Watchlist) {
		return malformed("watchlist %q is not a valid ID", h.Watchlist)
	}
	if h.Identity == "" || len(h.Identity) > 128 {
		return malformed("identity %q is empty or too long", h.Identity)
	}
	if want := HitID(h.Camera, h.Track, h.Identity); h.ID != want {
		return malformed("id %q, want %q", h.ID, want)
	}
	if h.Time.IsZero() {
		return malformed("time is missing")
	}
	for name, v := range map[string]float64{"distance": h.Distance, "threshold": h.Threshold, "second_distance": h.SecondDistance} {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v > 4 {
			return malformed("%s %g is out of range", name, v)
		}
	}
	if h.Model.Name == "" || len(h.Model.SHA256) != 64 {
		return malformed("model identity is incomplete")
	}
	if h.CropLen < 0 || h.CropLen > MaxCrop || payload != h.CropLen {
		return malformed("crop payload is %d bytes, crop_len says %d", payload, h.CropLen)
	}
	return nil
}

// EncodeHit encodes h with the probe crop as payload.
func EncodeHit(h Hit, crop []byte) ([]byte, error) {
	h.Version = Version
	h.CropLen = len(crop)
	if err := h.validate(len(crop)); err != nil {
		return nil, fmt.Errorf("encoding hit: %w", err)
	}
	return Encode(h, crop)
}

// DecodeHit decodes and validates a hit; the returned crop aliases data.
func DecodeHit(data []byte) (Hit, []byte, error) {
	var h Hit
	p, err := Decode(data, &h)
	if err != nil {
		return Hit{}, nil, err
	}
	if err := h.validate(len(p)); err != nil {
		return Hit{}, nil, err
	}
	return h, p, nil
}
