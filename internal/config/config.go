// Package config owns facewatch's one YAML configuration file: its schema,
// the defaults (filled in one place, Defaults), and validation that names the
// offending field and why. It reads files and checks values; it must not
// start anything or touch the network.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole facewatch configuration. Each stage reads its own
// section; the top-level fields are shared by every stage.
type Config struct {
	// DataDir holds SQLite databases, JetStream state and face crops.
	DataDir string `yaml:"data_dir"`
	// ModelDir is where the dlib model files are looked for (after the
	// --model-dir flag and the FACEWATCH_MODEL_DIR variable). Empty means the
	// per-user cache directory.
	ModelDir string `yaml:"model_dir"`
	// LogLevel is one of debug, info, warn, error.
	LogLevel string `yaml:"log_level"`
	// LogFormat is text or json.
	LogFormat string `yaml:"log_format"`

	NATS    NATS     `yaml:"nats"`
	Cameras []Camera `yaml:"cameras"`
	Detect  Detect   `yaml:"detect"`
	Embed   Embed    `yaml:"embed"`
	Match   Match    `yaml:"match"`
	Alert   Alert    `yaml:"alert"`
	Audit   Audit    `yaml:"audit"`
}

// Audit configures the audit logs' keys and checkpoints.
type Audit struct {
	// Dir holds the audit keys (HMAC and ed25519, generated on first
	// start, 0600) and the signed checkpoint files. Empty is
	// <data_dir>/audit; it must not be a database's directory. Put it
	// where whoever can write the databases cannot (docs/alerts.md).
	Dir string `yaml:"dir"`
}

// NATS configures the transport between stages.
type NATS struct {
	// URL of an external NATS cluster. Empty starts an embedded server with
	// JetStream whose state lives under DataDir.
	URL string `yaml:"url"`
	// Listen is the address the embedded server listens on, so that other
	// processes can join; empty keeps it in-process only (a random loopback
	// port).
	Listen string `yaml:"listen"`
	// CredsFile is one NATS credentials file (JWT) for every stage of an
	// external cluster. Prefer CredsDir: one identity per role.
	CredsFile string `yaml:"creds_file"`
	// CredsDir holds one credentials file per role (natsbus.Roles):
	// <role>.nk (an nkey seed, as `facewatch nats init` writes) or
	// <role>.creds (a JWT credentials file). Each stage connects as its
	// own role. With the embedded server it defaults to
	// data_dir/nats/creds, where the server writes its roles' keys on
	// first start when it listens for other processes.
	CredsDir string `yaml:"creds_dir"`
	// TLS is the NATS TLS configuration: the client side for nats.url,
	// the server side for the embedded server's nats.listen.
	TLS TLSFiles `yaml:"tls"`
	// Replicas is the JetStream replication factor for facewatch's streams.
	Replicas int `yaml:"replicas"`
	// AckWait is how long a consumer (matcher, alert service) may hold a
	// message unacknowledged before JetStream hands it to another: the
	// longest an alert waits after the process holding it dies.
	AckWait time.Duration `yaml:"ack_wait"`
	// MQTT is the embedded server's MQTT 3.1.1 listener (off by default).
	MQTT NATSMQTT `yaml:"mqtt"`
}

