package models

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// These tests feed extract archives built here, with a tiny model spec
// (the real models are 9-22 MB; the checks do not depend on size).

var tinyContent = []byte("tiny model bytes")

func tinySpec() Spec {
	s := sha256.Sum256(tinyContent)
	return Spec{Name: "tiny.dat", Size: int64(len(tinyContent)), SHA256: hex.EncodeToString(s[:])}
}

// entry is one archive member: a file (body), a directory, or a symlink
// or hard link to target.
type entry struct {
	name, body, target string
	kind               byte // tar type flag
}

func tarArchive(t testing.TB, gz bool, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.Writer = &buf
	var z *gzip.Writer
	if gz {
		z = gzip.NewWriter(&buf)
		w = z
	}
	tw := tar.NewWriter(w)
	for _, e := range entries {
		kind := e.kind
		if kind == 0 {
			kind = tar.TypeReg
		}
		h := &tar.Header{Name: e.name, Mode: 0o644, Typeflag: kind, Linkname: e.target}
		if kind == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar header %q: %v", e.name, err)
		}
		if kind == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	if z != nil {
		z.Close()
	}
	return buf.Bytes()
}

func zipArchive(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		body := e.body
		if e.kind == tar.TypeSymlink {
			h.SetMode(fs.ModeSymlink | 0o777)
			body = e.target
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatalf("zip entry %q: %v", e.name, err)
		}
		w.Write([]byte(body))
	}
	zw.Close()
	return buf.Bytes()
}

var tiny = string(tinyContent)

// extractCases: each archive, and whether extract must refuse it
// (ErrUnsafeArchive or ErrSize) or install tiny.dat.
var extractCases = []struct {
	name    string
	entries []entry
	refuse  error // nil: tiny.dat is installed
}{
	{"plain", []entry{{name: "pkg/models/tiny.dat", body: tiny}}, nil},
	{"dot slash", []entry{{name: "./pkg/tiny.dat", body: tiny}}, nil},
	{"unrelated link is ignored", []entry{{name: "pkg/README", target: "README.md", kind: tar.TypeSymlink}, {name: "pkg/tiny.dat", body: tiny}}, nil},
	{"climbs out", []entry{{name: "pkg/../../tiny.dat", body: tiny}}, ErrUnsafeArchive},
	{"absolute", []entry{{name: "/etc/tiny.dat", body: tiny}}, ErrUnsafeArchive},
	{"escaping other file", []entry{{name: "../../.bashrc", body: "evil"}, {name: "pkg/tiny.dat", body: tiny}}, ErrUnsafeArchive},
	{"windows absolute", []entry{{name: `C:\tiny.dat`, body: tiny}}, ErrUnsafeArchive},
	{"symlink named as a model", []entry{{name: "pkg/shape_predictor_5_face_landmarks.dat", target: "/etc/passwd", kind: tar.TypeSymlink}}, ErrUnsafeArchive},
	{"symlink out", []entry{{name: "pkg/x", target: "../../../etc", kind: tar.TypeSymlink}}, ErrUnsafeArchive},
	{"oversize entry", []entry{{name: "pkg/tiny.dat", body: tiny + strings.Repeat("x", 1<<16)}}, ErrSize},
	{"short entry", []entry{{name: "pkg/tiny.dat", body: tiny[:3]}}, ErrSize},
}

func hardlinkCase() []entry {
	return []entry{{name: "pkg/shape_predictor_5_face_landmarks.dat", target: "pkg/other", kind: tar.TypeLink}}
}

