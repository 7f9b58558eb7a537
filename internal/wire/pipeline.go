package wire

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// Messages added for the pipeline: a camera frame crossing processes, and a
// whole track's best descriptors for the matcher.

// KindTrack names a Track message.
const KindTrack Kind = "track"

// MaxFrameJPEG bounds a frame message's JPEG.
const MaxFrameJPEG = 6 << 20

// MaxFrameSide and MaxFramePixels bound a frame message's size (an 8K
// camera fits): the receiver decodes the JPEG, and the decoded frame costs
// 3 bytes a pixel, so 8192x8192 is already 192 MiB. The detect stage also
// refuses frames over detect.max_pixels, from the JPEG's header.
const (
	MaxFrameSide   = 8192
	MaxFramePixels = 64 << 20
)

// MaxTrackFaces bounds the faces one Track message carries.
const MaxTrackFaces = 32

// FrameMeta is the metadata of a frame sent from a camera stage to a detect
// stage in another process.
type FrameMeta struct {
	Version int       `json:"v"`
	Camera  string    `json:"camera"`
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Width   int       `json:"width"`
	Height  int       `json:"height"`
}

// EncodeFrame encodes a frame's metadata and its JPEG bytes.
func EncodeFrame(m FrameMeta, jpeg []byte) ([]byte, error) {
	m.Version = Version
	if err := m.validate(len(jpeg)); err != nil {
		return nil, fmt.Errorf("encoding frame: %w", err)
	}
	return Encode(m, jpeg)
}

func (m *FrameMeta) validate(payload int) error {
	if err := checkVersion(m.Version); err != nil {
		return err
	}
	if !ValidToken(m.Camera) {
		return malformed("camera %q is not a valid ID", m.Camera)
	}
	if m.Time.IsZero() {
		return malformed("time is missing")
	}
	if m.Width <= 0 || m.Height <= 0 || m.Width > MaxFrameSide || m.Height > MaxFrameSide || int64(m.Width)*int64(m.Height) > MaxFramePixels {
		return malformed("frame size %dx%d is out of range (sides 1..%d, at most %d pixels)", m.Width, m.Height, MaxFrameSide, MaxFramePixels)
	}
	if payload < 4 || payload > MaxFrameJPEG {
		return malformed("frame payload is %d bytes, want 4..%d", payload, MaxFrameJPEG)
	}
	return nil
}

// DecodeFrame decodes and validates a frame message; the JPEG aliases data
// (and is not decoded here).
func DecodeFrame(data []byte) (FrameMeta, []byte, error) {
	var m FrameMeta
	p, err := Decode(data, &m)
	if err != nil {
		return FrameMeta{}, nil, err
	}
	if err := m.validate(len(p)); err != nil {
		return FrameMeta{}, nil, err
	}
	return m, p, nil
}

// TrackFace is one kept face of a track: when and where it was seen and how
// good it is. Its descriptor is at the same index in Track.Vectors.
type TrackFace struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Box     Box       `json:"box"`
	Quality float64   `json:"quality"`
}

