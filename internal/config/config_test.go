package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
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

func TestCameraFaces(t *testing.T) {
	tests := []struct {
		name           string
		yaml           string
		wantLo, wantHi int
	}{
		{"detect's min face by default", "cameras:\n  - {id: a, url: 'rtsp://h/s'}\n", 40, 0},
		{"camera's own range", "cameras:\n  - {id: a, url: 'rtsp://h/s', min_face: 24, max_face: 120}\n", 24, 120},
		{"detect's min face changed", "detect:\n  min_face_size: 60\ncameras:\n  - {id: a, url: 'rtsp://h/s', max_face: 200}\n", 60, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if lo, hi := cfg.Cameras[0].Faces(cfg.Detect); lo != tc.wantLo || hi != tc.wantHi {
				t.Errorf("Faces() = %d, %d; want %d, %d", lo, hi, tc.wantLo, tc.wantHi)
			}
		})
	}
	if d := Defaults().Detect.FullFrameEvery; d <= 0 || d > 10*time.Second {
		t.Errorf("default full_frame_every = %v, want a few seconds (region search on)", d)
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
		{"min face too small", cam("    min_face: 10\n"), "cameras[0].min_face: 10 is not 0 or between 20 and 4096"},
		{"max face too small", cam("    max_face: 5\n"), "cameras[0].max_face: 5 is not 0 or between 20"},
		{"face range inverted", cam("    min_face: 100\n    max_face: 60\n"), "cameras[0].max_face: 60 is less than min_face 100"},
		{"max face under detect's min", cam("    max_face: 30\n"), "cameras[0].max_face: 30 is less than detect.min_face_size 40"},
		{"full frame pass too often", "detect:\n  full_frame_every: 10ms\n", "detect.full_frame_every: 10ms"},
		// Unknown names are detect.ValidateConfig's (TestValidateConfig there).
		{"empty detector", "detect:\n  detector: ''\n", "detect.detector: must not be empty"},
		{"negative upsample", "detect:\n  upsample: -1\n", "detect.upsample: -1"},
		{"zero max faces", "detect:\n  max_faces: 0\n", "detect.max_faces: 0"},
		{"zero max tracks", "detect:\n  max_tracks: 0\n", "detect.max_tracks: 0"},
		{"too many cameras", "detect:\n  max_cameras: 100000\n", "detect.max_cameras: 100000"},
		{"camera idle too short", "detect:\n  camera_idle: 1s\n", "detect.camera_idle: 1s"},
		{"track gap too short", "detect:\n  track_gap: 10ms\n", "detect.track_gap: 10ms"},
		{"early quality above 1", "detect:\n  early_quality: 1.5\n", "detect.early_quality: 1.5"},
		{"negative early face size", "detect:\n  early_face_size: -1\n", "detect.early_face_size: -1"},
		{"fewer max cameras than cameras", cam("  - id: b\n    url: rtsp://h/t\ndetect:\n  max_cameras: 1\n"), "detect.max_cameras: 1 is fewer than the 2 cameras configured"},
		{"negative detect workers", "detect:\n  workers: -1\n", "detect.workers: -1 is not between 0 (one per core) and 1024"},
		{"max wait too short", "detect:\n  max_wait: 10ms\n", "detect.max_wait: 10ms"},
		{"zero batch frames", "detect:\n  batch_frames: 0\n", "detect.batch_frames: 0 is not between 1 and 32"},
		{"too many batch frames", "detect:\n  batch_frames: 33\n", "detect.batch_frames: 33 is not between 1 and 32"},
		{"max wait too long", "detect:\n  max_wait: 2m\n", "detect.max_wait: 2m0s"},
		{"zero workers", "embed:\n  workers: 0\n", "embed.workers: 0 must be at least 1"},
		{"threshold zero", "match:\n  default_threshold: 0\n", "match.default_threshold: 0"},
		{"bad log level", "log_level: loud\n", `log_level: "loud"`},
		{"bad nats url", "nats:\n  url: 'http://x:1'\n", `nats.url: URL 1 of 1 in "http://x:1": scheme not supported`},
		{"empty data dir", "data_dir: ''\n", "data_dir: must not be empty"},
		{"not yaml", "cameras: [\n", "parsing yaml"},
		{"alert retention", "alert:\n  retention: 0s\n", "alert.retention: 0s must be positive"},
		{"negative appearance gap", "detect:\n  appearance_gap: -1s\n", "detect.appearance_gap: -1s is not between 0 and 1m"},
		{"appearance gap over a minute", "detect:\n  appearance_gap: 2m\n", "detect.appearance_gap: 2m0s is not between 0 and 1m"},
		{"negative same appearance", "alert:\n  same_appearance: -1s\n", "alert.same_appearance: -1s"},
		{"negative incident window", "alert:\n  incident_window: -1s\n", "alert.incident_window: -1s is not between 0 and 24h"},
		{"incident window over a day", "alert:\n  incident_window: 25h\n", "alert.incident_window: 25h0m0s is not between 0 and 24h"},
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

// TestDetectWorkerCount: detect.workers 0 (the default) is one worker per
// core the runtime may use; a number is taken as it is.
func TestDetectWorkerCount(t *testing.T) {
	tests := []struct {
		name    string
		workers int
		want    int
	}{
		{"default is one per core", Defaults().Detect.Workers, runtime.GOMAXPROCS(0)},
		{"explicit one", 1, 1},
		{"explicit more than cores", runtime.GOMAXPROCS(0) + 3, runtime.GOMAXPROCS(0) + 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := Defaults().Detect
			d.Workers = tc.workers
			if got := d.WorkerCount(); got != tc.want {
				t.Errorf("Detect{Workers: %d}.WorkerCount() = %d, want %d", tc.workers, got, tc.want)
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

// redactCases are URLs and texts with secrets; each secret must be gone
// from Redact's output, and want (when set) is the exact output. They seed
// FuzzRedact.
var redactCases = []struct {
	name, in, want string
	secrets        []string
}{
	{"camera URL", "rtsp://admin:hunter2@10.0.0.1:554/s", "rtsp://xxxxx@10.0.0.1:554/s", []string{"hunter2", "admin"}},
	{"no credentials", "rtsp://10.0.0.1/s", "rtsp://10.0.0.1/s", nil},
	{"bad escape", "rtsp://u:p%zz@h/s", "rtsp://xxxxx@h/s", []string{"p%zz"}},
	{"NATS list", "nats://a:pw1secret@h1:4222,nats://b:pw2secret@h2:4222,tls://c:pw3secret@h3:4222",
		"nats://xxxxx@h1:4222,nats://xxxxx@h2:4222,tls://xxxxx@h3:4222", []string{"pw1secret", "pw2secret", "pw3secret"}},
	{"NATS list with spaces", "nats://a:pw1secret@h1, nats://b:pw2secret@h2", "nats://xxxxx@h1, nats://xxxxx@h2", []string{"pw1secret", "pw2secret"}},
	{"slash in password", "nats://user:pa/ss/word@host:4222", "nats://xxxxx@host:4222", []string{"pa/ss/word"}},
	{"at in password", "nats://user:p@ss@word@host:4222", "nats://xxxxx@host:4222", []string{"p@ss@word"}},
	{"colon in password", "rtsp://user:a:b:c:secret@host/s", "rtsp://xxxxx@host/s", []string{"a:b:c:secret"}},
	{"comma in password", "nats://user:se,cret@host:4222", "nats://xxxxx@host:4222", []string{"se,cret"}},
	{"password with digits and slash", "nats://u:12/sekrit@host", "nats://xxxxx@host", []string{"12/sekrit"}},
	{"token only", "nats://s3cr3tt0ken@host:4222", "nats://xxxxx@host:4222", []string{"s3cr3tt0ken"}},
	{"query password", "rtsp://cam/live?user=a&password=hunter2&x=1", "rtsp://cam/live?user=a&password=xxxxx&x=1", []string{"hunter2"}},
	{"query token", "https://h/hook?token=abcdef123", "https://h/hook?token=xxxxx", []string{"abcdef123"}},
	{"query key", "https://h/p?a=1&key=K3Y-value#frag", "https://h/p?a=1&key=xxxxx#frag", []string{"K3Y-value"}},
	{"query api_key and sig", "http://h/?api_key=AK1234&sig=SG5678", "http://h/?api_key=xxxxx&sig=xxxxx", []string{"AK1234", "SG5678"}},
	{"in an error", `opening "rtsp://admin:hunter2@10.0.0.1/s": timeout`, `opening "rtsp://xxxxx@10.0.0.1/s": timeout`, []string{"hunter2"}},
	{"two in text", "from nats://a:first1@h1 to nats://b:second2@h2", "from nats://xxxxx@h1 to nats://xxxxx@h2", []string{"first1", "second2"}},
	{"email is no URL", "mail admin@example.org", "mail admin@example.org", nil},
}

func TestRedact(t *testing.T) {
	for _, tc := range redactCases {
		t.Run(tc.name, func(t *testing.T) {
			got := Redact(tc.in)
			if tc.want != "" && got != tc.want {
				t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
			}
			for _, s := range tc.secrets {
				if strings.Contains(got, s) {
					t.Errorf("Redact(%q) = %q, still holds %q", tc.in, got, s)
				}
			}
			gotErr := RedactError(fmt.Errorf("connecting to %q: %w", tc.in, errors.New("refused")))
			for _, s := range tc.secrets {
				if strings.Contains(gotErr, s) {
					t.Errorf("RedactError(error quoting %q) = %q, still holds %q", tc.in, gotErr, s)
				}
			}
		})
	}
}

// TestRedactURLParseError: url.Parse's error quotes pieces of the URL it
// refuses (the "port" of user:pa/ss@host is the password's start).
func TestRedactURLParseError(t *testing.T) {
	for _, raw := range []string{"nats://user:pa/ss@host:4222", "rtsp://u:ab%gh@h/s"} {
		_, err := url.Parse(raw)
		if err == nil {
			t.Fatalf("url.Parse(%q) accepted it; the test needs a refused URL", raw)
		}
		got := RedactError(err)
		for _, s := range []string{"pa/ss", ":pa", "ab%gh", "%gh"} {
			if strings.Contains(raw, s) && strings.Contains(got, s) {
				t.Errorf("RedactError(url.Parse(%q)) = %q, still holds %q", raw, got, s)
			}
		}
	}
}

// TestInvalidNATSURLNotPrinted: an invalid nats.url is refused with its
// credentials masked, for each URL of a list.
func TestInvalidNATSURLNotPrinted(t *testing.T) {
	tests := []struct{ name, url, secret string }{
		{"slash in password", "nats://user:pa/ss@host:4222", "pa/ss"},
		{"second of a list", "nats://h1:4222,nats://u:hunter2@/x", "hunter2"},
		{"bad escape", "nats://u:p%zzsecret@h:4222", "p%zzsecret"},
		{"bad scheme", "ftp://u:hunter2@h", "hunter2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Defaults()
			cfg.NATS.URL = tc.url
			err := cfg.Validate()
			if err == nil {
				t.Fatalf("Validate(nats.url %q) = nil, want an error", tc.url)
			}
			if !strings.Contains(err.Error(), "nats.url") || strings.Contains(err.Error(), tc.secret) {
				t.Errorf("Validate(nats.url %q) = %q, want a nats.url error without %q", tc.url, err, tc.secret)
			}
		})
	}
}

// FuzzRedact builds URLs around a fuzzed user, password and query secret
// and asserts that no secret survives Redact, RedactError or Validate's
// nats.url error, alone or in a list.
func FuzzRedact(f *testing.F) {
	for _, tc := range redactCases {
		for _, s := range tc.secrets {
			f.Add("user", s, "host:4222", "tok"+s)
		}
	}
	f.Add("u", "pa/ss", "h", "x")
	f.Add("u", "p@ss:w/o,rd", "10.0.0.1:554", "abc")
	f.Fuzz(func(t *testing.T, user, pass, host, tok string) {
		// A secret shorter than 4 bytes may occur by chance elsewhere; one
		// holding whitespace, quotes or control bytes cannot stand in a
		// URL unescaped (and is escaped by %q), and ",scheme://" inside a
		// password is read as the next URL of a list.
		for _, s := range []string{user, host} {
			if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
				t.Skip() // %q would escape it into text that may hold the secret by chance
			}
		}
		for _, s := range []string{pass, tok} {
			if len(s) < 4 || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r >= 0x7f || strings.ContainsRune("\"'`<>\\", r) }) || strings.Contains(s, "://") {
				t.Skip()
			}
		}
		// The text around the secrets, masked; a secret found in it would
		// be there by chance (the secrets hold no newline).
		plain := "nats://" + host + ",tls://" + user + "\nnats://xxxxx@" + host + "/s?a=1&token=xxxxx,tls://xxxxx@" + host + "\nconnecting to refused"
		// A query value ends at '&', '#' or ';'.
		if strings.ContainsAny(tok, "&#;") {
			t.Skip()
		}
		if strings.ContainsAny(user, "@/ \t\n\"'`<>") || strings.ContainsAny(host, "@?#&;=, \t\n\"'`<>") || strings.Contains(plain, pass) || strings.Contains(plain, tok) {
			t.Skip()
		}
		one := "nats://" + user + ":" + pass + "@" + host + "/s?a=1&token=" + tok
		list := "nats://" + host + "," + one + ",tls://" + user + ":" + pass + "@" + host
		for _, in := range []string{one, list} {
			for what, got := range map[string]string{
				"Redact":      Redact(in),
				"RedactError": RedactError(fmt.Errorf("connecting to %q: %w", in, errors.New("refused"))),
			} {
				if strings.Contains(got, pass) || strings.Contains(got, tok) {
					t.Fatalf("%s(%q) = %q, holds a secret", what, in, got)
				}
			}
			cfg := Defaults()
			cfg.NATS.URL = in
			if err := cfg.Validate(); err != nil && (strings.Contains(err.Error(), pass) || strings.Contains(err.Error(), tok)) {
				t.Fatalf("Validate(nats.url %q) = %q, holds a secret", in, err)
			}
		}
	})
}

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
