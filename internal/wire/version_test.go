package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// TestSchemaVersions pins the compatibility rule: a receiver accepts
// Version and PrevVersion and refuses anything else with ErrVersion,
// decided from the "v" field before any other (so a newer message with a
// field this build does not know is refused for its version, the reason
// an operator can act on).
func TestSchemaVersions(t *testing.T) {
	hitAt := func(v int, extra string) []byte {
		h := validHit()
		h.Version = v
		h.CropLen = 3
		m, err := Encode(h, []byte{0xff, 0xd8, 0xff})
		if err != nil {
			t.Fatal(err)
		}
		if extra == "" {
			return m
		}
		// Add a field this build does not know, as a newer publisher might.
		n := int(m[0])<<24 | int(m[1])<<16 | int(m[2])<<8 | int(m[3])
		meta := string(m[4:4+n-1]) + `,"` + extra + `":true}`
		out := []byte{byte(len(meta) >> 24), byte(len(meta) >> 16), byte(len(meta) >> 8), byte(len(meta))}
		out = append(out, meta...)
		return append(out, m[4+n:]...)
	}
	tests := []struct {
		name    string
		data    []byte
		wantErr string // "" accepts
	}{
		{"current", hitAt(Version, ""), ""},
		{"previous", hitAt(PrevVersion, ""), ""},
		{"next", hitAt(Version+1, ""), "newer than this build accepts"},
		{"next with a new field", hitAt(Version+1, "added_in_next"), "newer than this build accepts"},
		{"older than previous", hitAt(PrevVersion-1, ""), "older than this build accepts"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, crop, err := DecodeHit(tc.data)
			if tc.wantErr == "" {
				if err != nil || !bytes.Equal(crop, []byte{0xff, 0xd8, 0xff}) || h.ID != validHit().ID {
					t.Fatalf("DecodeHit = %q, %x, %v; want %q, ffd8ff, nil", h.ID, crop, err, validHit().ID)
				}
				return
			}
			if !errors.Is(err, ErrVersion) || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("DecodeHit = %v, want ErrVersion and ErrMalformed mentioning %q", err, tc.wantErr)
			}
		})
	}
}

// TestTrackCrops: a version 2 track carries no crop (a crop is asked for
// only when the track matched someone); a version 1 track's crop is still
// read.
func TestTrackCrops(t *testing.T) {
	withCrop := func(v int) []byte {
		tr := validTrack()
		tr.Meta.Version = v
		crop := []byte{0xff, 0xd8, 0xff, 1}
		tr.Meta.CropLen = len(crop)
		p := make([]byte, len(tr.Vectors)*DescriptorBytes)
		b, err := Encode(tr.Meta, append(p, crop...))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if got, err := DecodeTrack(withCrop(PrevVersion)); err != nil || len(got.Crop) != 4 {
		t.Errorf("DecodeTrack(v%d with crop) = %d-byte crop, %v; want 4 bytes, nil", PrevVersion, len(got.Crop), err)
	}
	if _, err := DecodeTrack(withCrop(Version)); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "carries no crop") {
		t.Errorf("DecodeTrack(v%d with crop) = %v, want ErrMalformed mentioning \"carries no crop\"", Version, err)
	}
	tr := validTrack()
	tr.Crop = []byte{0xff, 0xd8, 0xff}
	if _, err := EncodeTrack(tr); err == nil {
		t.Error("EncodeTrack(track with a crop) = nil error, want refused")
	}
}

func TestCropRequestReply(t *testing.T) {
	req := CropRequest{Camera: "cam-1", Track: 9, Final: true}
	data, err := EncodeCropRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeCropRequest(data)
	if err != nil || got.Camera != "cam-1" || got.Track != 9 || !got.Final {
		t.Fatalf("DecodeCropRequest = %+v, %v; want cam-1/9 final", got, err)
	}
	for _, tc := range []struct {
		name string
		crop []byte
	}{{"held", []byte{0xff, 0xd8, 0xff, 7}}, {"gone", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := EncodeCropReply(got, tc.crop)
			if err != nil {
				t.Fatal(err)
			}
			c, err := DecodeCropReply(rep, req)
			if err != nil || !bytes.Equal(c, tc.crop) {
				t.Errorf("DecodeCropReply = %x, %v; want %x", c, err, tc.crop)
			}
			other := req
			other.Track = 10
			if _, err := DecodeCropReply(rep, other); !errors.Is(err, ErrMalformed) {
				t.Errorf("DecodeCropReply(reply for another track) = %v, want ErrMalformed", err)
			}
			other = req
			other.Report = 1
			if _, err := DecodeCropReply(rep, other); !errors.Is(err, ErrMalformed) {
				t.Errorf("DecodeCropReply(reply for another report) = %v, want ErrMalformed", err)
			}
		})
	}
}

