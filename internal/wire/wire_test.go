package wire

import (
	"bytes"
	"errors"
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
	h.Tracker, h.Appearance = 5, 6
	if data, err = EncodeHit(h, crop); err != nil {
		t.Fatalf("EncodeHit(appearance): %v", err)
	}
	if got, _, err = DecodeHit(data); err != nil || got.Tracker != 5 || got.Appearance != 6 {
		t.Errorf("DecodeHit(appearance) = tracker %d, appearance %d, %v; want 5, 6", got.Tracker, got.Appearance, err)
	}
	if !bytes.Equal(gotCrop, crop) {
		t.Errorf("crop = %x, want %x", gotCrop, crop)
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
	tests := []struct {
		name   string
		data   []byte
		decode func([]byte) error
		want   string
	}{
		{"empty", nil, hitDec, "shorter than the envelope"},
		{"truncated", good[:len(good)-3], hitDec, "does not fit"},
		{"not json", append([]byte{0, 0, 0, 3}, "abc"...), hitDec, "metadata"},
		{"unknown field", append([]byte{0, 0, 0, 15}, `{"v":2,"zzz":1}`...), hitDec, "unknown field"},
		{"no version", append([]byte{0, 0, 0, 9}, `{"zzz":1}`...), hitDec, "no schema version"},
		{"bad camera", mutate(func(h *Hit) { h.Camera = "a.b"; h.ID = HitID("a.b", 7, "id-42") }), hitDec, "camera"},
		{"wrong id", mutate(func(h *Hit) { h.ID = "x" }), hitDec, "id"},
		{"negative distance", mutate(func(h *Hit) { h.Distance = -1 }), hitDec, "distance"},
		{"no model", mutate(func(h *Hit) { h.Model = Model{} }), hitDec, "model"},
		{"appearance without tracker", mutate(func(h *Hit) { h.Appearance = 7 }), hitDec, "appearance"},
		{"appearance of a later track", mutate(func(h *Hit) { h.Tracker, h.Appearance = 5, 8 }), hitDec, "appearance"},
		{"appearance before its tracker", mutate(func(h *Hit) { h.Tracker, h.Appearance = 5, 4 }), hitDec, "appearance"},
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

func hitDec(b []byte) error { _, _, err := DecodeHit(b); return err }

func FuzzDecode(f *testing.F) {
	good, _ := EncodeHit(validHit(), []byte("crop"))
	f.Add(good)
	withImages, _ := EncodeHitImages(validHit(), HitImages{[]byte("crop"), []byte("scene"), []byte("chip")})
	f.Add(withImages)
	reply, _ := EncodeCropSceneReply(CropRequest{Camera: "cam-1", Track: 7}, []byte("crop"), []byte("scene"))
	f.Add(reply)
	status, _ := EncodeCameraStatus(validStatus())
	f.Add(status)
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		// Must never panic; anything accepted must re-encode to the same
		// images.
		if h, im, err := DecodeHitImages(b); err == nil {
			again, err := EncodeHitImages(h, im)
			if err != nil {
				t.Fatalf("accepted hit does not re-encode: %v", err)
			}
			if _, im2, err := DecodeHitImages(again); err != nil || !bytes.Equal(im2.Crop, im.Crop) || !bytes.Equal(im2.Scene, im.Scene) || !bytes.Equal(im2.EnrolledChip, im.EnrolledChip) {
				t.Fatalf("re-encoded hit decodes to other images (%v)", err)
			}
		}
		if r, err := DecodeCropRequest(b); err == nil {
			_, _, _ = DecodeCropSceneReply(b, r)
		}
		_, _, _ = DecodeCropSceneReply(b, CropRequest{Camera: "cam-1", Track: 7})
		if s, err := DecodeCameraStatus(b); err == nil {
			if _, err := EncodeCameraStatus(s); err != nil {
				t.Fatalf("accepted camera status does not re-encode: %v", err)
			}
		}
	})
}

// TestLargestMessageFitsNATSDefault guards the arithmetic: the largest
// track report and hit the schema accepts must fit NATS's default 1 MiB
// max_payload.
func TestLargestMessageFitsNATSDefault(t *testing.T) {
	const natsDefaultMaxPayload = 1 << 20
	if worst := 4 + MaxMeta + MaxTrackFaces*DescriptorBytes + MaxCrop; worst > natsDefaultMaxPayload {
		t.Errorf("largest track message = %d bytes, want ≤ %d", worst, natsDefaultMaxPayload)
	}
	if worst := 4 + MaxMeta + MaxCrop; worst > natsDefaultMaxPayload {
		t.Errorf("largest hit message = %d bytes, want ≤ %d", worst, natsDefaultMaxPayload)
	}
}