// TrackMeta is the metadata of a Track message.
type TrackMeta struct {
	Version int       `json:"v"`
	Camera  string    `json:"camera"`
	Track   uint64    `json:"track"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	// Final is set when the track has ended; an early report (sent when the
	// track has enough faces, so that the alert need not wait for the person
	// to leave) has it unset. Both may lead to the same hit, which the hit
	// ID makes one alert.
	Final bool `json:"final"`
	// Report numbers the early reports of one track from 0: a track is
	// reported early at its first good face and again (up to
	// MaxEarlyReports) when a clearly better face comes. 0 on a final
	// report, and absent from reports of builds before it.
	Report int `json:"report,omitempty"`
	// Tracker names the detect stage's tracker that made the track (its
	// first track ID: a restarted detect process, or another one taking
	// the camera over, has another), and Appearance is the ID of the first
	// track of the appearance this track is part of: its own, or that of
	// an earlier track of the same tracker lost inside the view that this
	// one continues (a person hidden for a few seconds). So Tracker <=
	// Appearance <= Track. Both optional within version 2, omitted when 0
	// (not known: an older detect build, or linkage off): a receiver built
	// before them refuses only reports that carry them (upgrade alert, then
	// match, then detect, as for any change).
	Tracker    uint64      `json:"tracker,omitempty"`
	Appearance uint64      `json:"appearance,omitempty"`
	Seen       int         `json:"seen"`
	Model      Model       `json:"model"`
	Faces      []TrackFace `json:"faces"`
	// CropLen is the length of a JPEG crop of the best face after the
	// descriptors in the payload: always 0 from version 2 on (crops stay
	// in the detect stage's memory until a matcher asks for a hit's crop,
	// CropRequest); a version 1 report may carry one.
	CropLen int `json:"crop_len"`
}

// Track is the matcher's unit of work: the best faces of one track with
// their descriptors, best first. Carrying the whole track in one message
// means any matcher of the queue group can decide it alone. Crop is set
// only on a version 1 report read by this build; EncodeTrack refuses one.
type Track struct {
	Meta    TrackMeta
	Vectors [][DescriptorDim]float32
	Crop    []byte
}

// MsgID is the JetStream message ID of t: a redelivered or retried report
// of the same track state is not stored twice.
func (t *Track) MsgID() string {
	kind := "early"
	switch {
	case t.Meta.Final:
		kind = "final"
	case t.Meta.Report > 0:
		kind = fmt.Sprintf("early.%d", t.Meta.Report)
	}
	return fmt.Sprintf("%s/%d/%s", t.Meta.Camera, t.Meta.Track, kind)
}

// MaxEarlyReports bounds the early reports of one track (Report is below
// it).
const MaxEarlyReports = 16

func (t *TrackMeta) validate(vectors, payload int) error {
	if err := checkVersion(t.Version); err != nil {
		return err
	}
	if !ValidToken(t.Camera) {
		return malformed("camera %q is not a valid ID", t.Camera)
	}
	if t.Start.IsZero() || t.End.Before(t.Start) {
		return malformed("track times %v..%v are invalid", t.Start, t.End)
	}
	if len(t.Faces) == 0 || len(t.Faces) > MaxTrackFaces {
		return malformed("track carries %d faces, want 1..%d", len(t.Faces), MaxTrackFaces)
	}
	if t.Report < 0 || t.Report >= MaxEarlyReports || (t.Final && t.Report != 0) {
		return malformed("report number %d (final %v) is out of range", t.Report, t.Final)
	}
	if t.Seen < len(t.Faces) {
		return malformed("track seen %d times but carries %d faces", t.Seen, len(t.Faces))
	}
	if err := checkAppearance(t.Track, t.Tracker, t.Appearance); err != nil {
		return err
	}
	if t.Model.Name == "" || len(t.Model.SHA256) != 64 {
		return malformed("model identity %q/%q is incomplete", t.Model.Name, t.Model.SHA256)
	}
	for i, f := range t.Faces {
		if f.Time.IsZero() || f.Box.W <= 0 || f.Box.H <= 0 {
			return malformed("face %d has no time or an empty box", i)
		}
		if math.IsNaN(f.Quality) || f.Quality < 0 || f.Quality > 1 {
			return malformed("face %d quality %g is not in [0,1]", i, f.Quality)
		}
	}
	if t.CropLen < 0 || t.CropLen > MaxCrop {
		return malformed("crop_len %d is out of range", t.CropLen)
	}
	if t.Version >= 2 && t.CropLen != 0 {
		return malformed("a version %d track carries no crop, this one %d bytes", t.Version, t.CropLen)
	}
	if vectors >= 0 && vectors != len(t.Faces) {
		return malformed("%d descriptors for %d faces", vectors, len(t.Faces))
	}
	if want := len(t.Faces)*DescriptorBytes + t.CropLen; payload != want {
		return malformed("payload is %d bytes, want %d", payload, want)
	}
	return nil
}

// checkAppearance checks a track's tracker and appearance (TrackMeta): both
// absent, or tracker <= appearance <= track, so that a message cannot name
// the appearance of a later track, or of another tracker's.
func checkAppearance(track, tracker, appearance uint64) error {
	if (tracker == 0) != (appearance == 0) {
		return malformed("tracker %d and appearance %d: want both or neither", tracker, appearance)
	}
	if appearance != 0 && (appearance < tracker || appearance > track) {
		return malformed("appearance %d is not between tracker %d and track %d", appearance, tracker, track)
	}
	return nil
}

// EncodeTrack encodes t: metadata, then one 128 little-endian float32
// descriptor per face, then the crop.
func EncodeTrack(t Track) ([]byte, error) {
	t.Meta.Version = Version
	t.Meta.CropLen = len(t.Crop)
	n := len(t.Vectors) * DescriptorBytes
	if err := t.Meta.validate(len(t.Vectors), n+len(t.Crop)); err != nil {
		return nil, fmt.Errorf("encoding track: %w", err)
	}
	p := make([]byte, n+len(t.Crop))
	for i, v := range t.Vectors {
		if !finite(v[:]) {
			return nil, fmt.Errorf("encoding track: %w", malformed("descriptor %d holds NaN or Inf", i))
		}
		for j, x := range v {
			binary.LittleEndian.PutUint32(p[i*DescriptorBytes+4*j:], math.Float32bits(x))
		}
	}
	copy(p[n:], t.Crop)
	return Encode(t.Meta, p)
}

// DecodeTrack decodes and validates a Track message: a count of
// descriptors that does not match the faces, NaN or Inf values, or a
// missing model identity are refused. The crop aliases data.
func DecodeTrack(data []byte) (Track, error) {
	var t Track
	p, err := Decode(data, &t.Meta)
	if err != nil {
		return Track{}, err
	}
	if err := t.Meta.validate(-1, len(p)); err != nil {
		return Track{}, err
	}
	t.Vectors = make([][DescriptorDim]float32, len(t.Meta.Faces))
	for i := range t.Vectors {
		for j := range t.Vectors[i] {
			t.Vectors[i][j] = math.Float32frombits(binary.LittleEndian.Uint32(p[i*DescriptorBytes+4*j:]))
		}
		if !finite(t.Vectors[i][:]) {
			return Track{}, malformed("descriptor %d holds NaN or Inf", i)
		}
	}
	t.Crop = p[len(t.Vectors)*DescriptorBytes:]
	return t, nil
}

// CropsSubject is where a matcher asks the detect stage for the crop of a
// camera's track that matched someone (core NATS request/reply; the detect
// process holding the track answers).
func CropsSubject(camera string) string { return Prefix + ".crops." + camera }

// CropsWildcard covers every camera's crop requests.
const CropsWildcard = Prefix + ".crops.*"

// CropRequest asks for the JPEG crop of the best face of one track report
// (the report's message ID names it). The reply is a CropReply.
type CropRequest struct {
	Version int    `json:"v"`
	Camera  string `json:"camera"`
	Track   uint64 `json:"track"`
	Final   bool   `json:"final"`
	// Report is the early report's number (TrackMeta.Report).
	Report int `json:"report,omitempty"`
}

// CropReply answers a CropRequest: the crop, or CropLen 0 when the detect
// stage no longer holds it (it keeps crops in memory only, for
// alert.unmatched_retention).
type CropReply struct {
	Version int    `json:"v"`
	Camera  string `json:"camera"`
	Track   uint64 `json:"track"`
	Final   bool   `json:"final"`
	Report  int    `json:"report,omitempty"`
	CropLen int    `json:"crop_len"`
	// SceneLen is the length of the scene JPEG after the crop: the frame
	// downscaled with the face box drawn (Hit.SceneLen). Optional within
	// version 2, omitted when 0: a matcher built before it refuses only
	// replies that carry a scene (upgrade matchers before detect
	// processes, as for any change).
	SceneLen int `json:"scene_len,omitempty"`
}

// EncodeCropRequest encodes r (metadata only).
func EncodeCropRequest(r CropRequest) ([]byte, error) {
	r.Version = Version
	if !ValidToken(r.Camera) {
		return nil, fmt.Errorf("encoding crop request: %w", malformed("camera %q is not a valid ID", r.Camera))
	}
	return Encode(r, nil)
}

// DecodeCropRequest decodes and validates a crop request.
func DecodeCropRequest(data []byte) (CropRequest, error) {
	var r CropRequest
	p, err := Decode(data, &r)
	if err != nil {
		return CropRequest{}, err
	}
	if !ValidToken(r.Camera) || len(p) != 0 {
		return CropRequest{}, malformed("crop request for camera %q with a %d-byte payload", r.Camera, len(p))
	}
	return r, nil
}

// EncodeCropReply encodes the reply to r with crop (nil when gone).
func EncodeCropReply(r CropRequest, crop []byte) ([]byte, error) {
	return EncodeCropSceneReply(r, crop, nil)
}

// EncodeCropSceneReply encodes the reply to r with crop and scene (nil
// for none); together they must fit in MaxCrop.
func EncodeCropSceneReply(r CropRequest, crop, scene []byte) ([]byte, error) {
	if len(crop)+len(scene) > MaxCrop {
		return nil, fmt.Errorf("encoding crop reply: %w", malformed("crop and scene of %d bytes exceed %d", len(crop)+len(scene), MaxCrop))
	}
	return Encode(CropReply{Version: Version, Camera: r.Camera, Track: r.Track, Final: r.Final, Report: r.Report, CropLen: len(crop), SceneLen: len(scene)},
		append(append(make([]byte, 0, len(crop)+len(scene)), crop...), scene...))
}

// DecodeCropReply decodes a crop reply and checks that it answers r; the
// crop aliases data and is nil when the detect stage no longer holds it.
func DecodeCropReply(data []byte, r CropRequest) ([]byte, error) {
	crop, _, err := DecodeCropSceneReply(data, r)
	return crop, err
}

// DecodeCropSceneReply is DecodeCropReply that also returns the scene
// (nil when the reply carries none; it aliases data).
func DecodeCropSceneReply(data []byte, r CropRequest) ([]byte, []byte, error) {
	var m CropReply
	p, err := Decode(data, &m)
	if err != nil {
		return nil, nil, err
	}
	if m.Camera != r.Camera || m.Track != r.Track || m.Final != r.Final || m.Report != r.Report {
		return nil, nil, malformed("crop reply for %s/%d (final %v, report %d) answers a request for %s/%d (final %v, report %d)", m.Camera, m.Track, m.Final, m.Report, r.Camera, r.Track, r.Final, r.Report)
	}
	if m.CropLen < 0 || m.SceneLen < 0 || m.CropLen+m.SceneLen != len(p) || len(p) > MaxCrop {
		return nil, nil, malformed("crop reply carries %d bytes, crop_len and scene_len say %d and %d", len(p), m.CropLen, m.SceneLen)
	}
	var crop, scene []byte
	if m.CropLen > 0 {
		crop = p[:m.CropLen]
	}
	if m.SceneLen > 0 {
		scene = p[m.CropLen:]
	}
	return crop, scene, nil
}