// runExtract writes archive as src (by name, for its format) in a fresh
// parent directory and extracts into parent/out; it returns the error and
// the parent.
func runExtract(t testing.TB, name string, archive []byte) (string, error) {
	t.Helper()
	parent := t.TempDir()
	src := filepath.Join(parent, name)
	if err := os.WriteFile(src, archive, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(parent, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	err := extract(context.Background(), src, out, map[string]Spec{"tiny.dat": tinySpec()}, nil)
	return parent, err
}

// checkExtracted asserts the properties every extraction has: nothing
// but src and out in the parent, nothing in out but a verified tiny.dat
// (no partial file, no link), and tiny.dat present exactly when extract
// succeeded and the archive held it.
func checkExtracted(t testing.TB, what string, err error, parent, src string) (installed bool) {
	t.Helper()
	ents, _ := os.ReadDir(parent)
	for _, e := range ents {
		if e.Name() != src && e.Name() != "out" {
			t.Fatalf("%s: extract wrote %s beside its output directory", what, e.Name())
		}
	}
	outs, _ := os.ReadDir(filepath.Join(parent, "out"))
	for _, e := range outs {
		if e.Name() != "tiny.dat" || !e.Type().IsRegular() {
			t.Fatalf("%s: extract left %s (%v) in the output directory (err %v)", what, e.Name(), e.Type(), err)
		}
		if verr := VerifyFile(filepath.Join(parent, "out", e.Name()), tinySpec()); verr != nil {
			t.Fatalf("%s: extract installed an unverified tiny.dat: %v", what, verr)
		}
		installed = true
	}
	if installed && err != nil {
		t.Fatalf("%s: extract = %v but installed tiny.dat", what, err)
	}
	return installed
}

func TestExtractRefusesUnsafeArchives(t *testing.T) {
	formats := []struct {
		file  string
		build func(testing.TB, ...entry) []byte
	}{
		{"m.tar.gz", func(t testing.TB, e ...entry) []byte { return tarArchive(t, true, e...) }},
		{"m.tar", func(t testing.TB, e ...entry) []byte { return tarArchive(t, false, e...) }},
		{"m.zip", zipArchive},
	}
	cases := append(extractCases[:len(extractCases):len(extractCases)], struct {
		name    string
		entries []entry
		refuse  error
	}{"hard link named as a model", hardlinkCase(), ErrUnsafeArchive})
	for _, f := range formats {
		for _, tc := range cases {
			if f.file == "m.zip" && (tc.name == "hard link named as a model" || tc.name == "symlink out") {
				continue // zip has no hard links, and a zip link's target is its content
			}
			t.Run(f.file+"/"+tc.name, func(t *testing.T) {
				parent, err := runExtract(t, f.file, f.build(t, tc.entries...))
				installed := checkExtracted(t, tc.name, err, parent, f.file)
				if tc.refuse == nil && (err != nil || !installed) {
					t.Errorf("extract(%s) = %v, installed %v; want tiny.dat installed", tc.name, err, installed)
				}
				if tc.refuse != nil && !errors.Is(err, tc.refuse) {
					t.Errorf("extract(%s) = %v, want %v", tc.name, err, tc.refuse)
				}
			})
		}
	}
}

// FuzzExtractTar and FuzzExtractZip: whatever the archive bytes, extract
// never panics, never writes outside its directory, leaves nothing there
// but a verified model, and refuses every archive with an entry that is
// absolute, climbs out with "..", or is a link named as a model (an oracle
// reading the archive independently).
func FuzzExtractTar(f *testing.F) {
	for _, tc := range extractCases {
		f.Add(tarArchive(f, false, tc.entries...))
	}
	f.Add(tarArchive(f, false, hardlinkCase()...))
	f.Fuzz(func(t *testing.T, archive []byte) {
		parent, err := runExtract(t, "m.tar", archive)
		checkExtracted(t, "tar", err, parent, "m.tar")
		tr := tar.NewReader(bytes.NewReader(archive))
		for {
			h, rerr := tr.Next()
			if rerr != nil {
				return
			}
			if badEntry(h.Name, h.Typeflag == tar.TypeSymlink || h.Typeflag == tar.TypeLink) && err == nil {
				t.Fatalf("extract accepted a tar with entry %q (type %c)", h.Name, h.Typeflag)
			}
		}
	})
}

func FuzzExtractZip(f *testing.F) {
	for _, tc := range extractCases {
		f.Add(zipArchive(f, tc.entries...))
	}
	f.Fuzz(func(t *testing.T, archive []byte) {
		parent, err := runExtract(t, "m.zip", archive)
		checkExtracted(t, "zip", err, parent, "m.zip")
		zr, zerr := zip.NewReader(bytes.NewReader(archive), int64(len(archive)))
		if zerr != nil {
			return
		}
		for _, zf := range zr.File {
			if badEntry(zf.Name, zf.Mode()&fs.ModeSymlink != 0) && err == nil {
				t.Fatalf("extract accepted a zip with entry %q (mode %v)", zf.Name, zf.Mode())
			}
		}
	})
}

// badEntry is the oracle: an absolute or climbing name, or a link named as
// a model file.
func badEntry(name string, link bool) bool {
	n := strings.ReplaceAll(name, `\`, "/")
	if strings.HasPrefix(n, "/") || n == ".." || strings.HasPrefix(n, "../") || strings.HasSuffix(n, "/..") || strings.Contains(n, "/../") {
		return true
	}
	base := n[strings.LastIndex(n, "/")+1:]
	_, known := Lookup(strings.TrimSuffix(base, ".bz2"))
	return link && known
}
