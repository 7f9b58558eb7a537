package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/facewatch/facewatch/internal/testdata"
	"github.com/facewatch/facewatch/models"
)

func runFaces(t *testing.T, args ...string) (int, []faceLine, string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	full := append([]string{"faces", "--model-dir", string(testdata.ModelDir(t))}, args...)
	code := realMain(context.Background(), full, e)
	var lines []faceLine
	sc := bufio.NewScanner(&out)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l faceLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("output line %q is not JSON: %v", sc.Text(), err)
		}
		lines = append(lines, l)
	}
	return code, lines, errb.String()
}

// TestFacesCommand: one JSON line per face, a line for a file without faces,
// an error line for a bad file, and the command goes on to the next file.
func TestFacesCommand(t *testing.T) {
	portrait := testdata.Path(t, "go-face-testdata/images/tzuyu.jpg")
	dogs := testdata.DlibFace(t, "dogs.jpg")
	bad := filepath.Join(t.TempDir(), "bad.jpg")
	if err := os.WriteFile(bad, []byte("\xff\xd8\xff\xe0 not really a jpeg"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, lines, stderr := runFaces(t, "--descriptors", bad, portrait, dogs)
	if code != 1 || !strings.Contains(stderr, "1 of 3 files failed") {
		t.Errorf("faces exit = %d, stderr %q; want 1 and \"1 of 3 files failed\"", code, stderr)
	}
	if len(lines) != 3 {
		t.Fatalf("faces printed %d lines, want 3: %+v", len(lines), lines)
	}
	if l := lines[0]; l.File != bad || !strings.Contains(l.Error, "corrupt") || l.Box != nil {
		t.Errorf("line for corrupt file = %+v, want an error naming it corrupt", l)
	}
	l := lines[1]
	if l.File != portrait || l.Faces != 1 || l.Box == nil || l.Face == nil || *l.Face != 0 {
		t.Fatalf("line for portrait = %+v, want its one face", l)
	}
	if len(l.Descriptor) != 128 || l.Model == nil || l.Model.SHA256 != models.ResNetV1.SHA256 {
		t.Errorf("portrait descriptor has %d numbers, model %+v; want 128 and %s", len(l.Descriptor), l.Model, models.ResNetV1.Name)
	}
	box := image.Rect(l.Box.X, l.Box.Y, l.Box.X+l.Box.W, l.Box.Y+l.Box.H)
	if len(l.Landmarks) != 5 {
		t.Errorf("portrait landmarks = %v, want 5 points", l.Landmarks)
	}
	for _, p := range l.Landmarks {
		if !image.Pt(p[0], p[1]).In(box) {
			t.Errorf("landmark %v outside box %v", p, box)
		}
	}
	if l.Quality == nil || l.Quality.Score <= 0 || l.Quality.Score > 1 {
		t.Errorf("portrait quality = %+v, want a score in (0,1]", l.Quality)
	}
	if l := lines[2]; l.File != dogs || l.Faces != 0 || l.Error != "" || l.Box != nil {
		t.Errorf("line for dogs.jpg = %+v, want a line with faces 0", l)
	}

	// Without --descriptors, no descriptor; the CNN finds the same face.
	code, lines, stderr = runFaces(t, "--detector", "cnn", portrait)
	if code != 0 || len(lines) != 1 {
		t.Fatalf("faces --detector cnn = exit %d, %d lines (%s), want 0 and 1 line", code, len(lines), stderr)
	}
	c := lines[0]
	if c.Descriptor != nil || c.Box == nil {
		t.Fatalf("cnn line = %+v, want a box and no descriptor", c)
	}
	cbox := image.Rect(c.Box.X, c.Box.Y, c.Box.X+c.Box.W, c.Box.Y+c.Box.H)
	in := cbox.Intersect(box)
	if float64(in.Dx()*in.Dy()) < 0.4*float64(box.Dx()*box.Dy()) {
		t.Errorf("cnn box %v hardly overlaps hog box %v", cbox, box)
	}
}

func TestFacesUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no files", nil, "want at least one image file"},
		{"bad detector", []string{"--detector", "sift", "x.jpg"}, "detect.detector"},
		{"bad upsample", []string{"--upsample", "9", "x.jpg"}, "detect.upsample"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, lines, stderr := runFaces(t, tc.args...)
			if code != 2 || !strings.Contains(stderr, tc.want) || len(lines) != 0 {
				t.Errorf("faces %v = exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
			}
		})
	}
}