// TLSFiles names PEM files for TLS. For NATS: CAFile verifies the peer
// (the server, for a client; client certificates, for the embedded server,
// which then requires them: mutual TLS); CertFile and KeyFile are this
// side's certificate.
type TLSFiles struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Enabled reports whether any file is set.
func (t TLSFiles) Enabled() bool { return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" }

// validate checks that the files come in usable sets (whether they can be
// read is checked where they are loaded, after relative paths are
// resolved).
func (t TLSFiles) validate() error {
	if (t.CertFile == "") != (t.KeyFile == "") {
		return errors.New("cert_file, key_file: set both or neither")
	}
	return nil
}

// IsLoopback reports whether a listen address's host is a loopback address
// (127.0.0.0/8, ::1, localhost). An empty host means every interface.
func IsLoopback(listen string) bool {
	h, _, err := net.SplitHostPort(listen)
	if err != nil || h == "" {
		return false
	}
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// NATSMQTT configures the embedded NATS server's MQTT listener, through
// which MQTT clients (Home Assistant, Node-RED) subscribe to alerts.
type NATSMQTT struct {
	// Listen is host:port; empty is off, and an empty host means loopback.
	Listen string `yaml:"listen"`
}

// Camera is one stream to ingest.
type Camera struct {
	// ID names the camera in subjects, alerts and metrics: letters, digits,
	// '-' and '_'.
	ID string `yaml:"id"`
	// URL is rtsp://, rtsps://, http(s):// (MJPEG) or file:// / a plain path.
	URL string `yaml:"url"`
	// Name is a human-readable label (a street corner).
	Name string `yaml:"name"`
	// Transport for RTSP: tcp (default) or udp.
	Transport string `yaml:"transport"`
	// TLSCAFile (rtsps) holds certificates trusted for this camera besides
	// the system's: a private CA or the camera's own self-signed
	// certificate. The camera's certificate is verified by default.
	TLSCAFile string `yaml:"tls_ca_file"`
	// TLSInsecureSkipVerify (rtsps) turns certificate verification off for
	// this camera: the explicit opt-out.
	TLSInsecureSkipVerify bool `yaml:"tls_insecure_skip_verify"`
	// MaxFPS caps the frames handed to detection; 0 means every frame.
	MaxFPS float64 `yaml:"max_fps"`
	// Motion gating: frames whose mean absolute difference from the last
	// processed frame is below MotionThreshold (0..255) are skipped, but
	// never for longer than MotionMaxSkip. 0 disables gating.
	MotionThreshold float64       `yaml:"motion_threshold"`
	MotionMaxSkip   time.Duration `yaml:"motion_max_skip"`
	// OpenTimeout and ReadTimeout bound OpenCV's blocking calls.
	OpenTimeout time.Duration `yaml:"open_timeout"`
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// StallTimeout is the frame age after which the watchdog restarts the
	// capture.
	StallTimeout time.Duration `yaml:"stall_timeout"`
	// BackoffMin and BackoffMax bound the reconnect backoff.
	BackoffMin time.Duration `yaml:"backoff_min"`
	BackoffMax time.Duration `yaml:"backoff_max"`
	// QueueSize is the bounded hand-off to detection; the oldest frame is
	// dropped when full.
	QueueSize int `yaml:"queue_size"`
	// MinFace and MaxFace are the face sizes this camera shows, box side
	// in pixels of its frames: detection searches at the scale MinFace
	// needs (regions whose faces are under the detector's 80-pixel window
	// are enlarged) and drops faces outside the range; MaxFace also cuts
	// the HOG detector's pyramid at the levels faces up to it need.
	// MinFace 0 is detect.min_face_size; MaxFace 0 sets no upper bound.
	MinFace int `yaml:"min_face"`
	MaxFace int `yaml:"max_face"`
}

// Faces returns the camera's face size range with detect's default
// filled in: the smallest and largest box side, 0 for no largest.
func (c *Camera) Faces(d Detect) (minFace, maxFace int) {
	minFace = c.MinFace
	if minFace == 0 {
		minFace = d.MinFaceSize
	}
	return minFace, c.MaxFace
}

// Detect configures face detection.
type Detect struct {
	// Detector names a registered detect backend: hog (CPU) or cnn (dlib
	// MMOD) today; detect.Backends lists them.
	Detector string `yaml:"detector"`
	// Upsample is how many times the (downscaled) frame is doubled before
	// detection, to find smaller faces.
	Upsample int `yaml:"upsample"`
	// MaxWidth: frames wider than this are downscaled for detection;
	// landmarks and chips still come from the full-resolution frame. 0 keeps
	// the full frame.
	MaxWidth int `yaml:"max_width"`
	// MinFaceSize in pixels of the full frame (box side); smaller faces are
	// ignored.
	MinFaceSize int `yaml:"min_face_size"`
	// MaxPixels refuses images larger than this before decoding them.
	MaxPixels int64 `yaml:"max_pixels"`
	// Workers is the number of detection workers, shared by every camera
	// of the process (one camera's frames are detected one at a time, in
	// order); 0 means one per core (WorkerCount).
	Workers int `yaml:"workers"`
	// MaxWait bounds how long a frame waits for detection: a frame that
	// has waited longer is shed (counted) when a newer frame of its camera
	// is waiting, so that an overloaded box detects its cameras' newest
	// frames late by at most about this much instead of falling further
	// behind. 0 sheds only when a camera's queue is full.
	MaxWait time.Duration `yaml:"max_wait"`
	// MaxFaces bounds the faces kept of one frame (the most confident): a
	// crowd or a poster wall costs at most this many alignments and chips.
	MaxFaces int `yaml:"max_faces"`
	// MaxTracks bounds the open tracks of one camera; a face that would
	// open one more is not tracked (counted as dropped).
	MaxTracks int `yaml:"max_tracks"`
	// MaxCameras bounds the cameras one detect process tracks at once;
	// frames of further cameras are refused and counted, so a stream of
	// made-up camera IDs cannot grow its state without bound.
	MaxCameras int `yaml:"max_cameras"`
	// CameraIdle: a camera with no frame for this long has its tracks ended
	// and its state (tracker, queue, goroutine) freed, making room under
	// MaxCameras.
	CameraIdle time.Duration `yaml:"camera_idle"`
	// TrackGap ends a track not seen for this long (or 5 frame intervals
	// of the slowest camera if longer); a face found again within it, near
	// where the track's motion puts it, continues the track (a person
	// briefly hidden keeps one track, so one alert).
	TrackGap time.Duration `yaml:"track_gap"`
	// AppearanceGap: a track lost inside the view (not through the
	// frame's edge) and a new one that starts within this long after it,
	// near where its motion puts it, are one appearance of one person (a
	// person hidden for a few seconds); someone who left through the edge
	// and comes back is a new appearance. The alert service gives one
	// alert per appearance (alert.same_appearance). 0 turns this off:
	// reports then carry no appearance, and the alert service falls back
	// to its time rule.
	AppearanceGap time.Duration `yaml:"appearance_gap"`
	// EarlyQuality and EarlyFaceSize: a track is reported for a decision
	// at its first face with at least this quality score (0..1) and box
	// side in pixels, rather than after 3 sightings. EarlyQuality 0 waits
	// for 3 sightings.
	EarlyQuality  float64 `yaml:"early_quality"`
	EarlyFaceSize int     `yaml:"early_face_size"`
	// FullFrameEvery: camera frames are searched only where something
	// moved and around the camera's open tracks, at the scale of its faces
	// (cameras[].min_face), and whole this often, so that a face that
	// stands still is found too. 0 searches every frame whole, at
	// upsample and max_width (the path before region search).
	FullFrameEvery time.Duration `yaml:"full_frame_every"`
	// BatchFrames, with the cnn detector, makes the detect workers share
	// one MMOD network that runs up to this many searches waiting at once
	// (of any camera, grouped by image size) in one forward pass: for GPU
	// hosts. 1 (the default) gives each worker its own network, one image
	// per pass; the hog detector ignores it.
	BatchFrames int `yaml:"batch_frames"`
}

// Embed configures descriptor extraction.
type Embed struct {
	// Workers is the number of descriptor workers, each with its own network.
	Workers int `yaml:"workers"`
	// BatchSize is the most chips run through the network in one call.
	BatchSize int `yaml:"batch_size"`
	// Jitter is the number of jittered copies averaged per chip (0 = none).
	Jitter int `yaml:"jitter"`
	// BLASThreads is how many threads OpenBLAS uses inside one network call
	// (a process-wide setting; 0 keeps the library's one per core).
	// Parallelism comes from Workers, each with its own network.
	BLASThreads int `yaml:"blas_threads"`
}

// Match configures watchlist matching.
type Match struct {
	// DefaultThreshold is the Euclidean distance under which a face matches
	// an identity, for lists that do not set their own.
	DefaultThreshold float64 `yaml:"default_threshold"`
	// Margin is the least distance by which the best identity must beat the
	// second best.
	Margin float64 `yaml:"margin"`
	// TopK is how many nearest identities are reported for review.
	TopK int `yaml:"top_k"`
	// VoteShare is the share of a track's quality-weighted face votes an
	// identity must exceed to be named.
	VoteShare float64 `yaml:"vote_share"`
	// EnrolMinFaceSize is the smallest face box side, in pixels, accepted
	// for enrolment, compared with the box the detector returns (dlib's
	// boxes come in quantised sizes: ...63, 75/76, 90/91, 108...). 75 is
	// measured (docs/matching.md, internal/enroll TestFaceSizeTable): from
	// a 75-pixel box the descriptor stays within 0.15 (90th percentile) of
	// the full-size one; at 63 it drifts 0.19.
	EnrolMinFaceSize int `yaml:"enrol_min_face_size"`
	// EnrolMinSharpness and EnrolMinFrontalness are the least detector
	// quality scores (0..1) accepted for enrolment.
	EnrolMinSharpness   float64 `yaml:"enrol_min_sharpness"`
	EnrolMinFrontalness float64 `yaml:"enrol_min_frontalness"`
	// PurgeGrace is how long after its expiry a watchlist or identity is
	// purged (descriptors, photos, rows); until then it only stops
	// matching, and a curator can extend it. 0 purges at expiry.
	PurgeGrace time.Duration `yaml:"purge_grace"`
	// PurgeInterval is how often the running matcher sweeps for entries
	// past their grace period.
	PurgeInterval time.Duration `yaml:"purge_interval"`
	// AuditDetailRetention is how long the details of the gallery's audit
	// entries (identity names, external references, notes) are kept; the
	// running matcher's lifecycle sweep then replaces them by their
	// SHA-256 (the entries stay for ever). 0 keeps them.
	AuditDetailRetention time.Duration `yaml:"audit_detail_retention"`
}

// Alert configures the alert service and its API.
type Alert struct {
	// Listen is the HTTP address of the API and console.
	Listen string `yaml:"listen"`
	// Retention is how long alert rows and crops are kept.
	Retention time.Duration `yaml:"retention"`
	// UnmatchedRetention is how long the face of someone not (yet) matched
	// may exist at all, in memory only: the tracks stream's max age (a
	// report not taken by a matcher by then is gone) and how long the
	// detect stage holds a reported track's crop for a matcher to ask for.
	// Nothing of such a face is ever written to disk.
	UnmatchedRetention time.Duration `yaml:"unmatched_retention"`
	// SameAppearance: one alert per appearance of a person on a camera.
	// A hit naming the same identity on the same camera as an alert
	// already stored, on another track, is the same appearance when both
	// tracks come from the same tracker and it says so (the detect stage
	// links a track that broke inside the view to the one it continues,
	// detect.appearance_gap; a person who left through the frame's edge
	// and came back is a new appearance, however soon). Otherwise (a hit
	// from an older build, or the camera's tracker restarted or moved to
	// another detect process in between) it falls back to time: the same
	// appearance when its face is within this long of that alert's. 0
	// turns the fallback off.
	SameAppearance time.Duration `yaml:"same_appearance"`
	// IncidentWindow groups sightings into incidents: an alert of an
	// identity (same watchlist) whose face time is within this long of a
	// sighting of the same identity's latest incident joins it, whatever
	// the camera; otherwise it opens a new incident. 0 makes every alert
	// its own incident.
	IncidentWindow time.Duration `yaml:"incident_window"`
	// CommentRetention is how long the free text of a review comment is
	// kept (the decision, who and when, stays with the alert); 0 keeps it
	// as long as the alert.
	CommentRetention time.Duration `yaml:"comment_retention"`
	// AuditDetailRetention is how long the detail of an alert audit entry
	// (a history query's filters, a token's person, a note) is kept; the
	// entry itself (who, what, when, target, case reference) is kept for
	// ever, its detail replaced by the detail's SHA-256. 0 keeps details
	// for ever.
	AuditDetailRetention time.Duration `yaml:"audit_detail_retention"`
	// SweepInterval is how often expired alerts and crops are removed.
	SweepInterval time.Duration `yaml:"sweep_interval"`
	// ExportLimit bounds the rows of one CSV or JSON export.
	ExportLimit int `yaml:"export_limit"`
	// Consumer is the durable JetStream consumer the alert service reads
	// hits through; services sharing it split the work.
	Consumer string `yaml:"consumer"`
	// Sinks are the destinations alerts go to after they are stored,
	// besides the history and the live feed. All are off by default.
	Sinks Sinks `yaml:"sinks"`
	// EvidenceKeyFile is the site's ed25519 key that signs evidence
	// bundles, kept outside the database; generated (mode 0600) on first
	// use. Empty is <data_dir>/keys/evidence-ed25519.pem.
	EvidenceKeyFile string `yaml:"evidence_key_file"`
	// MaxConnections bounds the API's open connections; more wait until
	// one closes.
	MaxConnections int `yaml:"max_connections"`
	// LiveMaxClients bounds the live-feed (SSE) clients of the service,
	// and LiveMaxPerToken those of one token; one more is refused with 503
	// or 429.
	LiveMaxClients  int `yaml:"live_max_clients"`
	LiveMaxPerToken int `yaml:"live_max_per_token"`
	// CameraGroups names sets of cameras (a district, a station) that a
	// token's scope can name: group → camera IDs. A camera may be in
	// several groups. A scoped token sees only alerts of its groups'
	// cameras (see docs/alerts.md, Scopes).
	CameraGroups map[string][]string `yaml:"camera_groups"`
	// TLS serves the API and console over HTTPS.
	TLS HTTPTLS `yaml:"tls"`
}

// HTTPTLS configures HTTPS for the alert API and console. With CertFile
// and KeyFile set, alert.listen speaks only TLS (a plain HTTP request there
// is refused with 400); the files are read again on SIGHUP or when they
// change, so a renewed certificate needs no restart.
type HTTPTLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// RedirectListen, when set, is a plain-HTTP address that answers every
	// request with a redirect to the HTTPS address (off by default: plain
	// HTTP is refused).
	RedirectListen string `yaml:"redirect_listen"`
	// HSTSMaxAge is the Strict-Transport-Security max-age sent over HTTPS.
	HSTSMaxAge time.Duration `yaml:"hsts_max_age"`
}

// Enabled reports whether the API is served over TLS.
func (t HTTPTLS) Enabled() bool { return t.CertFile != "" }

// Sinks configures the alert service's optional alert sinks.
type Sinks struct {
	Webhook Webhook  `yaml:"webhook"`
	MQTT    MQTTSink `yaml:"mqtt"`
}

// Webhook POSTs each stored alert as signed JSON to an HTTP receiver.
type Webhook struct {
	Enabled bool `yaml:"enabled"`
	// URL is the receiver (http or https).
	URL string `yaml:"url"`
	// SecretFile or SecretEnv (exactly one) holds the HMAC-SHA256 key that
	// signs every body; the secret itself never appears in the config.
	SecretFile string `yaml:"secret_file"`
	SecretEnv  string `yaml:"secret_env"`
	// Timeout bounds one delivery attempt.
	Timeout time.Duration `yaml:"timeout"`
	// BackoffMin and BackoffMax bound the exponential backoff (with
	// jitter) between attempts; a receiver that is down is retried
	// forever, its alerts waiting in the history.
	BackoffMin time.Duration `yaml:"backoff_min"`
	BackoffMax time.Duration `yaml:"backoff_max"`
}

// MQTTSink publishes each stored alert as JSON to an MQTT broker, as an
// MQTT client at QoS 1: an alert counts as delivered only once the broker
// acknowledged it (PUBACK), so a broker that is down loses nothing.
type MQTTSink struct {
	Enabled bool `yaml:"enabled"`
	// SubjectPrefix names the topic: an alert of watchlist W goes to
	// <prefix with '.' replaced by '/'>/W (facewatch.alerts is
	// facewatch/alerts/W); on the embedded server that is the NATS subject
	// <prefix>.W.
	SubjectPrefix string `yaml:"subject_prefix"`
	// URL is the broker: tcp://host:1883 or ssl://host:8883. Empty means the
	// embedded NATS server's MQTT listener (nats.mqtt.listen, which must
	// then be set with a fixed port and without nats.tls), logged in as
	// the publisher user it generates (natsbus.MQTTPublisherUser).
	URL string `yaml:"url"`
	// Username and PasswordFile log in to the broker at URL; the password
	// itself never appears in the config.
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
	// ClientID is the MQTT client identifier; it must be unique on the
	// broker (a second client with the same id disconnects the first).
	ClientID string `yaml:"client_id"`
	// TLS, for an ssl:// URL: CAFile verifies the broker (empty: the
	// system roots); CertFile and KeyFile are a client certificate for a
	// broker that asks for one.
	TLS TLSFiles `yaml:"tls"`
	// Timeout bounds one attempt: connecting, and the broker's PUBACK.
	Timeout time.Duration `yaml:"timeout"`
	// BackoffMin and BackoffMax bound the backoff between attempts; a
	// broker that is down is retried forever, its alerts waiting in the
	// history.
	BackoffMin time.Duration `yaml:"backoff_min"`
	BackoffMax time.Duration `yaml:"backoff_max"`
}

// Defaults returns a Config with every default filled in. It is the one
// place defaults live: Load starts from it and decodes the file over it.
func Defaults() Config {
	return Config{
		DataDir:   "./facewatch-data",
		LogLevel:  "info",
		LogFormat: "text",
		NATS:      NATS{Replicas: 1, AckWait: 30 * time.Second},
		Detect: Detect{
			Detector:      "hog",
			Upsample:      0,
			MaxWidth:      1280,
			MinFaceSize:   40,
			MaxPixels:     64 << 20,
			Workers:       0, // one per core
			MaxWait:       400 * time.Millisecond,
			MaxFaces:      32,
			MaxTracks:     64,
			MaxCameras:    64,
			CameraIdle:    5 * time.Minute,
			TrackGap:      2 * time.Second,
			AppearanceGap: 5 * time.Second,
			// A 50-px face scores about 0.6 when sharp and frontal
			// (detect.Assess): quality 0.5 passes those and not a blurred
			// or turned one.
			EarlyQuality:   0.5,
			EarlyFaceSize:  50,
			FullFrameEvery: 3 * time.Second,
			BatchFrames:    1,
		},
		Embed: Embed{Workers: 1, BatchSize: 16, Jitter: 0, BLASThreads: 1},
		Match: Match{DefaultThreshold: 0.5, Margin: 0.05, TopK: 3, VoteShare: 0.5,
			EnrolMinFaceSize: 75, EnrolMinSharpness: 0.1, EnrolMinFrontalness: 0.5,
			PurgeGrace: 30 * 24 * time.Hour, PurgeInterval: time.Hour, AuditDetailRetention: 365 * 24 * time.Hour},
		Alert: Alert{
			Listen:               "127.0.0.1:8640",
			Retention:            90 * 24 * time.Hour,
			UnmatchedRetention:   5 * time.Minute,
			SameAppearance:       5 * time.Second,
			IncidentWindow:       10 * time.Minute,
			CommentRetention:     30 * 24 * time.Hour,
			AuditDetailRetention: 365 * 24 * time.Hour,
			SweepInterval:        time.Minute,
			ExportLimit:          10000,
			Consumer:             "facewatch-alert",
			MaxConnections:       256,
			LiveMaxClients:       64,
			LiveMaxPerToken:      4,
			TLS:                  HTTPTLS{HSTSMaxAge: 365 * 24 * time.Hour},
			Sinks: Sinks{
				Webhook: Webhook{Timeout: 10 * time.Second, BackoffMin: time.Second, BackoffMax: 5 * time.Minute},
				MQTT: MQTTSink{SubjectPrefix: "facewatch.alerts", ClientID: "facewatch-alerts", Timeout: 10 * time.Second,
					BackoffMin: 100 * time.Millisecond, BackoffMax: 10 * time.Second},
			},
		},
	}
}

// CameraDefaults returns the defaults for one camera entry; Load applies
// them to every camera before decoding the entry's own keys.
func CameraDefaults() Camera {
	return Camera{
		Transport:       "tcp",
		MaxFPS:          5,
		MotionThreshold: 0,
		MotionMaxSkip:   2 * time.Second,
		OpenTimeout:     10 * time.Second,
		ReadTimeout:     5 * time.Second,
		StallTimeout:    10 * time.Second,
		BackoffMin:      500 * time.Millisecond,
		BackoffMax:      30 * time.Second,
		QueueSize:       4,
	}
}

// Load reads, decodes and validates the file at path.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("reading config: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes YAML over the defaults and validates the result. Unknown
// keys and wrongly typed values are errors.
func Parse(data []byte) (Config, error) {
	cfg := Defaults()
	// Camera entries get their own defaults: decode the list raw first,
	// then each entry over CameraDefaults.
	var raw struct {
		Cameras []yaml.Node `yaml:"cameras"`
	}
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return Config{}, fmt.Errorf("parsing yaml: %w", cleanYAMLError(err))
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("parsing yaml: %w", cameraContext(cleanYAMLError(err), raw.Cameras))
	}
	cfg.Cameras = make([]Camera, len(raw.Cameras))
	for i := range raw.Cameras {
		c := CameraDefaults()
		if err := decodeStrict(&raw.Cameras[i], &c); err != nil {
			return Config{}, fmt.Errorf("cameras[%d]: %w", i, cleanYAMLError(err))
		}
		cfg.Cameras[i] = c
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// decodeStrict decodes one node refusing unknown keys (yaml.Node.Decode
// does not honour KnownFields, so re-encode and decode through a strict
// decoder).
func decodeStrict(n *yaml.Node, out any) error {
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(out); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

var yamlLine = regexp.MustCompile(`^line (\d+):`)

// cameraContext prefixes an error located inside a camera entry with the
// entry's index, so that the message names cameras[i] as well as the line.
func cameraContext(err error, cams []yaml.Node) error {
	m := yamlLine.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	var line int
	fmt.Sscan(m[1], &line)
	for i := range cams {
		if cams[i].Line <= line && line <= lastLine(&cams[i]) {
			return fmt.Errorf("cameras[%d]: %w", i, err)
		}
	}
	return err
}

// lastLine is the last source line a node spans.
func lastLine(n *yaml.Node) int {
	l := n.Line
	for _, c := range n.Content {
		l = max(l, lastLine(c))
	}
	return l
}

// cleanYAMLError turns yaml.v3's multi-line type errors into one line.
func cleanYAMLError(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return errors.New(strings.Join(te.Errors, "; "))
	}
	return err
}

var cameraID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Validate checks every field and returns the first problem, naming the
// field: `cameras[2].url: scheme "ftp" not supported`.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("data_dir: must not be empty")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log_level: %q is not one of debug, info, warn, error", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("log_format: %q is not one of text, json", c.LogFormat)
	}
	if c.NATS.URL != "" {
		// The error quotes the whole list redacted, never a piece of it: a
		// ',' in a password would make the piece a fragment Redact cannot
		// recognise as a URL.
		urls := strings.Split(c.NATS.URL, ",")
		for i, u := range urls {
			pu, err := url.Parse(strings.TrimSpace(u))
			if err != nil || pu.Host == "" {
				return fmt.Errorf("nats.url: URL %d of %d in %q is not a URL like nats://host:4222", i+1, len(urls), Redact(c.NATS.URL))
			}
			switch pu.Scheme {
			case "nats", "tls", "ws", "wss":
			default:
				return fmt.Errorf("nats.url: URL %d of %d in %q: scheme not supported (want nats, tls, ws or wss)", i+1, len(urls), Redact(c.NATS.URL))
			}
		}
	}
	if c.NATS.MQTT.Listen != "" {
		if c.NATS.URL != "" {
			return errors.New("nats.mqtt.listen: only the embedded server (nats.url empty) has an MQTT listener; configure MQTT on the external server")
		}
		if _, p, err := net.SplitHostPort(c.NATS.MQTT.Listen); err != nil {
			return fmt.Errorf("nats.mqtt.listen: %q is not host:port", c.NATS.MQTT.Listen)
		} else if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 65535 {
			return fmt.Errorf("nats.mqtt.listen: port %q is not a number between 0 and 65535", p)
		}
	}
	if err := c.NATS.TLS.validate(); err != nil {
		return fmt.Errorf("nats.tls.%w", err)
	}
	if m := c.Alert.Sinks.MQTT; m.Enabled && m.URL == "" {
		// The embedded listener: the sink must be able to find it.
		_, p, _ := net.SplitHostPort(c.NATS.MQTT.Listen)
		switch {
		case c.NATS.MQTT.Listen == "":
			return errors.New("alert.sinks.mqtt.url: empty, which means the embedded server's MQTT listener, but nats.mqtt.listen is not set; set url to your broker (tcp://host:1883) or nats.mqtt.listen")
		case p == "0":
			return fmt.Errorf("alert.sinks.mqtt.url: empty, which means the embedded server's MQTT listener, but nats.mqtt.listen %q has no fixed port", c.NATS.MQTT.Listen)
		case c.NATS.TLS.CertFile != "":
			return errors.New("alert.sinks.mqtt.url: empty, which means the embedded server's MQTT listener, but it speaks TLS (nats.tls); set url to ssl://host:port with username, password_file and tls for it")
		}
	}
	if c.NATS.URL == "" {
		if err := c.NATS.CheckListen(); err != nil {
			return err
		}
	}
	if c.NATS.Replicas < 1 || c.NATS.Replicas > 5 {
		return fmt.Errorf("nats.replicas: %d is not between 1 and 5", c.NATS.Replicas)
	}
	if c.NATS.AckWait < time.Second || c.NATS.AckWait > time.Hour {
		return fmt.Errorf("nats.ack_wait: %v is not between 1s and 1h", c.NATS.AckWait)
	}
	seen := map[string]int{}
	for i := range c.Cameras {
		if err := c.Cameras[i].Validate(); err != nil {
			return fmt.Errorf("cameras[%d].%w", i, err)
		}
		if j, dup := seen[c.Cameras[i].ID]; dup {
			return fmt.Errorf("cameras[%d].id: %q duplicates cameras[%d]", i, c.Cameras[i].ID, j)
		}
		seen[c.Cameras[i].ID] = i
	}
	if err := c.Detect.Validate(); err != nil {
		return fmt.Errorf("detect.%w", err)
	}
	for i := range c.Cameras {
		// A camera that leaves min_face to detect.min_face_size must not
		// set a max_face under it.
		if lo, hi := c.Cameras[i].Faces(c.Detect); hi != 0 && lo > hi {
			return fmt.Errorf("cameras[%d].max_face: %d is less than detect.min_face_size %d (set min_face)", i, hi, lo)
		}
	}
	if len(c.Cameras) > c.Detect.MaxCameras {
		return fmt.Errorf("detect.max_cameras: %d is fewer than the %d cameras configured", c.Detect.MaxCameras, len(c.Cameras))
	}
	if err := c.Embed.Validate(); err != nil {
		return fmt.Errorf("embed.%w", err)
	}
	if err := c.Match.Validate(); err != nil {
		return fmt.Errorf("match.%w", err)
	}
	if err := c.Alert.Validate(); err != nil {
		return fmt.Errorf("alert.%w", err)
	}
	// A config that lists cameras (the single-process and camera-stage
	// case) must name only those in its groups: a typo would otherwise
	// silently hide a camera from everyone scoped to the group. A config
	// for the alert service alone may list no cameras.
	if len(c.Cameras) > 0 {
		groups := make([]string, 0, len(c.Alert.CameraGroups))
		for g := range c.Alert.CameraGroups {
			groups = append(groups, g)
		}
		sort.Strings(groups)
		for _, g := range groups {
			for i, cam := range c.Alert.CameraGroups[g] {
				if _, ok := seen[cam]; !ok {
					return fmt.Errorf("alert.camera_groups.%s[%d]: camera %q is not in cameras", g, i, cam)
				}
			}
		}
	}
	return nil
}

