package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// stages are the pipeline's stage packages. They meet only in the message
// schema (internal/wire) and leaf packages (internal/face): none may
// depend on another, directly or through a helper.
var stages = []string{"camera", "detect", "embed", "match", "alert"}

// matchForbidden are what the matcher must build without: OpenCV, dlib,
// and the enrolment and evaluation tools that need them or gonum.
var matchForbidden = []string{
	"gocv.io/x/gocv",
	module + "/internal/dlib",
	module + "/internal/enroll",
	module + "/internal/eval",
}

// pkg is the part of `go list -json` the rules read.
type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

// violations applies the import rules to a package list and returns one
// line per broken rule. Only the packages' own code counts (Deps), not
// their tests: a stage's test may use another stage to make real input.
func violations(pkgs []pkg) []string {
	isStage := map[string]bool{}
	for _, s := range stages {
		isStage[module+"/"+s] = true
	}
	var out []string
	for _, p := range pkgs {
		if isStage[p.ImportPath] {
			for _, d := range p.Deps {
				if isStage[d] {
					out = append(out, "stage "+short(p.ImportPath)+" depends on stage "+short(d)+via(p, d))
				}
			}
		}
		if p.ImportPath == module+"/match" {
			for _, d := range p.Deps {
				for _, f := range matchForbidden {
					if d == f || strings.HasPrefix(d, f+"/") {
						out = append(out, "match depends on "+short(d)+via(p, d))
					}
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// via says whether a dependency is direct.
func via(p pkg, dep string) string {
	if slices.Contains(p.Imports, dep) {
		return " (imports it)"
	}
	return " (through another package)"
}

func short(path string) string { return strings.TrimPrefix(path, module+"/") }

// listPackages runs `go list -json` over the whole module.
func listImportGraph(t *testing.T) []pkg {
	t.Helper()
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports,Deps", "./...", "./internal/testdata") // ./... skips directories named testdata
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -json ./... in %s: %v\n%s", root, err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("reading go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// TestImportRules reads the module's real import graph: no stage depends
// on another stage, and match builds without OpenCV, dlib, enrolment or
// evaluation.
func TestImportRules(t *testing.T) {
	pkgs := listImportGraph(t)
	seen := map[string]bool{}
	for _, p := range pkgs {
		seen[p.ImportPath] = true
		// A sanity check that Deps is read at all: the gallery is SQLite.
		if p.ImportPath == module+"/match" && !slices.Contains(p.Deps, "database/sql") {
			t.Errorf("go list reports match's deps as %q, without database/sql: Deps not read", p.Deps)
		}
	}
	for _, s := range stages {
		if !seen[module+"/"+s] {
			t.Errorf("go list did not report stage package %s: the rule would check nothing", s)
		}
	}
	for _, v := range violations(pkgs) {
		t.Error(v)
	}
}

// TestRulesCatchBadGraphs feeds the rules known-bad and known-good graphs,
// so that TestImportRules cannot pass by checking nothing.
func TestRulesCatchBadGraphs(t *testing.T) {
	m := func(s string) string { return module + "/" + s }
	tests := []struct {
		name string
		pkgs []pkg
		want []string
	}{
		{"clean", []pkg{
			{ImportPath: m("embed"), Imports: []string{m("internal/face")}, Deps: []string{m("internal/face"), m("internal/dlib/resnet")}},
			{ImportPath: m("match"), Imports: []string{m("internal/config")}, Deps: []string{m("internal/config"), "database/sql"}},
			{ImportPath: m("internal/enroll"), Deps: []string{m("detect"), m("embed"), m("match"), "gocv.io/x/gocv"}},
		}, nil},
		{"stage imports stage", []pkg{
			{ImportPath: m("embed"), Imports: []string{m("detect")}, Deps: []string{m("detect"), m("internal/face")}},
		}, []string{"stage embed depends on stage detect (imports it)"}},
		{"stage reaches stage through a helper", []pkg{
			{ImportPath: m("alert"), Imports: []string{m("internal/pipeline")}, Deps: []string{m("internal/pipeline"), m("match")}},
		}, []string{"stage alert depends on stage match (through another package)"}},
		{"match needs OpenCV and dlib", []pkg{
			{ImportPath: m("match"), Imports: []string{m("internal/enroll")},
				Deps: []string{"gocv.io/x/gocv", m("internal/dlib/resnet"), m("internal/enroll"), m("internal/eval"), m("internal/dlibx")}},
		}, []string{
			"match depends on gocv.io/x/gocv (through another package)",
			"match depends on internal/dlib/resnet (through another package)",
			"match depends on internal/enroll (imports it)",
			"match depends on internal/eval (through another package)",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := violations(tc.pkgs)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("violations(%s) = %q, want %q", tc.name, got, want)
			}
		})
	}
}

// TestMatchTestsWithoutOpenCV: match's tests, not only its code, build
// without OpenCV, dlib, enrolment or evaluation (go list -deps -test), so
// the gallery, index and decision are tested on a host without them.
func TestMatchTestsWithoutOpenCV(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "-test", "../../match")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps -test match: %v\n%s", err, stderr.String())
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "database/sql") || !slices.Contains(deps, "testing") {
		t.Fatalf("go list -deps -test match = %d packages without database/sql and testing: not read", len(deps))
	}
	for _, d := range deps {
		for _, f := range matchForbidden {
			if d == f || strings.HasPrefix(d, f+"/") {
				t.Errorf("match's tests depend on %s", d)
			}
		}
	}
}