// TestHitImages: a hit carries the scene and the enrolled chip after the
// crop, each only with its length field, all within MaxCrop; a hit with a
// crop alone encodes exactly as before the fields existed (no new keys),
// so older receivers read it.
func TestHitImages(t *testing.T) {
	crop := []byte{0xff, 0xd8, 0xff, 1, 2}
	scene := []byte{0xff, 0xd8, 0xff, 9, 9, 9}
	chip := []byte{0xff, 0xd8, 0xff, 5}
	tests := []struct {
		name      string
		im        HitImages
		wantErr   bool
		wantField bool
	}{
		{"crop, scene and chip", HitImages{crop, scene, chip}, false, true},
		{"crop only", HitImages{Crop: crop}, false, false},
		{"scene only", HitImages{Scene: scene}, false, true},
		{"chip only", HitImages{EnrolledChip: chip}, false, true},
		{"together over MaxCrop", HitImages{make([]byte, MaxCrop-2), scene, nil}, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data, err := EncodeHitImages(validHit(), tc.im)
			if tc.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("EncodeHitImages(%d bytes) = %v, want ErrMalformed", tc.im.len(), err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			meta := data[:4+binary.BigEndian.Uint32(data)]
			if got := bytes.Contains(meta, []byte(`"scene_len"`)) || bytes.Contains(meta, []byte(`"enrolled_chip_len"`)); got != tc.wantField {
				t.Errorf("metadata has scene_len or enrolled_chip_len = %v, want %v", got, tc.wantField)
			}
			_, im, err := DecodeHitImages(data)
			if err != nil || !bytes.Equal(im.Crop, tc.im.Crop) || !bytes.Equal(im.Scene, tc.im.Scene) || !bytes.Equal(im.EnrolledChip, tc.im.EnrolledChip) {
				t.Errorf("DecodeHitImages = %x, %v; want %x", im, err, tc.im)
			}
			_, c, err := DecodeHit(data)
			if err != nil || !bytes.Equal(c, tc.im.Crop) {
				t.Errorf("DecodeHit = crop %x, %v; want %x", c, err, tc.im.Crop)
			}
		})
	}
	// Lengths that do not add up with the payload are refused.
	data, _ := EncodeHitImages(validHit(), HitImages{crop, scene, chip})
	if _, _, err := DecodeHitImages(data[:len(data)-1]); !errors.Is(err, ErrMalformed) {
		t.Errorf("DecodeHitImages(payload one byte short) = %v, want ErrMalformed", err)
	}
}

// TestCropSceneReply: a crop reply may carry the scene after the crop;
// without one it encodes as before the field existed.
func TestCropSceneReply(t *testing.T) {
	crop := []byte{0xff, 0xd8, 0xff, 7}
	scene := []byte{0xff, 0xd8, 0xff, 8, 8}
	req := CropRequest{Camera: "cam-1", Track: 9, Final: true}
	tests := []struct {
		name        string
		crop, scene []byte
		wantField   bool
	}{
		{"crop and scene", crop, scene, true},
		{"crop only", crop, nil, false},
		{"gone", nil, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := EncodeCropSceneReply(req, tc.crop, tc.scene)
			if err != nil {
				t.Fatal(err)
			}
			if got := bytes.Contains(rep[:4+binary.BigEndian.Uint32(rep)], []byte(`"scene_len"`)); got != tc.wantField {
				t.Errorf("metadata has scene_len = %v, want %v", got, tc.wantField)
			}
			c, s, err := DecodeCropSceneReply(rep, req)
			if err != nil || !bytes.Equal(c, tc.crop) || !bytes.Equal(s, tc.scene) {
				t.Errorf("DecodeCropSceneReply = %x, %x, %v; want %x, %x", c, s, err, tc.crop, tc.scene)
			}
			if _, _, err := DecodeCropSceneReply(rep[:len(rep)-1], req); len(tc.crop)+len(tc.scene) > 0 && !errors.Is(err, ErrMalformed) {
				t.Errorf("DecodeCropSceneReply(one byte short) = %v, want ErrMalformed", err)
			}
		})
	}
	if _, err := EncodeCropSceneReply(req, make([]byte, MaxCrop-2), scene); !errors.Is(err, ErrMalformed) {
		t.Errorf("EncodeCropSceneReply(over MaxCrop) = %v, want ErrMalformed", err)
	}
}