// Validate checks one camera; the error starts with the field name so that
// the caller can prefix it with the camera's index.
func (c *Camera) Validate() error {
	if !cameraID.MatchString(c.ID) {
		if c.ID == "" {
			return errors.New("id: must not be empty")
		}
		return fmt.Errorf("id: %q must be 1-64 letters, digits, '-' or '_'", c.ID)
	}
	if strings.TrimSpace(c.URL) == "" {
		return errors.New("url: must not be empty")
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return fmt.Errorf("url: not a URL: %s", RedactError(err))
	}
	switch u.Scheme {
	case "rtsp", "rtsps", "http", "https":
		if u.Host == "" {
			return fmt.Errorf("url: %s has no host", Redact(c.URL))
		}
	case "file", "":
		// A file source: a path, for tests and replays.
	default:
		return fmt.Errorf("url: scheme %q not supported", u.Scheme)
	}
	switch c.Transport {
	case "tcp", "udp":
	default:
		return fmt.Errorf("transport: %q is not one of tcp, udp", c.Transport)
	}
	if c.MaxFPS < 0 {
		return fmt.Errorf("max_fps: %g must not be negative", c.MaxFPS)
	}
	if c.MotionThreshold < 0 || c.MotionThreshold > 255 {
		return fmt.Errorf("motion_threshold: %g is not between 0 and 255", c.MotionThreshold)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"motion_max_skip", c.MotionMaxSkip},
		{"open_timeout", c.OpenTimeout},
		{"read_timeout", c.ReadTimeout},
		{"stall_timeout", c.StallTimeout},
		{"backoff_min", c.BackoffMin},
		{"backoff_max", c.BackoffMax},
	} {
		if d.v <= 0 {
			return fmt.Errorf("%s: %v must be positive", d.name, d.v)
		}
	}
	if c.BackoffMax < c.BackoffMin {
		return fmt.Errorf("backoff_max: %v is less than backoff_min %v", c.BackoffMax, c.BackoffMin)
	}
	if c.QueueSize < 1 {
		return fmt.Errorf("queue_size: %d must be at least 1", c.QueueSize)
	}
	// Under 20 pixels a face is enlarged more than 4 times: too costly to
	// search and too small to recognise.
	if c.MinFace != 0 && (c.MinFace < 20 || c.MinFace > 4096) {
		return fmt.Errorf("min_face: %d is not 0 or between 20 and 4096", c.MinFace)
	}
	if c.MaxFace != 0 && (c.MaxFace < 20 || c.MaxFace > 8192) {
		return fmt.Errorf("max_face: %d is not 0 or between 20 and 8192", c.MaxFace)
	}
	if c.MaxFace != 0 && c.MinFace > c.MaxFace {
		return fmt.Errorf("max_face: %d is less than min_face %d", c.MaxFace, c.MinFace)
	}
	return nil
}

