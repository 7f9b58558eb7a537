package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/facewatch/facewatch/internal/testdata"
	"github.com/facewatch/facewatch/models"
)

// runCLI runs the binary's main path in-process.
func runCLI(t *testing.T, envVars map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdout: &out, stderr: &errb, getenv: func(k string) string {
		if v, ok := envVars[k]; ok {
			return v
		}
		return os.Getenv(k)
	}}
	code = realMain(context.Background(), args, e)
	return code, out.String(), errb.String()
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, nil, "version")
	if code != 0 {
		t.Fatalf("version exit = %d", code)
	}
	for _, re := range []string{`(?m)^opencv\s+4\.\d+`, `(?m)^dlib\s+19\.\d+\.\d+`, `(?m)^go\s+go1\.`, `(?m)^simd\s+\S+`, `(?m)^cxxflags\s+.* -march=\S+`, `(?m)^needs\s+\S+ CPU: .*\(this CPU has them\)$`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("version output lacks %s:\n%s", re, out)
		}
	}
}

func TestDispatch(t *testing.T) {
	tests := []struct {
		args     []string
		code     int
		inStderr string
	}{
		{[]string{}, 2, "usage: facewatch"},
		{[]string{"nope"}, 2, `unknown command "nope"`},
		// embed runs inside detect; there is no embed command.
		{[]string{"embed"}, 2, `unknown command "embed"`},
		{[]string{"check-config"}, 2, "want one config file"},
		{[]string{"models"}, 2, "want a verb"},
		{[]string{"models", "frobnicate"}, 2, `unknown verb "frobnicate"`},
		{[]string{"version", "--bogus"}, 2, "flag provided but not defined"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, errOut := runCLI(t, nil, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.inStderr) {
				t.Errorf("facewatch %v = exit %d, stderr %q; want exit %d mentioning %q", tc.args, code, errOut, tc.code, tc.inStderr)
			}
		})
	}
}

func TestCheckConfig(t *testing.T) {
	example := filepath.Join(testdata.RepoRoot(), "deploy", "facewatch.yaml")
	code, out, errOut := runCLI(t, nil, "check-config", example)
	if code != 0 || !strings.Contains(out, "ok (2 cameras") {
		t.Fatalf("check-config example = %d, %q, %q", code, out, errOut)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("cameras:\n  - id: a\n    url: ftp://x/y\n"), 0o644)
	code, _, errOut = runCLI(t, nil, "check-config", bad)
	if code != 1 || !strings.Contains(errOut, `cameras[0].url: scheme "ftp" not supported`) || strings.Count(errOut, "\n") != 1 {
		t.Errorf("check-config bad = %d, %q; want exit 1 and one line naming the field", code, errOut)
	}
	// A detector name no backend registered is caught too, with the names
	// that are (package detect knows them, not package config).
	typo := filepath.Join(t.TempDir(), "typo.yaml")
	os.WriteFile(typo, []byte("detect:\n  detector: hgo\n"), 0o644)
	code, _, errOut = runCLI(t, nil, "check-config", typo)
	if code != 1 || !strings.Contains(errOut, `detect.detector: "hgo" is not one of cnn, hog`) || strings.Count(errOut, "\n") != 1 {
		t.Errorf("check-config typo = %d, %q; want exit 1 and one line listing the backends", code, errOut)
	}
	// Credentials in a config error never reach the terminal.
	secret := filepath.Join(t.TempDir(), "secret.yaml")
	os.WriteFile(secret, []byte("cameras:\n  - id: a\n    url: 'rtsp://admin:hunter2@/s'\n"), 0o644)
	_, _, errOut = runCLI(t, nil, "check-config", secret)
	if strings.Contains(errOut, "hunter2") || !strings.Contains(errOut, "has no host") {
		t.Errorf("check-config with credentials = %q, want the error without the password", errOut)
	}
}

