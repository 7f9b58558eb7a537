package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// module is the import path of the module the tests check.
const module = "github.com/facewatch/facewatch"

// listedPackage is the part of `go list -json` output the tests read.
type listedPackage struct {
	ImportPath string
	Name       string
	Dir        string
	GoFiles    []string
	CgoFiles   []string
}

// listPackages runs `go list -json` on every package of the module.
func listPackages(t *testing.T) []listedPackage {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command("go", "list", "-json", module+"/...", module+"/internal/testdata") // ... skips directories named testdata
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v: %s", err, stderr.Bytes())
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages in %s, want the whole module", len(pkgs), module)
	}
	return pkgs
}

// docProblem says what is wrong with the package comment of p, or "" when
// exactly one of its (non-test) files has one and it starts as godoc
// expects: "Package name ..." for a library, "Command name ..." or
// "Name ..." for a command.
func docProblem(p listedPackage) (string, error) {
	fset := token.NewFileSet()
	var files []string
	var doc string
	for _, name := range slices.Concat(p.GoFiles, p.CgoFiles) {
		f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, parser.PackageClauseOnly|parser.ParseComments)
		if err != nil {
			return "", fmt.Errorf("parsing %s: %w", name, err)
		}
		if f.Doc != nil {
			files = append(files, name)
			doc = f.Doc.Text()
		}
	}
	switch {
	case len(files) == 0:
		return "no package comment", nil
	case len(files) > 1:
		return fmt.Sprintf("package comments in %d files (%s), want one", len(files), strings.Join(files, ", ")), nil
	}
	var want []string
	if p.Name == "main" {
		cmd := path.Base(p.ImportPath)
		r, n := utf8.DecodeRuneInString(cmd)
		want = []string{"Command " + cmd + " ", string(unicode.ToUpper(r)) + cmd[n:] + " "}
	} else {
		want = []string{"Package " + p.Name + " "}
	}
	for _, w := range want {
		if strings.HasPrefix(doc, w) {
			return "", nil
		}
	}
	first, _, _ := strings.Cut(doc, "\n")
	quoted := make([]string, len(want))
	for i, w := range want {
		quoted[i] = strconv.Quote(w)
	}
	return fmt.Sprintf("package comment in %s starts %q, want %s", files[0], first, strings.Join(quoted, " or ")), nil
}

// TestPackageDocs: every package of the module says in one package comment
// what it owns (STYLE.md: one package comment per package).
func TestPackageDocs(t *testing.T) {
	for _, p := range listPackages(t) {
		problem, err := docProblem(p)
		if err != nil {
			t.Errorf("%s: %v", p.ImportPath, err)
		} else if problem != "" {
			t.Errorf("%s: %s", p.ImportPath, problem)
		}
	}
}

// TestDocProblem: the checker itself finds each kind of bad package comment.
func TestDocProblem(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pkg   string // package name; the import path ends in "tool"
		files map[string]string
		want  string // "" for none
	}{
		{"one comment", "tool", map[string]string{
			"a.go": "// Package tool does things.\npackage tool\n",
			"b.go": "package tool\n",
		}, ""},
		{"none", "tool", map[string]string{
			"a.go": "package tool\n",
			"b.go": "// Not a package comment.\n\npackage tool\n",
		}, "no package comment"},
		{"two files", "tool", map[string]string{
			"a.go": "// Package tool does things.\npackage tool\n",
			"b.go": "// Package tool also does things.\npackage tool\n",
		}, "package comments in 2 files (a.go, b.go), want one"},
		{"wrong start", "tool", map[string]string{
			"a.go": "// This package does things.\npackage tool\n",
		}, `package comment in a.go starts "This package does things.", want "Package tool "`},
		{"other name", "tool", map[string]string{
			"a.go": "// Package tools does things.\npackage tool\n",
		}, `starts "Package tools does things."`},
		{"command form", "main", map[string]string{
			"main.go": "// Command tool does things.\npackage main\n",
		}, ""},
		{"command named", "main", map[string]string{
			"main.go": "// Tool does things.\npackage main\n",
		}, ""},
		{"command as package", "main", map[string]string{
			"main.go": "// Package main does things.\npackage main\n",
		}, `want "Command tool " or "Tool "`},
		{"unparsable", "tool", map[string]string{
			"a.go": "// Package tool does things.\npackag tool\n",
		}, "parsing a.go"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := listedPackage{ImportPath: module + "/internal/tool", Name: tc.pkg, Dir: t.TempDir()}
			for name, src := range tc.files {
				if err := os.WriteFile(filepath.Join(p.Dir, name), []byte(src), 0o644); err != nil {
					t.Fatal(err)
				}
				p.GoFiles = append(p.GoFiles, name)
			}
			slices.Sort(p.GoFiles)
			got, err := docProblem(p)
			if err != nil {
				got = err.Error()
			}
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Errorf("docProblem(%s) = %q, want %q", tc.name, got, tc.want)
			}
		})
	}
}