// WorkerCount is the number of detection workers: Workers, or one per
// core the Go runtime may use (GOMAXPROCS, which follows a container's CPU
// limit) when it is 0.
func (d *Detect) WorkerCount() int {
	if d.Workers > 0 {
		return d.Workers
	}
	return max(1, runtime.GOMAXPROCS(0))
}

// Validate checks the detect section, all but the detector's name: the
// registered backends are package detect's, which checks the name in
// detect.ValidateConfig and detect.New (config cannot import detect).
func (d *Detect) Validate() error {
	if d.Detector == "" {
		return errors.New("detector: must not be empty")
	}
	if d.Upsample < 0 || d.Upsample > 3 {
		return fmt.Errorf("upsample: %d is not between 0 and 3", d.Upsample)
	}
	if d.MaxWidth < 0 {
		return fmt.Errorf("max_width: %d must not be negative", d.MaxWidth)
	}
	if d.MinFaceSize < 0 {
		return fmt.Errorf("min_face_size: %d must not be negative", d.MinFaceSize)
	}
	if d.MaxPixels <= 0 {
		return fmt.Errorf("max_pixels: %d must be positive", d.MaxPixels)
	}
	if d.Workers < 0 || d.Workers > 1024 {
		return fmt.Errorf("workers: %d is not between 0 (one per core) and 1024", d.Workers)
	}
	if d.MaxWait != 0 && (d.MaxWait < 50*time.Millisecond || d.MaxWait > time.Minute) {
		return fmt.Errorf("max_wait: %v is not 0 (off) or between 50ms and 1m", d.MaxWait)
	}
	if d.MaxFaces < 1 || d.MaxFaces > 1024 {
		return fmt.Errorf("max_faces: %d is not between 1 and 1024", d.MaxFaces)
	}
	if d.MaxTracks < 1 || d.MaxTracks > 4096 {
		return fmt.Errorf("max_tracks: %d is not between 1 and 4096", d.MaxTracks)
	}
	if d.MaxCameras < 1 || d.MaxCameras > 4096 {
		return fmt.Errorf("max_cameras: %d is not between 1 and 4096", d.MaxCameras)
	}
	if d.CameraIdle < 10*time.Second {
		return fmt.Errorf("camera_idle: %v must be at least 10s", d.CameraIdle)
	}
	if d.TrackGap < 100*time.Millisecond || d.TrackGap > time.Minute {
		return fmt.Errorf("track_gap: %v is not between 100ms and 1m", d.TrackGap)
	}
	if d.AppearanceGap < 0 || d.AppearanceGap > time.Minute {
		return fmt.Errorf("appearance_gap: %v is not between 0 and 1m", d.AppearanceGap)
	}
	if !(d.EarlyQuality >= 0 && d.EarlyQuality <= 1) {
		return fmt.Errorf("early_quality: %v is not between 0 and 1", d.EarlyQuality)
	}
	if d.EarlyFaceSize < 0 || d.EarlyFaceSize > 4096 {
		return fmt.Errorf("early_face_size: %d is not between 0 and 4096", d.EarlyFaceSize)
	}
	if d.FullFrameEvery != 0 && (d.FullFrameEvery < 100*time.Millisecond || d.FullFrameEvery > 10*time.Minute) {
		return fmt.Errorf("full_frame_every: %v is not 0 or between 100ms and 10m", d.FullFrameEvery)
	}
	if d.BatchFrames < 1 || d.BatchFrames > 32 {
		return fmt.Errorf("batch_frames: %d is not between 1 and 32", d.BatchFrames)
	}
	return nil
}

