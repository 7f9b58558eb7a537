package detect

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gocv.io/x/gocv"

	"github.com/facewatch/facewatch/internal/testdata"
)

// realJPEGs returns every JPEG of the shared data set and of dlib's and
// OpenCV's examples.
func realJPEGs(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, dir := range []string{testdata.SharedDir(), testdata.DlibFacesDir(), testdata.OpenCVDataDir()} {
		err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			if ext := strings.ToLower(filepath.Ext(p)); ext != ".jpg" && ext != ".jpeg" {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[p] = b
			return nil
		})
		if err != nil {
			t.Fatalf("reading test photos in %s: %v", dir, err)
		}
	}
	if len(out) < 100 {
		t.Fatalf("found %d test JPEGs, want at least 100", len(out))
	}
	return out
}

// openCVDecode is what Decode did before the libjpeg-turbo path.
func openCVDecode(t *testing.T, data []byte) []byte {
	t.Helper()
	m, err := gocv.IMDecode(data, gocv.IMReadColor)
	if err != nil || m.Empty() {
		t.Fatalf("OpenCV decode: %v", err)
	}
	defer m.Close()
	return append([]byte(nil), m.ToBytes()...)
}

func decodeBytes(t *testing.T, data []byte) (pix []byte, rows, cols int) {
	t.Helper()
	m, err := Decode(data, 0)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	defer m.Close()
	return append([]byte(nil), m.ToBytes()...), m.Rows(), m.Cols()
}

// TestJPEGBGRMatchesOpenCV: Decode gives, byte for byte, the pixels
// OpenCV's decoder gives for every real JPEG at hand, and takes
// libjpeg-turbo's BGR path for every colour photo of the face data sets
// (OpenCV's examples include gray JPEGs, which OpenCV decodes).
func TestJPEGBGRMatchesOpenCV(t *testing.T) {
	fast, faceSets := 0, 0
	photos := realJPEGs(t)
	for p, data := range photos {
		inFaceSet := !strings.HasPrefix(p, testdata.OpenCVDataDir())
		if inFaceSet {
			faceSets++
		}
		h, err := CheckHeader(data, 0)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		m, ok := decodeJPEGBGR(data, h)
		if ok {
			m.Close()
			fast++
		} else if inFaceSet {
			t.Errorf("decodeJPEGBGR(%s) did not take the BGR path", p)
		}
		got, _, _ := decodeBytes(t, data)
		if want := openCVDecode(t, data); !bytes.Equal(got, want) {
			t.Errorf("Decode(%s) differs from OpenCV's decoder", p)
		}
	}
	t.Logf("%d of %d JPEGs (%d of the face sets) decoded by libjpeg-turbo straight to BGR", fast, len(photos), faceSets)
}

// withOrientation returns data with an EXIF block (APP1, big- or
// little-endian TIFF) holding orientation o inserted after its SOI.
func withOrientation(data []byte, o uint16, bo binary.ByteOrder) []byte {
	tiff := make([]byte, 8+2+12+4)
	if bo == binary.LittleEndian {
		copy(tiff, "II")
	} else {
		copy(tiff, "MM")
	}
	bo.PutUint16(tiff[2:], 42)
	bo.PutUint32(tiff[4:], 8)
	bo.PutUint16(tiff[8:], 1)
	e := tiff[10:]
	bo.PutUint16(e[0:], 0x0112)
	bo.PutUint16(e[2:], 3)
	bo.PutUint32(e[4:], 1)
	bo.PutUint16(e[8:], o)
	seg := append([]byte("Exif\x00\x00"), tiff...)
	app1 := []byte{0xFF, 0xE1, 0, 0}
	binary.BigEndian.PutUint16(app1[2:], uint16(len(seg)+2))
	out := append([]byte(nil), data[:2]...)
	out = append(out, app1...)
	out = append(out, seg...)
	return append(out, data[2:]...)
}

// TestJPEGOrientationLeftToOpenCV: a photo whose EXIF block says to turn it
// is decoded by OpenCV, which turns it; one that says "as stored" takes the
// BGR path. Both give OpenCV's pixels. (pristin.jpg has no EXIF block of
// its own.)
func TestJPEGOrientationLeftToOpenCV(t *testing.T) {
	data, err := os.ReadFile(testdata.Path(t, filepath.Join("go-face-testdata", "images", "pristin.jpg")))
	if err != nil {
		t.Fatal(err)
	}
	h, err := CheckHeader(data, 0)
	if err != nil {
		t.Fatal(err)
	}
	if h.Width == h.Height {
		t.Fatalf("pristin.jpg is square (%dx%d); a turn would not show", h.Width, h.Height)
	}
	for _, tc := range []struct {
		name   string
		o      uint16
		bo     binary.ByteOrder
		fast   bool
		turned bool
	}{
		{"as stored, II", 1, binary.LittleEndian, true, false},
		{"as stored, MM", 1, binary.BigEndian, true, false},
		{"turned 90, II", 6, binary.LittleEndian, false, true},
		{"turned 270, MM", 8, binary.BigEndian, false, true},
		{"flipped, MM", 2, binary.BigEndian, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := withOrientation(data, tc.o, tc.bo)
			if o, sure := exifOrientation(d); !sure || o != int(tc.o) {
				t.Fatalf("exifOrientation = %d, %v; want %d, true", o, sure, tc.o)
			}
			m, ok := decodeJPEGBGR(d, h)
			if ok {
				m.Close()
			}
			if ok != tc.fast {
				t.Errorf("decodeJPEGBGR took the BGR path = %v, want %v", ok, tc.fast)
			}
			got, rows, cols := decodeBytes(t, d)
			if want := openCVDecode(t, d); !bytes.Equal(got, want) {
				t.Errorf("Decode differs from OpenCV's decoder")
			}
			if turned := rows == h.Width && cols == h.Height; turned != tc.turned {
				t.Errorf("Decode gave %dx%d from a %dx%d photo, turned = %v, want %v", cols, rows, h.Width, h.Height, turned, tc.turned)
			}
		})
	}
}

// TestJPEGCorruptLeftToOpenCV: a photo whose scan data is damaged (libjpeg
// decodes it with a warning) is decoded by OpenCV as before.
func TestJPEGCorruptLeftToOpenCV(t *testing.T) {
	data, err := os.ReadFile(testdata.Path(t, filepath.Join("go-face-testdata", "images", "pristin.jpg")))
	if err != nil {
		t.Fatal(err)
	}
	h, err := CheckHeader(data, 0)
	if err != nil {
		t.Fatal(err)
	}
	d := append([]byte(nil), data...)
	// Restart markers in the middle of the scan, where none belong.
	for i := len(d) / 2; i < len(d)/2+64; i += 2 {
		d[i], d[i+1] = 0xFF, 0xD3
	}
	if m, ok := decodeJPEGBGR(d, h); ok {
		m.Close()
		t.Fatal("decodeJPEGBGR took the BGR path for damaged scan data")
	}
	got, _, _ := decodeBytes(t, d)
	if want := openCVDecode(t, d); !bytes.Equal(got, want) {
		t.Errorf("Decode of damaged data differs from OpenCV's decoder")
	}
}
