package wire

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"
)

func validTrack() Track {
	now := time.Unix(1700000000, 0).UTC()
	t := Track{Meta: TrackMeta{Camera: "cam-1", Track: 42, Start: now, End: now.Add(time.Second), Final: true, Seen: 5, Model: model,
		Faces: []TrackFace{{Seq: 1, Time: now, Box: Box{W: 80, H: 80}, Quality: 0.9}, {Seq: 3, Time: now.Add(400 * time.Millisecond), Box: Box{X: 10, W: 80, H: 80}, Quality: 0.7}}},
		Vectors: make([][DescriptorDim]float32, 2)}
	for i := range t.Vectors {
		for j := range t.Vectors[i] {
			t.Vectors[i][j] = float32(i*1000+j) / 1e4
		}
	}
	return t
}

func TestTrackRoundTrip(t *testing.T) {
	in := validTrack()
	data, err := EncodeTrack(in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeTrack(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Vectors) != 2 || got.Vectors[1] != in.Vectors[1] || got.Vectors[0] != in.Vectors[0] {
		t.Errorf("DecodeTrack vectors differ from what was encoded")
	}
	if len(got.Crop) != 0 || got.Meta.Track != 42 || !got.Meta.Final || got.Meta.Faces[1].Seq != 3 {
		t.Errorf("DecodeTrack = %+v, want %+v", got.Meta, in.Meta)
	}
	if got.MsgID() != "cam-1/42/final" {
		t.Errorf("MsgID() = %q, want cam-1/42/final", got.MsgID())
	}
}

// TestTrackMsgID checks that every report of a track has its own message
// ID (an early report's retry is deduplicated, a later, better one is not).
func TestTrackMsgID(t *testing.T) {
	tests := []struct {
		name   string
		final  bool
		report int
		want   string
	}{
		{"first early", false, 0, "cam-1/42/early"},
		{"second early", false, 1, "cam-1/42/early.1"},
		{"third early", false, 2, "cam-1/42/early.2"},
		{"final", true, 0, "cam-1/42/final"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := validTrack()
			in.Meta.Final, in.Meta.Report = tc.final, tc.report
			data, err := EncodeTrack(in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeTrack(data)
			if err != nil {
				t.Fatal(err)
			}
			if got.Meta.Report != tc.report || got.MsgID() != tc.want {
				t.Errorf("DecodeTrack(report %d).MsgID() = %q (report %d), want %q", tc.report, got.MsgID(), got.Meta.Report, tc.want)
			}
		})
	}
}

func TestTrackMalformed(t *testing.T) {
	good, err := EncodeTrack(validTrack())
	if err != nil {
		t.Fatal(err)
	}
	raw := func(f func(*Track)) []byte {
		tr := validTrack()
		f(&tr)
		tr.Meta.Version = Version
		tr.Meta.CropLen = len(tr.Crop)
		p := make([]byte, len(tr.Vectors)*DescriptorBytes)
		p = append(p, tr.Crop...)
		b, err := Encode(tr.Meta, p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	nan := append([]byte(nil), good...)
	// The first descriptor starts right after the metadata.
	metaLen := int(nan[0])<<24 | int(nan[1])<<16 | int(nan[2])<<8 | int(nan[3])
	bits := math.Float32bits(float32(math.Inf(1)))
	nan[4+metaLen], nan[5+metaLen], nan[6+metaLen], nan[7+metaLen] = byte(bits), byte(bits>>8), byte(bits>>16), byte(bits>>24)
	// A NaN in the last descriptor (it replaced the per-face descriptor
	// message's NaN case).
	realNaN := append([]byte(nil), good...)
	bits = math.Float32bits(float32(math.NaN()))
	last := 4 + metaLen + 2*DescriptorBytes - 4
	realNaN[last], realNaN[last+1], realNaN[last+2], realNaN[last+3] = byte(bits), byte(bits>>8), byte(bits>>16), byte(bits>>24)
	tests := map[string][]byte{
		"empty":          nil,
		"truncated":      good[:len(good)-10],
		"inf descriptor": nan,
		"nan descriptor": realNaN,
		"no faces":       raw(func(t *Track) { t.Meta.Faces = nil; t.Vectors = nil }),
		"bad camera":     raw(func(t *Track) { t.Meta.Camera = "a.b" }),
		"no model":       raw(func(t *Track) { t.Meta.Model = Model{} }),
		"seen < faces":   raw(func(t *Track) { t.Meta.Seen = 1 }),
		"end < start":    raw(func(t *Track) { t.Meta.End = t.Meta.Start.Add(-time.Second) }),
		"quality > 1":    raw(func(t *Track) { t.Meta.Faces[0].Quality = 1.5 }),
		"final report 1": raw(func(t *Track) { t.Meta.Report = 1 }),
		"report < 0":     raw(func(t *Track) { t.Meta.Final, t.Meta.Report = false, -1 }),
		"report too big": raw(func(t *Track) { t.Meta.Final, t.Meta.Report = false, MaxEarlyReports }),
		// An appearance is a track of the same tracker, no later than
		// this one, and comes with its tracker.
		"appearance without tracker": raw(func(t *Track) { t.Meta.Appearance = 42 }),
		"tracker without appearance": raw(func(t *Track) { t.Meta.Tracker = 40 }),
		"appearance after the track": raw(func(t *Track) { t.Meta.Tracker, t.Meta.Appearance = 40, 43 }),
		"appearance before tracker":  raw(func(t *Track) { t.Meta.Tracker, t.Meta.Appearance = 40, 39 }),
		"tracker after the track":    raw(func(t *Track) { t.Meta.Tracker, t.Meta.Appearance = 1<<63, 1<<63 }),
	}
	for name, data := range tests {
		if _, err := DecodeTrack(data); !errors.Is(err, ErrMalformed) {
			t.Errorf("DecodeTrack(%s) = %v, want ErrMalformed", name, err)
		}
	}
}

// TestTrackAppearance: a report's tracker and appearance travel, and a
// report without them (an older detect build) leaves them out.
func TestTrackAppearance(t *testing.T) {
	for _, tc := range []struct {
		name                string
		tracker, appearance uint64
	}{{"own", 40, 42}, {"continues an earlier track", 40, 40}, {"itself", 42, 42}, {"not known", 0, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			in := validTrack()
			in.Meta.Tracker, in.Meta.Appearance = tc.tracker, tc.appearance
			data, err := EncodeTrack(in)
			if err != nil {
				t.Fatal(err)
			}
			if got := bytes.Contains(data, []byte(`"appearance"`)); got != (tc.appearance != 0) {
				t.Errorf("encoded report names an appearance: %v, want %v", got, tc.appearance != 0)
			}
			got, err := DecodeTrack(data)
			if err != nil {
				t.Fatal(err)
			}
			if got.Meta.Tracker != tc.tracker || got.Meta.Appearance != tc.appearance {
				t.Errorf("DecodeTrack tracker, appearance = %d, %d; want %d, %d", got.Meta.Tracker, got.Meta.Appearance, tc.tracker, tc.appearance)
			}
		})
	}
	bad := validTrack()
	bad.Meta.Tracker, bad.Meta.Appearance = 40, 43
	if _, err := EncodeTrack(bad); !errors.Is(err, ErrMalformed) {
		t.Errorf("EncodeTrack(appearance 43 of track 42) = %v, want ErrMalformed", err)
	}
}

func TestFrameRoundTripAndMalformed(t *testing.T) {
	m := FrameMeta{Camera: "c1", Seq: 7, Time: time.Now().UTC(), Width: 640, Height: 360}
	data, err := EncodeFrame(m, []byte{0xff, 0xd8, 0xff, 0xe0, 1})
	if err != nil {
		t.Fatal(err)
	}
	got, jpeg, err := DecodeFrame(data)
	if err != nil || got.Seq != 7 || len(jpeg) != 5 {
		t.Fatalf("DecodeFrame = %+v, %d bytes, %v; want seq 7, 5 bytes", got, len(jpeg), err)
	}
	for name, mod := range map[string]func(*FrameMeta){
		"no time":   func(m *FrameMeta) { m.Time = time.Time{} },
		"zero size": func(m *FrameMeta) { m.Width = 0 },
		"bad cam":   func(m *FrameMeta) { m.Camera = "" },
	} {
		bad := m
		mod(&bad)
		bad.Version = Version
		b, _ := Encode(bad, []byte{1, 2, 3, 4})
		if _, _, err := DecodeFrame(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("DecodeFrame(%s) = %v, want ErrMalformed", name, err)
		}
	}
}

func FuzzDecodeTrack(f *testing.F) {
	good, _ := EncodeTrack(validTrack())
	f.Add(good)
	f.Add([]byte{0, 0, 0, 2, '{', '}'})
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := DecodeTrack(data)
		if err != nil {
			return
		}
		if _, err := EncodeTrack(tr); err != nil {
			t.Errorf("a decoded track does not encode again: %v", err)
		}
	})
}

func FuzzDecodeFrame(f *testing.F) {
	good, _ := EncodeFrame(FrameMeta{Camera: "c1", Seq: 1, Time: time.Unix(1700000000, 0).UTC(), Width: 2, Height: 2}, []byte{0xff, 0xd8, 0xff, 0xd9})
	f.Add(good)
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, jpeg, err := DecodeFrame(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("DecodeFrame = %v, want ErrMalformed", err)
			}
			return
		}
		again, err := EncodeFrame(m, jpeg)
		if err != nil {
			t.Fatalf("a decoded frame does not encode again: %v", err)
		}
		m2, jpeg2, err := DecodeFrame(again)
		if err != nil || m2.Camera != m.Camera || m2.Seq != m.Seq || !m2.Time.Equal(m.Time) || m2.Width != m.Width || m2.Height != m.Height || string(jpeg2) != string(jpeg) {
			t.Errorf("frame does not round-trip: %+v -> %+v, %v", m, m2, err)
		}
	})
}
