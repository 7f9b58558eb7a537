package main

import (
	"encoding/json"
	"image"
	_ "image/jpeg" // DecodeConfig reads the photos' sizes
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/facewatch/facewatch/internal/eval"
	"github.com/facewatch/facewatch/internal/testdata"
)

// idolTable is go-face's TestIdols table: 14 photos of one person each,
// by the file name's person.
var idolTable = []string{"chaeyeon.jpg", "chaeyeon3.jpg", "chaeyoung.jpg", "chaeyoung2.jpg", "elkie.jpg", "jimin.jpg",
	"jimin2.jpg", "jimin4.jpg", "joy.jpg", "luda2.jpg", "meiqi.jpg", "nayoung.jpg", "sejeong.jpg", "tzuyu2.jpg"}

// idolName turns go-face's "Mei Qi (0123abcd)" into "meiqi", the file
// names' form.
func idolName(label string) string {
	name, _, _ := strings.Cut(label, " (")
	return strings.ToLower(strings.ReplaceAll(name, " ", ""))
}

// classifyIdol is go-face's rule: the most votes among the 10 nearest
// reference descriptors, a tie going to the nearest.
func classifyIdol(set eval.LabelledSet, v []float32) string {
	type hit struct {
		who string
		d   float64
	}
	var hits []hit
	for _, id := range set.Identities {
		for i := range id.Vectors {
			var d float64
			for k, x := range id.Vectors[i] {
				dx := float64(x - v[k])
				d += dx * dx
			}
			hits = append(hits, hit{idolName(id.Name), d})
		}
	}
	sort.Slice(hits, func(i, j int) bool { return hits[i].d < hits[j].d })
	votes, first := map[string]int{}, map[string]float64{}
	for _, h := range hits[:10] {
		if votes[h.who] == 0 {
			first[h.who] = h.d
		}
		votes[h.who]++
	}
	best := ""
	for who, n := range votes {
		if best == "" || n > votes[best] || (n == votes[best] && first[who] < first[best]) {
			best = who
		}
	}
	return best
}

// TestFacesStillPolicy: with no flags, `facewatch faces` finds the one face
// of each of go-face's 14 identification photos, identified as the right
// person by go-face's rule against its 552-idol gallery (at the camera's
// 1280-pixel search, jimin.jpg lost its face and jimin4.jpg its name), and
// the 10 faces of pristin.jpg; each line says the pass that found it.
func TestFacesStillPolicy(t *testing.T) {
	set, err := eval.LoadGoFaceFile(testdata.Path(t, "go-face-testdata/idols.json"))
	if err != nil {
		t.Fatal(err)
	}
	dir := testdata.Path(t, "go-face-testdata/images")
	args := []string{"--descriptors"}
	for _, n := range idolTable {
		args = append(args, filepath.Join(dir, n))
	}
	args = append(args, filepath.Join(dir, "pristin.jpg"))
	code, lines, stderr := runFaces(t, args...)
	if code != 0 {
		t.Fatalf("faces = exit %d (%s), want 0", code, stderr)
	}
	perFile := map[string][]faceLine{}
	for _, l := range lines {
		perFile[filepath.Base(l.File)] = append(perFile[filepath.Base(l.File)], l)
	}
	right := 0
	for _, n := range idolTable {
		t.Run(n, func(t *testing.T) {
			ls := perFile[n]
			if len(ls) != 1 || ls[0].Faces != 1 || ls[0].Descriptor == nil {
				t.Fatalf("faces(%s) = %d lines %+v, want one face with a descriptor", n, len(ls), ls)
			}
			if f := ls[0].Found; f == nil || f.Detector == "" || f.Width != ls[0].width(t) {
				t.Errorf("faces(%s) found = %+v, want the pass at full resolution", n, f)
			}
			want := strings.TrimRight(strings.TrimSuffix(n, ".jpg"), "0123456789")
			if got := classifyIdol(set, ls[0].Descriptor); got != want {
				t.Errorf("identify(%s) = %q, want %q", n, got, want)
			} else {
				right++
			}
		})
	}
	t.Logf("go-face's identification photos through faces with no flags: %d/%d", right, len(idolTable))
	if ls := perFile["pristin.jpg"]; len(ls) != 10 || ls[0].Faces != 10 {
		t.Errorf("faces(pristin.jpg) = %d lines, want 10 faces", len(ls))
	}
}

// width is the photo's width, read from its header by the decoder.
func (l faceLine) width(t *testing.T) int {
	t.Helper()
	f, err := os.Open(l.File)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Width
}

