package wire

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

var model = Model{Name: "dlib_face_recognition_resnet_model_v1", SHA256: strings.Repeat("ab", 32)}

func validHit() Hit {
	return Hit{
		ID: HitID("cam-1", 7, "id-42"), Camera: "cam-1", Track: 7, Time: time.Unix(1700000000, 5).UTC(),
		Watchlist: "missing", Identity: "id-42", Distance: 0.31, Threshold: 0.45, SecondDistance: 0.7,
		Model: model, Box: Box{X: 1, Y: 2, W: 30, H: 40},
	}
}

func TestHitRoundTrip(t *testing.T) {
	h := validHit()
	crop := []byte{0xff, 0xd8, 1, 2, 3}
	data, err := EncodeHit(h, crop)
	if err != nil {
		t.Fatalf("EncodeHit: %v", err)
	}
	got, gotCrop, err := DecodeHit(data)
	if err != nil {
		t.Fatalf("DecodeHit: %v", err)
	}
	if got.ID != h.ID || got.Distance != h.Distance || !got.Time.Equal(h.Time) || got.Version != Version {
		t.Errorf("DecodeHit = %+v, want %+v", got, h)
	}
	if !bytes.Equal(gotCrop, crop) {
		t.Errorf("crop = %x, want %x", gotCrop, crop)
	}
}

func TestDescriptorRoundTrip(t *testing.T) {
	d := Descriptor{Meta: DescriptorMeta{FaceMeta: FaceMeta{Camera: "c", Track: 3, Seq: 9, Time: time.Now().UTC(), Box: Box{W: 5, H: 5}, Quality: 0.5}, Model: model}}
	for i := range d.Vector {
		d.Vector[i] = float32(i) / 100
	}
	d.Crop = []byte("jpeg")
	data, err := EncodeDescriptor(d)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeDescriptor(data)
	if err != nil {
		t.Fatal(err)
	}
	if got.Vector != d.Vector || string(got.Crop) != "jpeg" || got.Meta.Track != 3 {
		t.Errorf("DecodeDescriptor = %+v, want %+v", got, d)
	}
}

func TestMalformed(t *testing.T) {
	good, err := EncodeHit(validHit(), nil)
	if err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(*Hit)) []byte {
		h := validHit()
		f(&h)
		h.Version = Version
		b, err := Encode(h, nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	nanDesc := func() []byte {
		d := Descriptor{Meta: DescriptorMeta{FaceMeta: FaceMeta{Version: Version, Camera: "c", Time: time.Now(), Box: Box{W: 1, H: 1}}, Model: model}}
		p := make([]byte, DescriptorBytes)
		bits := math.Float32bits(float32(math.NaN()))
		p[0], p[1], p[2], p[3] = byte(bits), byte(bits>>8), byte(bits>>16), byte(bits>>24)
		b, _ := Encode(d.Meta, p)
		return b
	}()
	shortDesc := func() []byte {
		d := DescriptorMeta{FaceMeta: FaceMeta{Version: Version, Camera: "c", Time: time.Now(), Box: Box{W: 1, H: 1}}, Model: model}
		b, _ := Encode(d, make([]byte, 100))
		return b
	}()
	tests := []struct {
		name   string
		data   []byte
		decode func([]byte) error
		want   string
	}{
		{"empty", nil, hitDec, "shorter than the envelope"},
		{"truncated", good[:len(good)-3], hitDec, "does not fit"},
		{"not json", append([]byte{0, 0, 0, 3}, "abc"...), hitDec, "metadata"},
		{"unknown field", append([]byte{0, 0, 0, 9}, `{"zzz":1}`...), hitDec, "unknown field"},
		{"bad camera", mutate(func(h *Hit) { h.Camera = "a.b"; h.ID = HitID("a.b", 7, "id-42") }), hitDec, "camera"},
		{"wrong id", mutate(func(h *Hit) { h.ID = "x" }), hitDec, "id"},
		{"negative distance", mutate(func(h *Hit) { h.Distance = -1 }), hitDec, "distance"},
		{"no model", mutate(func(h *Hit) { h.Model = Model{} }), hitDec, "model"},
		{"descriptor NaN", nanDesc, descDec, "NaN"},
		{"descriptor short", shortDesc, descDec, "want at least 512"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.decode(tc.data)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("decode = %v, want ErrMalformed mentioning %q", err, tc.want)
			}
		})
	}
}

func hitDec(b []byte) error  { _, _, err := DecodeHit(b); return err }
func descDec(b []byte) error { _, err := DecodeDescriptor(b); return err }

func FuzzDecode(f *testing.F) {
	good, _ := EncodeHit(validHit(), []byte("crop"))
	f.Add(good)
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		// Must never panic; anything accepted must re-encode.
		if h, crop, err := DecodeHit(b); err == nil {
			if _, err := EncodeHit(h, crop); err != nil {
				t.Fatalf("accepted hit does not re-encode: %v", err)
			}
		}
		DecodeDescriptor(b)
		DecodeFace(b)
		DecodeTrackEnd(b)
	})
}

// TestLargestMessageFitsNATSDefault guards the arithmetic: the largest face
// message the schema accepts must fit NATS's default 1 MiB max_payload.
func TestLargestMessageFitsNATSDefault(t *testing.T) {
	const natsDefaultMaxPayload = 1 << 20
	if worst := 4 + MaxMeta + ChipBytes + MaxCrop; worst > natsDefaultMaxPayload {
		t.Errorf("largest face message = %d bytes, want ≤ %d", worst, natsDefaultMaxPayload)
	}
}
