// Package testdata finds the real photos and clips that facewatch's tests
// and benchmarks use: the shared identity-labelled sets ($FACEWATCH_TESTDATA,
// default ../shared/data from the repository root), Debian's dlib example
// faces ($FACEWATCH_DLIB_FACES) and OpenCV's sample data
// ($FACEWATCH_OPENCV_DATA). A test that needs data it cannot find fails: in
// CI a skipped test counts as a missing one. It never copies data into the
// repository.
package testdata

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/facewatch/facewatch/models"
)

// Environment variables that override the default locations.
const (
	EnvShared     = "FACEWATCH_TESTDATA"
	EnvDlibFaces  = "FACEWATCH_DLIB_FACES"
	EnvOpenCVData = "FACEWATCH_OPENCV_DATA"
)

// Debian's default locations.
const (
	defaultDlibFaces  = "/usr/share/doc/libdlib19.1/examples/faces"
	defaultOpenCVData = "/usr/share/doc/opencv-doc/examples/data"
)

// RepoRoot is the repository root, found from this source file's location.
func RepoRoot() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		wd, _ := os.Getwd()
		return wd
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// SharedDir is the identity-labelled data set: $FACEWATCH_TESTDATA, else
// shared/data beside the repository (../shared/data), or beside one of its
// parent directories, for checkouts nested one level deeper (a CI clone
// inside the workspace).
func SharedDir() string {
	if v := os.Getenv(EnvShared); v != "" {
		return v
	}
	dir := RepoRoot()
	for range 3 {
		dir = filepath.Dir(dir)
		p := filepath.Join(dir, "shared", "data")
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			return p
		}
	}
	return filepath.Join(RepoRoot(), "..", "shared", "data")
}

// DlibFacesDir is Debian's dlib example faces directory.
func DlibFacesDir() string {
	if v := os.Getenv(EnvDlibFaces); v != "" {
		return v
	}
	return defaultDlibFaces
}

// OpenCVDataDir is Debian's opencv-doc sample data directory.
func OpenCVDataDir() string {
	if v := os.Getenv(EnvOpenCVData); v != "" {
		return v
	}
	return defaultOpenCVData
}

// Find returns the path of rel under the shared data set, or an error that
// says which variable to set.
func Find(rel string) (string, error) {
	return find(SharedDir(), rel, EnvShared)
}

// FindDlibFace returns the path of rel under the dlib example faces.
func FindDlibFace(rel string) (string, error) {
	return find(DlibFacesDir(), rel, EnvDlibFaces+" (install libdlib19.1)")
}

// FindOpenCV returns the path of rel under OpenCV's sample data.
func FindOpenCV(rel string) (string, error) {
	return find(OpenCVDataDir(), rel, EnvOpenCVData+" (install opencv-doc)")
}

func find(dir, rel, hint string) (string, error) {
	p := filepath.Join(dir, rel)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("test data %s not found: %w (set %s)", rel, err, hint)
	}
	return p, nil
}

// Path returns the shared-data path of rel, failing the test if it is
// missing.
func Path(tb testing.TB, rel string) string {
	tb.Helper()
	p, err := Find(rel)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// DlibFace returns the path of a dlib example face file, failing the test
// if it is missing.
func DlibFace(tb testing.TB, rel string) string {
	tb.Helper()
	p, err := FindDlibFace(rel)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// OpenCV returns the path of an OpenCV sample file, failing the test if it
// is missing.
func OpenCV(tb testing.TB, rel string) string {
	tb.Helper()
	p, err := FindOpenCV(rel)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// ModelDir returns the directory of models for tests, chosen as the binary
// chooses it without flag or config: $FACEWATCH_MODEL_DIR, else the per-user
// cache, the place `make setup` fetches to. It does not verify; callers use
// models.Dir.Path, which names a missing or corrupt file.
func ModelDir(tb testing.TB) models.Dir {
	tb.Helper()
	d, _, err := models.Locate("", "", os.Getenv)
	if err != nil {
		tb.Fatal(err)
	}
	return models.Dir(d)
}

// NATSServer returns a nats-server binary for tests that run real server
// processes: nats-server on PATH, else in Go's bin directory (where
// scripts/setup.sh installs it from the Go module go.mod pins), else one
// built from that module into the user's cache directory
// (facewatch/nats-server-VERSION), once per version. Nothing is
// downloaded.
func NATSServer(t testing.TB) string {
	t.Helper()
	natsOnce.Do(func() { natsPath, natsErr = findNATSServer() })
	if natsErr != nil {
		t.Fatalf("nats-server: %v", natsErr)
	}
	return natsPath
}

var (
	natsOnce sync.Once
	natsPath string
	natsErr  error
)

func findNATSServer() (string, error) {
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p, nil
	}
	gobin, _ := exec.Command("go", "env", "GOBIN").Output()
	dir := strings.TrimSpace(string(gobin))
	if dir == "" {
		gopath, _ := exec.Command("go", "env", "GOPATH").Output()
		dir = filepath.Join(strings.TrimSpace(string(gopath)), "bin")
	}
	if p := filepath.Join(dir, "nats-server"); isExecutable(p) {
		return p, nil
	}
	// Built once per version into the user's cache, like the models.
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/nats-io/nats-server/v2")
	cmd.Dir = RepoRoot()
	v, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("finding its version in go.mod: %w", err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	p := filepath.Join(cache, "facewatch", "nats-server-"+strings.TrimSpace(string(v)))
	if isExecutable(p) {
		return p, nil
	}
	cmd = exec.Command("go", "build", "-o", p, "github.com/nats-io/nats-server/v2")
	cmd.Dir = RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building it from its Go module: %v: %s", err, out)
	}
	return p, nil
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// DlibBuiltWithCUDA reads the config.h of the dlib that pkg-config names
// (the one facewatch is compiled against), independently of facewatch's cgo
// code: dlib's build defines DLIB_USE_CUDA there exactly when libdlib was
// built with CUDA. Tests compare the cgo detection with it.
func DlibBuiltWithCUDA(t testing.TB) bool {
	t.Helper()
	var dirs []string
	for _, args := range [][]string{{"--cflags-only-I", "dlib-1"}, {"--variable=includedir", "dlib-1"}} {
		out, err := exec.Command("pkg-config", args...).Output()
		if err != nil {
			t.Fatalf("pkg-config %s: %v", strings.Join(args, " "), err)
		}
		for _, f := range strings.Fields(string(out)) {
			dirs = append(dirs, strings.TrimPrefix(f, "-I"))
		}
	}
	def := regexp.MustCompile(`(?m)^\s*#\s*define\s+DLIB_USE_CUDA\b`)
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "dlib", "config.h"))
		if err != nil {
			continue
		}
		return def.Match(b)
	}
	t.Fatalf("no dlib/config.h under %v", dirs)
	return false
}
