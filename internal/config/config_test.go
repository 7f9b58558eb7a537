package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestExampleConfigIsValid(t *testing.T) {
	p := filepath.Join("..", "..", "deploy", "facewatch.yaml")
	cfg, err := Load(p)
	if err != nil {
		t.Fatalf("Load(%s) = %v, want nil", p, err)
	}
	if len(cfg.Cameras) != 2 || cfg.Cameras[1].ID != "gate-south" {
		t.Errorf("cameras = %+v, want gate-north and gate-south", cfg.Cameras)
	}
	// Keys the second camera leaves out take the camera defaults.
	if got, want := cfg.Cameras[1].StallTimeout, CameraDefaults().StallTimeout; got != want {
		t.Errorf("cameras[1].stall_timeout = %v, want default %v", got, want)
	}
}

func TestDefaultsFillOmittedKeys(t *testing.T) {
	cfg, err := Parse([]byte("cameras:\n  - id: a\n    url: rtsp://h/s\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := Defaults()
	if cfg.Detect != d.Detect || cfg.Embed != d.Embed || cfg.Match != d.Match || !reflect.DeepEqual(cfg.Alert, d.Alert) || cfg.DataDir != d.DataDir {
		t.Errorf("Parse(minimal) = %+v, want defaults %+v", cfg, d)
	}
	want := CameraDefaults()
	want.ID, want.URL = "a", "rtsp://h/s"
	if cfg.Cameras[0] != want {
		t.Errorf("camera = %+v, want %+v", cfg.Cameras[0], want)
	}
}

func TestOverrides(t *testing.T) {
	cfg, err := Parse([]byte("log_level: debug\ndetect:\n  upsample: 2\ncameras:\n  - {id: a, url: 'rtsp://h/s', max_fps: 2.5, stall_timeout: 3s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.LogLevel != "debug" || cfg.Detect.Upsample != 2 || cfg.Detect.Detector != "hog" {
		t.Errorf("Parse = %+v, want debug/upsample 2/hog", cfg)
	}
	if c := cfg.Cameras[0]; c.MaxFPS != 2.5 || c.StallTimeout != 3*time.Second || c.ReadTimeout != CameraDefaults().ReadTimeout {
		t.Errorf("camera = %+v, want max_fps 2.5, stall 3s, default read timeout", c)
	}
}

func TestBadConfigs(t *testing.T) {
	cam := func(extra string) string {
		return "cameras:\n  - id: a\n    url: rtsp://h/s\n" + extra
	}
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"unknown top-level key", "colour: blue\n", "field colour not found"},
		{"unknown camera key", cam("    fps: 3\n"), "cameras[0]: line 4: field fps not found"},
		{"unknown section key", "detect:\n  upsampling: 1\n", "field upsampling not found"},
		{"wrong type", "detect:\n  upsample: lots\n", "cannot unmarshal !!str `lots` into int"},
		{"wrong type in camera", cam("    max_fps: fast\n"), "cameras[0]"},
		{"bad duration", cam("    stall_timeout: soon\n"), "cameras[0]"},
		{"duplicate camera id", cam("  - id: a\n    url: rtsp://h/t\n"), `cameras[1].id: "a" duplicates cameras[0]`},
		{"empty url", "cameras:\n  - id: a\n    url: ''\n", "cameras[0].url: must not be empty"},
		{"missing id", "cameras:\n  - url: rtsp://h/s\n", "cameras[0].id: must not be empty"},
		{"bad id", "cameras:\n  - id: 'a b'\n    url: rtsp://h/s\n", `cameras[0].id: "a b" must be`},
		{"ftp scheme", cam("  - id: b\n    url: rtsp://h/t\n  - id: c\n    url: ftp://h/x\n"), `cameras[2].url: scheme "ftp" not supported`},
		{"no host", "cameras:\n  - id: a\n    url: 'rtsp:///s'\n", "cameras[0].url: rtsp:///s has no host"},
		{"negative rate", cam("    max_fps: -1\n"), "cameras[0].max_fps: -1 must not be negative"},
		{"negative timeout", cam("    read_timeout: -2s\n"), "cameras[0].read_timeout: -2s must be positive"},
		{"backoff order", cam("    backoff_min: 5s\n    backoff_max: 1s\n"), "cameras[0].backoff_max"},
		{"bad transport", cam("    transport: quic\n"), `cameras[0].transport: "quic"`},
		{"zero queue", cam("    queue_size: 0\n"), "cameras[0].queue_size: 0 must be at least 1"},
		// Unknown names are detect.ValidateConfig's (TestValidateConfig there).
		{"empty detector", "detect:\n  detector: ''\n", "detect.detector: must not be empty"},
		{"negative upsample", "detect:\n  upsample: -1\n", "detect.upsample: -1"},
		{"zero max faces", "detect:\n  max_faces: 0\n", "detect.max_faces: 0"},
		{"zero max tracks", "detect:\n  max_tracks: 0\n", "detect.max_tracks: 0"},
		{"too many cameras", "detect:\n  max_cameras: 100000\n", "detect.max_cameras: 100000"},
		{"camera idle too short", "detect:\n  camera_idle: 1s\n", "detect.camera_idle: 1s"},
		{"fewer max cameras than cameras", cam("  - id: b\n    url: rtsp://h/t\ndetect:\n  max_cameras: 1\n"), "detect.max_cameras: 1 is fewer than the 2 cameras configured"},
		{"zero workers", "embed:\n  workers: 0\n", "embed.workers: 0 must be at least 1"},
		{"threshold zero", "match:\n  default_threshold: 0\n", "match.default_threshold: 0"},
		{"bad log level", "log_level: loud\n", `log_level: "loud"`},
		{"bad nats url", "nats:\n  url: 'http://x:1'\n", `nats.url: scheme "http" not supported`},
		{"empty data dir", "data_dir: ''\n", "data_dir: must not be empty"},
		{"not yaml", "cameras: [\n", "parsing yaml"},
		{"alert retention", "alert:\n  retention: 0s\n", "alert.retention: 0s must be positive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse(%q) = %v, want error containing %q", tc.yaml, err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q spans several lines, want one", err)
			}
		})
	}
}