// Validate checks the embed section.
func (e *Embed) Validate() error {
	if e.Workers < 1 {
		return fmt.Errorf("workers: %d must be at least 1", e.Workers)
	}
	if e.BatchSize < 1 || e.BatchSize > 256 {
		return fmt.Errorf("batch_size: %d is not between 1 and 256", e.BatchSize)
	}
	if e.Jitter < 0 || e.Jitter > 100 {
		return fmt.Errorf("jitter: %d is not between 0 and 100", e.Jitter)
	}
	if e.BLASThreads < 0 || e.BLASThreads > 256 {
		return fmt.Errorf("blas_threads: %d is not between 0 and 256", e.BLASThreads)
	}
	return nil
}

// MaxPurgeGrace bounds match.purge_grace: data of an expired entry is not
// kept for longer than a year past its expiry.
const MaxPurgeGrace = 366 * 24 * time.Hour

// Validate checks the match section.
func (m *Match) Validate() error {
	if m.DefaultThreshold <= 0 || m.DefaultThreshold > 2 {
		return fmt.Errorf("default_threshold: %g is not in (0, 2]", m.DefaultThreshold)
	}
	if m.Margin < 0 || m.Margin > 1 {
		return fmt.Errorf("margin: %g is not between 0 and 1", m.Margin)
	}
	if m.TopK < 1 || m.TopK > 100 {
		return fmt.Errorf("top_k: %d is not between 1 and 100", m.TopK)
	}
	if m.VoteShare < 0 || m.VoteShare >= 1 {
		return fmt.Errorf("vote_share: %g is not in [0, 1)", m.VoteShare)
	}
	if m.EnrolMinFaceSize < 0 {
		return fmt.Errorf("enrol_min_face_size: %d must not be negative", m.EnrolMinFaceSize)
	}
	if m.EnrolMinSharpness < 0 || m.EnrolMinSharpness > 1 {
		return fmt.Errorf("enrol_min_sharpness: %g is not between 0 and 1", m.EnrolMinSharpness)
	}
	if m.EnrolMinFrontalness < 0 || m.EnrolMinFrontalness > 1 {
		return fmt.Errorf("enrol_min_frontalness: %g is not between 0 and 1", m.EnrolMinFrontalness)
	}
	if m.PurgeGrace < 0 || m.PurgeGrace > MaxPurgeGrace {
		return fmt.Errorf("purge_grace: %v is not between 0 and %v", m.PurgeGrace, MaxPurgeGrace)
	}
	if m.AuditDetailRetention < 0 {
		return fmt.Errorf("audit_detail_retention: %v must not be negative", m.AuditDetailRetention)
	}
	if m.PurgeInterval < time.Minute || m.PurgeInterval > 24*time.Hour {
		return fmt.Errorf("purge_interval: %v is not between 1m and 24h", m.PurgeInterval)
	}
	return nil
}

