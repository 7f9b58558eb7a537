package wire

import (
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

// MaxCrop bounds a face crop JPEG carried in a track report or a hit. With
// the metadata block (and a track's descriptors) it must stay under NATS's
// default max_payload (1 MiB); a face crop is tens of kilobytes.
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
	ID     string `json:"id"`
	Camera string `json:"camera"`
	Track  uint64 `json:"track"`
	// Tracker and Appearance are the track's (TrackMeta): the alert service
	// stores one alert per appearance of a person on a camera. Optional
	// within version 2, omitted when 0 (an older matcher or detect stage).
	Tracker       uint64    `json:"tracker,omitempty"`
	Appearance    uint64    `json:"appearance,omitempty"`
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
	// SceneLen is the length of the scene JPEG that follows the crop in
	// the payload: the frame downscaled (at most SceneMaxWidth wide) with
	// the face box drawn. EnrolledChipLen is the length of the enrolled
	// face (the aligned chip of the enrolment that matched, as a JPEG)
	// after it. Both optional within version 2 (omitted when 0); the
	// payload's images together stay within MaxCrop.
	SceneLen        int `json:"scene_len,omitempty"`
	EnrolledChipLen int `json:"enrolled_chip_len,omitempty"`
}

// HitImages are the images a hit carries as its payload, in this order;
// any may be nil.
type HitImages struct {
	Crop, Scene, EnrolledChip []byte
}

func (im HitImages) len() int { return len(im.Crop) + len(im.Scene) + len(im.EnrolledChip) }

// SceneMaxWidth bounds the width of a hit's scene image, in pixels.
const SceneMaxWidth = 640

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
	if err := checkAppearance(h.Track, h.Tracker, h.Appearance); err != nil {
		return err
	}
	for name, v := range map[string]float64{"distance": h.Distance, "threshold": h.Threshold, "second_distance": h.SecondDistance} {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v > 4 {
			return malformed("%s %g is out of range", name, v)
		}
	}
	if h.Model.Name == "" || len(h.Model.SHA256) != 64 {
		return malformed("model identity is incomplete")
	}
	if n := h.CropLen + h.SceneLen + h.EnrolledChipLen; h.CropLen < 0 || h.SceneLen < 0 || h.EnrolledChipLen < 0 || n > MaxCrop || payload != n {
		return malformed("crop payload is %d bytes, crop_len, scene_len and enrolled_chip_len say %d, %d and %d", payload, h.CropLen, h.SceneLen, h.EnrolledChipLen)
	}
	return nil
}

// EncodeHit encodes h with the probe crop as payload.
func EncodeHit(h Hit, crop []byte) ([]byte, error) {
	return EncodeHitImages(h, HitImages{Crop: crop})
}

// EncodeHitImages encodes h with its images as payload; together they
// must fit in MaxCrop.
func EncodeHitImages(h Hit, im HitImages) ([]byte, error) {
	h.Version = Version
	h.CropLen, h.SceneLen, h.EnrolledChipLen = len(im.Crop), len(im.Scene), len(im.EnrolledChip)
	if err := h.validate(im.len()); err != nil {
		return nil, fmt.Errorf("encoding hit: %w", err)
	}
	p := make([]byte, 0, im.len())
	p = append(append(append(p, im.Crop...), im.Scene...), im.EnrolledChip...)
	return Encode(h, p)
}

// DecodeHit decodes and validates a hit; the returned crop aliases data.
// Other images the hit carries are left out (DecodeHitImages returns them).
func DecodeHit(data []byte) (Hit, []byte, error) {
	h, im, err := DecodeHitImages(data)
	return h, im.Crop, err
}

// DecodeHitImages decodes and validates a hit; the returned images (nil
// when the hit carries none of a kind) alias data.
func DecodeHitImages(data []byte) (Hit, HitImages, error) {
	var h Hit
	p, err := Decode(data, &h)
	if err != nil {
		return Hit{}, HitImages{}, err
	}
	if err := h.validate(len(p)); err != nil {
		return Hit{}, HitImages{}, err
	}
	cut := func(n int) []byte {
		if n == 0 {
			return nil
		}
		b := p[:n:n]
		p = p[n:]
		return b
	}
	im := HitImages{Crop: cut(h.CropLen)}
	im.Scene = cut(h.SceneLen)
	im.EnrolledChip = cut(h.EnrolledChipLen)
	return h, im, nil
}
