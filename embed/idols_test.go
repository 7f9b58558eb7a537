package embed_test

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/facewatch/facewatch/embed"
	"github.com/facewatch/facewatch/internal/testdata"
)

// gallery is go-face's test gallery: reference descriptors of 552 idols
// computed with the same dlib model.
type gallery struct {
	vecs []embed.Vector
	who  []string // "Name, Band" per vector
}

func loadIdols(t testing.TB) *gallery {
	t.Helper()
	data, err := os.ReadFile(testdata.Path(t, "go-face-testdata/idols.json"))
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Idols []struct{ ID, Name, BandName string } `json:"idols"`
		Faces []struct {
			Descriptor string `json:"descriptor"`
			IdolID     string `json:"idol_id"`
		} `json:"faces"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatalf("idols.json: %v", err)
	}
	// encoding/json matches band_name to BandName case-insensitively only
	// with the underscore; decode names explicitly.
	var names struct {
		Idols []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
			Band string `json:"band_name"`
		} `json:"idols"`
	}
	if err := json.Unmarshal(data, &names); err != nil {
		t.Fatal(err)
	}
	byID := map[string]string{}
	for _, i := range names.Idols {
		byID[i.ID] = i.Name + ", " + i.Band
	}
	g := &gallery{}
	for _, f := range raw.Faces {
		b, err := base64.StdEncoding.DecodeString(f.Descriptor)
		if err != nil || len(b) != embed.Dim*4 {
			t.Fatalf("idols.json descriptor of %s: %d bytes, %v", f.IdolID, len(b), err)
		}
		var v embed.Vector
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[i*4:]))
		}
		g.vecs = append(g.vecs, v)
		g.who = append(g.who, byID[f.IdolID])
	}
	if len(byID) != 552 || len(g.vecs) < 1000 {
		t.Fatalf("idols.json: %d identities, %d descriptors; want 552 and about 1,286", len(byID), len(g.vecs))
	}
	return g
}

// classify is go-face's rule (classify.cc): among the 10 nearest reference
// descriptors, the identity with most votes wins; a tie goes to the one with
// the nearest descriptor.
func (g *gallery) classify(v *embed.Vector) string {
	type hit struct {
		who string
		d   float32
	}
	hits := make([]hit, len(g.vecs))
	for i := range g.vecs {
		hits[i] = hit{g.who[i], embed.Distance(v, &g.vecs[i])}
	}
	sort.SliceStable(hits, func(i, j int) bool { return hits[i].d < hits[j].d })
	votes := map[string]int{}
	first := map[string]float32{}
	for _, h := range hits[:min(10, len(hits))] {
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

// nearest returns the distance to the nearest descriptor of who and to the
// nearest descriptor of anyone else.
func (g *gallery) nearest(v *embed.Vector, who string) (right, wrong float32) {
	right, wrong = 9, 9
	for i := range g.vecs {
		d := embed.Distance(v, &g.vecs[i])
		if g.who[i] == who {
			right = min(right, d)
		} else {
			wrong = min(wrong, d)
		}
	}
	return right, wrong
}

// idolTests is go-face's TestIdols table.
var idolTests = map[string]string{
	"elkie.jpg":      "Elkie, CLC",
	"chaeyoung.jpg":  "Chaeyoung, Twice",
	"chaeyoung2.jpg": "Chaeyoung, Twice",
	"sejeong.jpg":    "Sejeong, Gugudan",
	"jimin.jpg":      "Jimin, AOA",
	"jimin2.jpg":     "Jimin, AOA",
	"jimin4.jpg":     "Jimin, AOA",
	"meiqi.jpg":      "Mei Qi, WJSN",
	"chaeyeon.jpg":   "Chaeyeon, DIA",
	"chaeyeon3.jpg":  "Chaeyeon, DIA",
	"tzuyu2.jpg":     "Tzuyu, Twice",
	"nayoung.jpg":    "Nayoung, PRISTIN",
	"luda2.jpg":      "Luda, WJSN",
	"joy.jpg":        "Joy, Red Velvet",
}

// TestIdols reproduces go-face's identification test through our path:
// each of the 14 photos holds one face, identified as the right person and
// band against the 552-identity gallery.
func TestIdols(t *testing.T) {
	g := loadIdols(t)
	names := make([]string, 0, len(idolTests))
	for n := range idolTests {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		want := idolTests[name]
		t.Run(name, func(t *testing.T) {
			faces, ds := facesIn(t, idolPath(t, name))
			if len(faces) != 1 {
				t.Fatalf("faces in %s = %d, want 1", name, len(faces))
			}
			got := g.classify(&ds[0].Vector)
			right, wrong := g.nearest(&ds[0].Vector, want)
			t.Logf("%s: identified as %q; nearest %s %.3f, nearest other %.3f", name, got, want, right, wrong)
			if got != want {
				t.Errorf("identify(%s) = %q, want %q", name, got, want)
			}
		})
	}
}

// TestIdolsOthers reports how the photos outside go-face's table fare
// (name from the file name; the group photo pristin.jpg must show 10 faces).
// Only the face count is asserted: go-face makes no claim about the rest.
func TestIdolsOthers(t *testing.T) {
	g := loadIdols(t)
	files, err := filepath.Glob(filepath.Join(testdata.Path(t, "go-face-testdata/images"), "*.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	right, nn, total := 0, 0, 0
	for _, f := range files {
		name := filepath.Base(f)
		if _, ok := idolTests[name]; ok {
			continue
		}
		faces, ds := facesIn(t, f)
		if name == "pristin.jpg" && len(faces) != 10 {
			t.Errorf("faces in pristin.jpg = %d, want 10", len(faces))
		}
		person := strings.TrimRight(strings.TrimSuffix(name, ".jpg"), "0123456789")
		for i := range ds {
			got := g.classify(&ds[i].Vector)
			ok := nameOf(got) == person
			// Nearest descriptor of anyone with that name, and of anyone else.
			sameD, otherD := float32(9), float32(9)
			for j := range g.vecs {
				d := embed.Distance(&ds[i].Vector, &g.vecs[j])
				if nameOf(g.who[j]) == person {
					sameD = min(sameD, d)
				} else {
					otherD = min(otherD, d)
				}
			}
			if name != "pristin.jpg" {
				total++
				if ok {
					right++
				}
				if sameD < otherD {
					nn++
				}
			}
			t.Logf("%s face %d: identified as %q (file name says %s, match %v); nearest %s %.3f, nearest other %.3f", name, i, got, person, ok, person, sameD, otherD)
		}
		if len(faces) == 0 {
			t.Logf("%s: no face found (go-face finds none either)", name)
		}
	}
	t.Logf("photos outside go-face's table: %d of %d faces identified by name with go-face's 10-nearest vote, %d by the nearest descriptor", right, total, nn)
}

// nameOf turns "Mei Qi, WJSN" into "meiqi", the form of the file names.
func nameOf(who string) string {
	return strings.ToLower(strings.ReplaceAll(strings.SplitN(who, ",", 2)[0], " ", ""))
}