// Validate checks the alert section.
func (a *Alert) Validate() error {
	if a.Listen == "" {
		return errors.New("listen: must not be empty")
	}
	if a.Retention <= 0 {
		return fmt.Errorf("retention: %v must be positive", a.Retention)
	}
	if a.SameAppearance < 0 || a.SameAppearance > time.Hour {
		return fmt.Errorf("same_appearance: %v is not between 0 and 1h", a.SameAppearance)
	}
	if a.IncidentWindow < 0 || a.IncidentWindow > 24*time.Hour {
		return fmt.Errorf("incident_window: %v is not between 0 and 24h", a.IncidentWindow)
	}
	if a.UnmatchedRetention < 10*time.Second || a.UnmatchedRetention > 24*time.Hour {
		return fmt.Errorf("unmatched_retention: %v is not between 10s and 24h", a.UnmatchedRetention)
	}
	if a.CommentRetention < 0 {
		return fmt.Errorf("comment_retention: %v must not be negative", a.CommentRetention)
	}
	if a.AuditDetailRetention < 0 {
		return fmt.Errorf("audit_detail_retention: %v must not be negative", a.AuditDetailRetention)
	}
	if a.SweepInterval < time.Second {
		return fmt.Errorf("sweep_interval: %v must be at least 1s", a.SweepInterval)
	}
	if a.ExportLimit < 1 || a.ExportLimit > 1000000 {
		return fmt.Errorf("export_limit: %d is not between 1 and 1000000", a.ExportLimit)
	}
	if !cameraID.MatchString(a.Consumer) {
		return fmt.Errorf("consumer: %q must be 1-64 letters, digits, '-' or '_'", a.Consumer)
	}
	if a.MaxConnections < 8 || a.MaxConnections > 65536 {
		return fmt.Errorf("max_connections: %d is not between 8 and 65536", a.MaxConnections)
	}
	if a.LiveMaxClients < 1 || a.LiveMaxClients >= a.MaxConnections {
		return fmt.Errorf("live_max_clients: %d is not between 1 and max_connections-1 (%d): live feeds must leave connections for the rest of the API", a.LiveMaxClients, a.MaxConnections-1)
	}
	if a.LiveMaxPerToken < 1 || a.LiveMaxPerToken > a.LiveMaxClients {
		return fmt.Errorf("live_max_per_token: %d is not between 1 and live_max_clients (%d)", a.LiveMaxPerToken, a.LiveMaxClients)
	}
	if err := a.validateCameraGroups(); err != nil {
		return err
	}
	if err := a.TLS.validate(); err != nil {
		return fmt.Errorf("tls.%w", err)
	}
	if err := a.Sinks.Webhook.Validate(); err != nil {
		return fmt.Errorf("sinks.webhook.%w", err)
	}
	if err := a.Sinks.MQTT.Validate(); err != nil {
		return fmt.Errorf("sinks.mqtt.%w", err)
	}
	return nil
}