// TestFacesFallback: in jimin3.jpg dlib's HOG finds no face, upsampled or
// not; the still-photo policy then asks the MMOD CNN, which finds it, and
// the line says so. Without the fallback the photo has no face.
func TestFacesFallback(t *testing.T) {
	photo := testdata.Path(t, "go-face-testdata/images/jimin3.jpg")
	code, lines, stderr := runFaces(t, "--fallback", "none", photo)
	if code != 0 || len(lines) != 1 || lines[0].Faces != 0 {
		t.Fatalf("faces --fallback none jimin3.jpg = exit %d (%s), %+v; want one line with no face", code, stderr, lines)
	}
	code, lines, stderr = runFaces(t, photo)
	if code != 0 || len(lines) != 1 || lines[0].Faces != 1 {
		t.Fatalf("faces jimin3.jpg = exit %d (%s), %+v; want one face", code, stderr, lines)
	}
	if f := lines[0].Found; f == nil || f.Detector != "cnn" || f.Try != 3 || f.Width*f.Height > 1<<20 {
		t.Errorf("faces(jimin3.jpg) found = %+v, want cnn, try 3, on at most 1 MiB pixels", f)
	}
}

// TestStillCommandsAgree: faces, identify, enroll and eval search photos
// with the same policy, so they find the same faces with the same boxes and
// passes: a group photo searched as is, a small crop (upsampled) and a
// photo only the MMOD fallback finds a face in.
func TestStillCommandsAgree(t *testing.T) {
	ns := startJetStream(t, t.TempDir())
	dir := t.TempDir()
	cfg := filepath.Join(dir, "facewatch.yaml")
	if err := os.WriteFile(cfg, []byte("data_dir: data\nnats:\n  url: "+ns.ClientURL()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	jimin3 := testdata.Path(t, "go-face-testdata/images/jimin3.jpg")
	crop := testdata.Path(t, "dlib_johns/John_Simm/000288_00470387.jpg")
	crop2 := testdata.Path(t, "dlib_johns/John_Simm/000297_00470170.jpg")
	group := testdata.Path(t, "go-face-testdata/images/pristin.jpg")
	photos := []string{jimin3, crop, crop2, group}

	code, facesOut, stderr := runFaces(t, photos...)
	if code != 0 {
		t.Fatalf("faces = exit %d (%s)", code, stderr)
	}
	type seen struct {
		box   string
		found string
	}
	fromFaces := map[string][]seen{}
	for _, l := range facesOut {
		if l.Box != nil {
			b, _ := json.Marshal(l.Box)
			fromFaces[l.File] = append(fromFaces[l.File], seen{string(b), l.Found.String()})
		}
	}
	if got := fromFaces[crop]; len(got) != 1 || got[0].found != "hog upsample 1" {
		t.Errorf("faces(150x150 crop) = %+v, want one face found by hog upsample 1", got)
	}

	for _, step := range [][]string{
		{"watchlist", "create", "--config", cfg, "--kind", "missing", "--owner", "curator", "--legal-basis", "test", "stills"},
		{"enroll", "--config", cfg, "--list", "stills", "--identity", "Jimin", jimin3},
	} {
		code, out, errOut := run(t, step...)
		if code != 0 {
			t.Fatalf("%s = exit %d (%s%s)", step[0], code, out, errOut)
		}
		if step[0] == "enroll" && (!strings.Contains(out, "enrolled 1 photos") || !strings.Contains(out, "1 found by cnn upsample 0")) {
			t.Errorf("enroll jimin3.jpg said %q, want 1 photo enrolled, found by cnn upsample 0 (as faces found it)", out)
		}
	}

	code, out, errOut := run(t, append([]string{"identify", "--config", cfg, "--case", "CASE-STILLS"}, photos...)...)
	if code != 0 {
		t.Fatalf("identify = exit %d (%s)", code, errOut)
	}
	fromIdentify := map[string][]seen{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var l identifyLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("identify line %q: %v", line, err)
		}
		if l.Box != nil {
			b, _ := json.Marshal(l.Box)
			fromIdentify[l.File] = append(fromIdentify[l.File], seen{string(b), l.Found.String()})
		}
	}
	for _, p := range photos {
		f, i := fromFaces[p], fromIdentify[p]
		if len(f) == 0 || len(f) != len(i) {
			t.Errorf("%s: faces found %d, identify %d; want the same, at least one", filepath.Base(p), len(f), len(i))
			continue
		}
		for k := range f {
			if f[k] != i[k] {
				t.Errorf("%s face %d: faces %+v, identify %+v; want the same box and pass", filepath.Base(p), k, f[k], i[k])
			}
		}
	}

	// eval over a labelled directory of the same photos' kinds: its report
	// counts the faces by pass as faces does.
	set := filepath.Join(dir, "set")
	want := map[string]int{}
	for who, ps := range map[string][]string{"jimin": {jimin3}, "simm": {crop, crop2}} {
		for _, p := range ps {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			os.MkdirAll(filepath.Join(set, who), 0o755)
			if err := os.WriteFile(filepath.Join(set, who, filepath.Base(p)), b, 0o644); err != nil {
				t.Fatal(err)
			}
			want[fromFaces[p][0].found]++
		}
	}
	report := filepath.Join(dir, "report.json")
	code, out, errOut = run(t, "eval", "--config", cfg, "--out", report, "--plot", filepath.Join(dir, "report.png"), "--sizes", "2", set)
	if code != 0 {
		t.Fatalf("eval = exit %d (%s%s)", code, out, errOut)
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Found map[string]int `json:"found"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(rep.Found, want) {
		t.Errorf("eval report found = %v, want %v (as faces found them)", rep.Found, want)
	}
}
