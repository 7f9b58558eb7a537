package archtest

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// drawingMarker is the line before the package drawing's fenced block in
// the README and docs/design.md.
const drawingMarker = "<!-- packages: internal/archtest keeps this drawing in step with go list -->"

// drawingDocs are the files that draw the packages, relative to the
// repository root.
var drawingDocs = []string{"README.md", filepath.Join("docs", "design.md")}

// drawing returns the fenced block after drawingMarker in doc.
func drawing(doc string) (string, bool) {
	_, after, ok := strings.Cut(doc, drawingMarker+"\n```\n")
	if !ok {
		return "", false
	}
	block, _, ok := strings.Cut(after, "\n```")
	return block, ok
}

var (
	// stageLine is a stage's arrow: "  detect ─▶ internal/config, ...".
	stageLine = regexp.MustCompile(`^\s+(\w+)\s+─▶\s+(.*)$`)
	// pkgWord is a package path as the drawing writes it.
	pkgWord = regexp.MustCompile(`[a-z][a-z0-9]*(?:/[a-z][a-z0-9]*)*`)
)

// drawingProblems compares a package drawing with the module's packages:
// every package must be named, and each stage's arrow must list exactly
// the module packages the stage imports (its own code, not its tests).
func drawingProblems(block string, pkgs []pkg) []string {
	named := map[string]bool{}
	for _, w := range pkgWord.FindAllString(block, -1) {
		named[w] = true
	}
	drawn := map[string][]string{} // stage -> what its arrow lists
	lines := strings.Split(block, "\n")
	for i := 0; i < len(lines); i++ {
		m := stageLine.FindStringSubmatch(lines[i])
		if m == nil || !slices.Contains(stages, m[1]) {
			continue
		}
		list := m[2]
		for strings.HasSuffix(strings.TrimSpace(list), ",") && i+1 < len(lines) {
			i++
			list += " " + lines[i]
		}
		for _, w := range strings.Split(list, ",") {
			if w = strings.TrimSpace(w); w != "" {
				drawn[m[1]] = append(drawn[m[1]], w)
			}
		}
	}
	var out []string
	for _, p := range pkgs {
		s := short(p.ImportPath)
		if s == p.ImportPath {
			continue // outside the module
		}
		if !named[s] {
			out = append(out, "package "+s+" is not in the drawing")
		}
		if !slices.Contains(stages, s) {
			continue
		}
		var real []string
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, module+"/") {
				real = append(real, short(imp))
			}
		}
		got := drawn[s]
		for _, r := range real {
			if !slices.Contains(got, r) {
				out = append(out, "stage "+s+" imports "+r+", not drawn")
			}
		}
		for _, g := range got {
			if !slices.Contains(real, g) {
				out = append(out, "stage "+s+" is drawn importing "+g+", which it does not")
			}
		}
	}
	slices.Sort(out)
	return out
}

// TestPackageDrawing: the README's architecture section and
// docs/design.md draw the same packages, and the drawing is the module as
// go list reports it (every package named, each stage's imports exact).
func TestPackageDrawing(t *testing.T) {
	pkgs := listImportGraph(t)
	var blocks []string
	for _, name := range drawingDocs {
		b, err := os.ReadFile(filepath.Join("..", "..", name))
		if err != nil {
			t.Fatalf("reading %s: %v", name, err)
		}
		block, ok := drawing(string(b))
		if !ok {
			t.Errorf("%s has no package drawing (a fenced block after %q)", name, drawingMarker)
			continue
		}
		blocks = append(blocks, block)
		for _, p := range drawingProblems(block, pkgs) {
			t.Errorf("%s: %s", name, p)
		}
	}
	if len(blocks) == 2 && blocks[0] != blocks[1] {
		t.Errorf("the package drawings of %s and %s differ; keep them the same", drawingDocs[0], drawingDocs[1])
	}
}

// TestDrawingProblemsCatchStaleDrawings feeds the checker drawings that
// are out of date, so that TestPackageDrawing cannot pass by checking
// nothing.
func TestDrawingProblemsCatchStaleDrawings(t *testing.T) {
	m := func(s string) string { return module + "/" + s }
	pkgs := []pkg{
		{ImportPath: m("detect"), Imports: []string{"fmt", m("internal/face"), m("models")}},
		{ImportPath: m("match"), Imports: []string{m("internal/wire"), m("internal/sqlitefile")}},
		{ImportPath: m("internal/face")},
		{ImportPath: m("internal/wire")},
		{ImportPath: m("internal/sqlitefile")},
		{ImportPath: m("models")},
		{ImportPath: "gocv.io/x/gocv"},
	}
	const good = `stages
  detect ─▶ internal/face, models
  match  ─▶ internal/wire,
            internal/sqlitefile
leaves
  internal/face, internal/wire, internal/sqlitefile, models`
	tests := []struct {
		name, block string
		extra       []pkg // packages beyond pkgs
		want        []string
	}{
		{"current", good, nil, nil},
		{"a package added since", good, []pkg{{ImportPath: m("internal/lease")}},
			[]string{"package internal/lease is not in the drawing"}},
		{"package never named", strings.NewReplacer("detect ─▶ internal/face, models", "detect ─▶ models",
			"  internal/face, internal/wire,", "  internal/wire,").Replace(good), nil,
			[]string{"package internal/face is not in the drawing", "stage detect imports internal/face, not drawn"}},
		{"import not drawn", strings.Replace(good, "match  ─▶ internal/wire,\n            internal/sqlitefile", "match  ─▶ internal/wire", 1), nil,
			[]string{"stage match imports internal/sqlitefile, not drawn"}},
		{"import drawn that is gone", strings.Replace(good, "detect ─▶ internal/face, models", "detect ─▶ internal/face, internal/wire, models", 1), nil,
			[]string{"stage detect is drawn importing internal/wire, which it does not"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := drawingProblems(tc.block, slices.Concat(pkgs, tc.extra)); !slices.Equal(got, tc.want) {
				t.Errorf("drawingProblems(%s) = %q, want %q", tc.name, got, tc.want)
			}
		})
	}
	if _, ok := drawing("# x\n" + drawingMarker + "\n```\na\nb\n```\n"); !ok {
		t.Errorf("drawing() did not find a marked block")
	}
	if _, ok := drawing("# x\n```\na\n```\n"); ok {
		t.Errorf("drawing() found a block without the marker")
	}
}