// MaxCameraGroups bounds alert.camera_groups.
const MaxCameraGroups = 256

// validateCameraGroups checks alert.camera_groups on its own: names and
// members are IDs, no group is empty, no camera is listed twice in one
// group. Config.Validate also checks the members against cameras.
func (a *Alert) validateCameraGroups() error {
	if len(a.CameraGroups) > MaxCameraGroups {
		return fmt.Errorf("camera_groups: %d groups exceeds %d", len(a.CameraGroups), MaxCameraGroups)
	}
	names := make([]string, 0, len(a.CameraGroups))
	for g := range a.CameraGroups {
		names = append(names, g)
	}
	sort.Strings(names) // the first error is the same on every run
	for _, g := range names {
		if !cameraID.MatchString(g) || g == "all" {
			return fmt.Errorf("camera_groups: group name %q must be 1-64 letters, digits, '-' or '_' (and not \"all\")", g)
		}
		cams := a.CameraGroups[g]
		if len(cams) == 0 {
			return fmt.Errorf("camera_groups.%s: lists no cameras", g)
		}
		seen := map[string]bool{}
		for i, c := range cams {
			if !cameraID.MatchString(c) {
				return fmt.Errorf("camera_groups.%s[%d]: %q is not a camera ID", g, i, c)
			}
			if seen[c] {
				return fmt.Errorf("camera_groups.%s[%d]: camera %q is listed twice", g, i, c)
			}
			seen[c] = true
		}
	}
	return nil
}

// validate checks the HTTPS files and the redirect address.
func (t HTTPTLS) validate() error {
	if (t.CertFile == "") != (t.KeyFile == "") {
		return errors.New("cert_file, key_file: set both or neither")
	}
	if t.RedirectListen != "" {
		if !t.Enabled() {
			return errors.New("redirect_listen: only with cert_file and key_file (it redirects to HTTPS)")
		}
		if _, _, err := net.SplitHostPort(t.RedirectListen); err != nil {
			return fmt.Errorf("redirect_listen: %q is not host:port", t.RedirectListen)
		}
	}
	if t.HSTSMaxAge < 0 {
		return fmt.Errorf("hsts_max_age: %v must not be negative", t.HSTSMaxAge)
	}
	return nil
}

// CheckListen refuses an embedded server that would listen beyond this
// host without TLS: the one-line reason facewatch gives at start.
func (n NATS) CheckListen() error {
	mqtt := n.MQTT.Listen
	if strings.HasPrefix(mqtt, ":") {
		mqtt = "127.0.0.1" + mqtt // nats.mqtt.listen: an empty host is loopback
	}
	for _, l := range []struct{ key, addr string }{{"nats.listen", n.Listen}, {"nats.mqtt.listen", mqtt}} {
		if l.addr == "" || IsLoopback(l.addr) {
			continue
		}
		if n.TLS.CertFile == "" {
			return fmt.Errorf("%s: %q is not a loopback address and nats.tls has no cert_file: other hosts would reach the bus in clear; set nats.tls (cert_file, key_file, ca_file) or listen on 127.0.0.1", l.key, l.addr)
		}
	}
	return nil
}

// Validate checks the webhook sink; a disabled one is not checked.
func (w *Webhook) Validate() error {
	if !w.Enabled {
		return nil
	}
	u, err := url.Parse(w.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("url: %q is not an http(s) URL", Redact(w.URL))
	}
	if (w.SecretFile == "") == (w.SecretEnv == "") {
		return errors.New("secret_file, secret_env: set exactly one (the body is always signed)")
	}
	if w.Timeout <= 0 || w.Timeout > 5*time.Minute {
		return fmt.Errorf("timeout: %v is not in (0, 5m]", w.Timeout)
	}
	if w.BackoffMin <= 0 {
		return fmt.Errorf("backoff_min: %v must be positive", w.BackoffMin)
	}
	if w.BackoffMax < w.BackoffMin {
		return fmt.Errorf("backoff_max: %v is less than backoff_min %v", w.BackoffMax, w.BackoffMin)
	}
	return nil
}

// subjectPrefix is one or more NATS tokens of letters, digits, '-' and
// '_' separated by dots (no wildcards, so MQTT topics map cleanly).
var subjectPrefix = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)