func TestModelsVerifyAndRepair(t *testing.T) {
	cache := string(testdata.ModelDir(t))
	if _, err := models.Verify(cache); err != nil {
		t.Fatalf("verified models needed (run `make setup`): %v", err)
	}
	dir := t.TempDir()
	for _, s := range models.Known() {
		b, _ := os.ReadFile(filepath.Join(cache, s.Name))
		os.WriteFile(filepath.Join(dir, s.Name), b, 0o644)
	}
	code, out, _ := runCLI(t, nil, "models", "verify", "--model-dir", dir)
	if code != 0 || !strings.Contains(out, "all 3 models verified") {
		t.Fatalf("verify intact = %d, %q", code, out)
	}
	// Change one byte of the descriptor network.
	p := filepath.Join(dir, models.ResNetV1.Name)
	b, _ := os.ReadFile(p)
	b[len(b)/3] ^= 0x20
	os.WriteFile(p, b, 0o644)
	code, _, errOut := runCLI(t, map[string]string{models.EnvDir: dir}, "models", "verify")
	if code != 1 || !strings.Contains(errOut, models.ResNetV1.Name) || !strings.Contains(errOut, "SHA-256 mismatch") {
		t.Fatalf("verify after one changed byte = %d, %q; want exit 1 naming the file", code, errOut)
	}
	if strings.Count(errOut, "\n") != 1 {
		t.Errorf("verify printed %q, want exactly one line for one bad file", errOut)
	}
	code, out, errOut = runCLI(t, map[string]string{models.EnvDir: dir}, "models", "fetch", "--from", cache)
	if code != 0 || strings.Count(out, " ok\n") != 3 {
		t.Fatalf("fetch = %d, %q, %q", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, nil, "models", "verify", "--model-dir", dir); code != 0 {
		t.Errorf("verify after fetch = %d, %q", code, errOut)
	}
}

func TestModelsFetchWithoutPip(t *testing.T) {
	dir := t.TempDir()
	code, _, errOut := runCLI(t, map[string]string{"FACEWATCH_PYTHON": filepath.Join(dir, "missing-python")}, "models", "fetch", "--model-dir", dir)
	if code != 1 || !strings.Contains(errOut, "pip is not available") || strings.Count(errOut, "facewatch models:") != 1 {
		t.Errorf("fetch without pip = %d, %q; want exit 1, one line", code, errOut)
	}
}

// TestDoctorCreatesNoDataDir: doctor without --config checks that the
// default data directory could be created, and creates none; with a
// directory that cannot be created it fails that check.
func TestDoctorCreatesNoDataDir(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	_, out, _ := runCLI(t, nil, "doctor", "--model-dir", string(testdata.ModelDir(t)))
	want := "ok    data dir           " + filepath.Join(dir, "facewatch-data") + " does not exist yet; can be created"
	if !strings.Contains(out, want) {
		t.Errorf("doctor output lacks %q:\n%s", want, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "facewatch-data")); err == nil {
		t.Errorf("doctor created %s", filepath.Join(dir, "facewatch-data"))
	}
	// A data_dir under a file cannot be created.
	os.WriteFile(filepath.Join(dir, "plain"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, "c.yaml"), []byte("data_dir: plain/data\n"), 0o644)
	_, out, _ = runCLI(t, nil, "doctor", "--config", filepath.Join(dir, "c.yaml"), "--model-dir", string(testdata.ModelDir(t)))
	if want := "FAIL  data dir           cannot create " + filepath.Join(dir, "plain", "data"); !strings.Contains(out, want) {
		t.Errorf("doctor with data_dir under a file: output lacks %q:\n%s", want, out)
	}
}

func TestDoctor(t *testing.T) {
	// A listener that is then closed gives a port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	live, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`data_dir: data
alert:
  listen: 127.0.0.1:0
cameras:
  - id: up
    url: rtsp://u:hunter2@%s/s
  - id: down
    url: rtsp://u:hunter2@%s/s
`, live.Addr(), dead)), 0o644)
	code, out, errOut := runCLI(t, nil, "doctor", "--config", cfgPath, "--model-dir", string(testdata.ModelDir(t)))
	if code != 1 || !strings.Contains(errOut, "1 of") {
		t.Errorf("doctor = %d, %q; want exit 1 with one failed check", code, errOut)
	}
	wantLines := []string{"ok    config", "ok    models", "ok    data dir", "ok    camera up", "FAIL  camera down", "ok    alert api"}
	for _, w := range wantLines {
		if !strings.Contains(out, w) {
			t.Errorf("doctor output lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out+errOut, "hunter2") {
		t.Errorf("doctor printed a camera password:\n%s", out)
	}
}

func TestParseFlagsInterspersed(t *testing.T) {
	tests := []struct {
		args    []string
		wantOut string
		wantPos []string
	}{
		{[]string{"a", "--out", "x", "b"}, "x", []string{"a", "b"}},
		{[]string{"--out", "x", "a"}, "x", []string{"a"}},
		{[]string{"a", "--", "--out", "y"}, "", []string{"a", "--out", "y"}},
		{[]string{}, "", nil},
	}
	for _, tc := range tests {
		fs := newFlagSet(&env{stderr: io.Discard}, "t", "t")
		out := fs.String("out", "", "")
		if err := parseFlags(fs, tc.args); err != nil {
			t.Fatalf("parseFlags(%q) = %v", tc.args, err)
		}
		if *out != tc.wantOut || strings.Join(fs.Args(), " ") != strings.Join(tc.wantPos, " ") {
			t.Errorf("parseFlags(%q) = out %q, args %q; want %q, %q", tc.args, *out, fs.Args(), tc.wantOut, tc.wantPos)
		}
	}
}

// TestDoctorMQTTSink: with the MQTT sink on, doctor says whether its
// broker answers and its password file can be read, and never prints the
// password.
func TestDoctorMQTTSink(t *testing.T) {
	live, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mqtt.password"), []byte("hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, sink string
		code       int
		want       []string
	}{
		{"reachable", fmt.Sprintf("url: tcp://%s\n      username: fw\n      password_file: mqtt.password", live.Addr()), 0,
			[]string{"ok    alert mqtt broker  " + live.Addr().String() + " reachable"}},
		{"password file missing", fmt.Sprintf("url: tcp://%s\n      username: fw\n      password_file: nothere", live.Addr()), 1,
			[]string{"FAIL  alert mqtt sink    cannot read alert.sinks.mqtt.password_file"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfgPath := filepath.Join(dir, "c.yaml")
			os.WriteFile(cfgPath, []byte(fmt.Sprintf("data_dir: data\nalert:\n  listen: 127.0.0.1:0\n  sinks:\n    mqtt:\n      enabled: true\n      %s\n", c.sink)), 0o644)
			code, out, errOut := runCLI(t, nil, "doctor", "--config", cfgPath, "--model-dir", string(testdata.ModelDir(t)))
			if code != c.code {
				t.Errorf("doctor = %d, %q; want exit %d\n%s", code, errOut, c.code, out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("doctor output lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out+errOut, "hunter2") {
				t.Errorf("doctor printed the MQTT password:\n%s", out)
			}
		})
	}
}