func TestUnreadableFile(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope.yaml")
	if _, err := Load(missing); err == nil || !strings.Contains(err.Error(), "reading config") || !strings.Contains(err.Error(), "nope.yaml") {
		t.Errorf("Load(missing) = %v, want a reading-config error naming the file", err)
	}
	if os.Geteuid() != 0 { // root reads anything; the missing-file case covers it there
		p := filepath.Join(dir, "locked.yaml")
		os.WriteFile(p, []byte("log_level: info\n"), 0o000)
		if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("Load(unreadable) = %v, want permission denied", err)
		}
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "reading config") {
		t.Errorf("Load(directory) = %v, want a reading-config error", err)
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"rtsp://admin:hunter2@10.0.0.1:554/s", "rtsp://xxxxx@10.0.0.1:554/s"},
		{"rtsp://10.0.0.1/s", "rtsp://10.0.0.1/s"},
		{"rtsp://u:p%zz@h/s", "rtsp://xxxxx@h/s"}, // does not parse; still masked
	}
	for _, tc := range tests {
		if got := Redact(tc.in); got != tc.want || strings.Contains(got, "hunter2") {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	err := errorString(`opening "rtsp://admin:hunter2@10.0.0.1/s": timeout`)
	if got := RedactError(err); strings.Contains(got, "hunter2") || !strings.Contains(got, "rtsp://xxxxx@10.0.0.1/s") {
		t.Errorf("RedactError = %q, want the password masked", got)
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

func FuzzParse(f *testing.F) {
	data, _ := os.ReadFile(filepath.Join("..", "..", "deploy", "facewatch.yaml"))
	f.Add(data)
	f.Add([]byte("cameras:\n  - id: a\n    url: rtsp://h/s\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := Parse(b)
		if err == nil {
			if verr := cfg.Validate(); verr != nil {
				t.Fatalf("Parse accepted a config that Validate refuses: %v", verr)
			}
		}
	})
}

func TestErrorAfterCamerasIsNotBlamedOnACamera(t *testing.T) {
	_, err := Parse([]byte("cameras:\n  - id: a\n    url: rtsp://h/s\ndetect:\n  upsample: lots\n"))
	if err == nil || strings.Contains(err.Error(), "cameras[") || !strings.Contains(err.Error(), "line 5") {
		t.Errorf("Parse = %v, want a line-5 error that names no camera", err)
	}
}