// Validate checks the MQTT sink; a disabled one is not checked.
func (m *MQTTSink) Validate() error {
	if !m.Enabled {
		return nil
	}
	if !subjectPrefix.MatchString(m.SubjectPrefix) || len(m.SubjectPrefix) > 128 {
		return fmt.Errorf("subject_prefix: %q must be dot-separated tokens of letters, digits, '-' or '_'", m.SubjectPrefix)
	}
	if m.URL != "" {
		u, err := url.Parse(m.URL)
		if err != nil || u.Host == "" || u.Hostname() == "" {
			return fmt.Errorf("url: %q is not a broker URL like tcp://host:1883 or ssl://host:8883", Redact(m.URL))
		}
		if u.Scheme != "tcp" && u.Scheme != "ssl" {
			return fmt.Errorf("url: %q: scheme %q not supported (want tcp or ssl)", Redact(m.URL), u.Scheme)
		}
		if u.User != nil {
			return fmt.Errorf("url: %q carries credentials; set username and password_file instead", Redact(m.URL))
		}
		if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("url: %q has a path or query; want only scheme://host:port", Redact(m.URL))
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				return fmt.Errorf("url: port %q is not a number between 1 and 65535", p)
			}
		}
		if u.Scheme == "tcp" && m.TLS.Enabled() {
			return errors.New("tls: set for a tcp:// url; use ssl:// to connect with TLS")
		}
	} else if m.Username != "" || m.PasswordFile != "" || m.TLS.Enabled() {
		return errors.New("url: empty (the embedded server's MQTT listener, with its own publisher login), but username, password_file or tls is set; set url to the broker they are for")
	}
	if m.PasswordFile != "" && m.Username == "" {
		return errors.New("username: empty, but password_file is set")
	}
	if err := m.TLS.validate(); err != nil {
		return fmt.Errorf("tls.%w", err)
	}
	if m.ClientID == "" || len(m.ClientID) > 128 || strings.ContainsAny(m.ClientID, "/+# \t\r\n") {
		return fmt.Errorf("client_id: %q must be 1 to 128 characters without '/', '+', '#' or spaces", m.ClientID)
	}
	if m.Timeout <= 0 || m.Timeout > 5*time.Minute {
		return fmt.Errorf("timeout: %v is not in (0, 5m]", m.Timeout)
	}
	if m.BackoffMin <= 0 {
		return fmt.Errorf("backoff_min: %v must be positive", m.BackoffMin)
	}
	if m.BackoffMax < m.BackoffMin {
		return fmt.Errorf("backoff_max: %v is less than backoff_min %v", m.BackoffMax, m.BackoffMin)
	}
	return nil
}

// Resolve makes relative paths in cfg absolute against base (the directory
// of the config file), so that a config means the same from any working
// directory.
func (c *Config) Resolve(base string) {
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(base, p)
	}
	c.DataDir = abs(c.DataDir)
	c.ModelDir = abs(c.ModelDir)
	c.Audit.Dir = abs(c.Audit.Dir)
	c.Alert.Sinks.Webhook.SecretFile = abs(c.Alert.Sinks.Webhook.SecretFile)
	c.Alert.Sinks.MQTT.PasswordFile = abs(c.Alert.Sinks.MQTT.PasswordFile)
	c.Alert.Sinks.MQTT.TLS.CAFile = abs(c.Alert.Sinks.MQTT.TLS.CAFile)
	c.Alert.Sinks.MQTT.TLS.CertFile = abs(c.Alert.Sinks.MQTT.TLS.CertFile)
	c.Alert.Sinks.MQTT.TLS.KeyFile = abs(c.Alert.Sinks.MQTT.TLS.KeyFile)
	c.Alert.EvidenceKeyFile = abs(c.Alert.EvidenceKeyFile)
	c.NATS.CredsFile = abs(c.NATS.CredsFile)
	c.NATS.CredsDir = abs(c.NATS.CredsDir)
	c.NATS.TLS.CAFile = abs(c.NATS.TLS.CAFile)
	c.NATS.TLS.CertFile = abs(c.NATS.TLS.CertFile)
	c.NATS.TLS.KeyFile = abs(c.NATS.TLS.KeyFile)
	c.Alert.TLS.CertFile = abs(c.Alert.TLS.CertFile)
	for i := range c.Cameras {
		c.Cameras[i].TLSCAFile = abs(c.Cameras[i].TLSCAFile)
	}
	c.Alert.TLS.KeyFile = abs(c.Alert.TLS.KeyFile)
}

// Redact masks credentials in s for logs, status, metrics and errors. s may
// be one URL, a comma-separated NATS URL list or free text holding URLs:
// in each URL everything between "://" and the last "@" before the next URL
// (user and password, even with unescaped '/', '@', ':' or ',' in them)
// becomes "xxxxx", and so does the value of every query parameter whose
// name says it is a secret (password, token, key, secret, auth, sig, cred).
// It works on the text, not on a parse, so that a URL that does not parse
// is masked too; a URL with '@' in its path is over-masked, never leaked.
// Whitespace and quotes end a URL: a password cannot hold them unescaped.
func Redact(s string) string {
	// Each rule finds its spans in the original text and the union is
	// masked, so that one rule's mask cannot hide another's secret.
	var spans [][2]int
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && !urlEnd(s[i]) {
			continue
		}
		spans = append(spans, userSpans(s[start:i], start)...)
		start = i + 1
	}
	for _, m := range secretParam.FindAllStringSubmatchIndex(s, -1) {
		if m[1] > m[3] {
			spans = append(spans, [2]int{m[3], m[1]})
		}
	}
	if len(spans) == 0 {
		return s
	}
	slices.SortFunc(spans, func(a, b [2]int) int { return a[0] - b[0] })
	var b strings.Builder
	at := 0
	for i, sp := range spans {
		if i > 0 && sp[0] <= at { // overlaps or touches the span written last
			at = max(at, sp[1])
			continue
		}
		b.WriteString(s[at:sp[0]])
		b.WriteString("xxxxx")
		at = sp[1]
	}
	b.WriteString(s[at:])
	return b.String()
}

// RedactError returns err's text with credentials masked as Redact does,
// and the fragments url.Parse quotes from a URL it refuses (an "invalid
// port" or "invalid URL escape" may be a piece of the password) masked
// too.
func RedactError(err error) string {
	return urlErrorDetail.ReplaceAllString(Redact(err.Error()), `$1 "xxxxx"`)
}

// urlEnd reports whether c cannot be part of a URL in text (so that a
// quoted URL in an error message ends at its quote).
func urlEnd(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '"', '\'', '`', '<', '>':
		return true
	}
	return false
}

// userSpans returns the spans (offset by off) of the user part of each
// URL in a word without whitespace. A word may be a list: a ',' followed
// by a scheme and "://" starts the next URL.
func userSpans(w string, off int) [][2]int {
	if !strings.Contains(w, "://") {
		return nil
	}
	var spans [][2]int
	bounds := []int{0}
	for _, loc := range listedURL.FindAllStringIndex(w, -1) {
		bounds = append(bounds, loc[0])
	}
	bounds = append(bounds, len(w))
	for k := 0; k+1 < len(bounds); k++ {
		p := w[bounds[k]:bounds[k+1]]
		at := strings.Index(p, "://")
		if at < 0 {
			continue
		}
		if j := strings.LastIndexByte(p, '@'); j > at+3 {
			spans = append(spans, [2]int{off + bounds[k] + at + 3, off + bounds[k] + j})
		}
	}
	return spans
}

var (
	// listedURL finds the ',' before each further URL of a list.
	listedURL = regexp.MustCompile(`,[a-zA-Z][a-zA-Z0-9+.-]*://`)
	// secretParam is a query parameter whose name marks a secret.
	secretParam = regexp.MustCompile(`(?i)([?&;][a-z0-9_.-]*(?:pass|pwd|token|key|secret|auth|sig|cred)[a-z0-9_.-]*=)[^&#;\s"'<>]*`)
	// urlErrorDetail is what url.Parse quotes from the URL it refuses.
	urlErrorDetail = regexp.MustCompile(`(invalid port|invalid URL escape|invalid character|invalid userinfo) "[^"]*"`)
)
