// Package alert owns the alert service: it consumes hits from JetStream,
// stores each once (SQLite history plus content-addressed probe crops),
// acknowledges only after the commit, hands each new alert to its sinks
// (the live feed for operators, the console, a webhook, MQTT; sink.go),
// records reviews, answers audited history queries over an authenticated
// HTTP API, and expires old alerts. It never sees faces that matched
// nothing, and it must not decide matches or talk to cameras.
package alert

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/facewatch/facewatch/internal/audit"
	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/httpserve"
	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/wire"
	"github.com/prometheus/client_golang/prometheus"
)

// Options are the service's collaborators.
type Options struct {
	// Logger receives the service's logs (component=alert); nil discards.
	Logger *slog.Logger
	// Registry receives the service's metrics; nil creates a private one
	// (still served on /metrics).
	Registry *prometheus.Registry
	// PhotoDir holds the enrolled photos, one file per SHA-256
	// (<sha256>.jpg), as the gallery writes them. Empty serves none.
	PhotoDir string
	// Now is the clock; nil means time.Now. Tests move it.
	Now func() time.Time
	// BatchSize bounds how many hits are committed in one transaction
	// (default 128).
	BatchSize int
	// AckWait is how long JetStream waits for an acknowledgement before
	// redelivering a hit to another consumer (default 30s); a restarted
	// service gets the hits its dead predecessor held after this long.
	AckWait time.Duration
	// Console, when set, receives one line per new alert (the console
	// sink); `facewatch run` passes its standard output.
	Console io.Writer
	// Watchlists, when set, lists the gallery's watchlist names: only
	// those (and a few others, first come) get their own metric label
	// value; Run refreshes them every minute.
	Watchlists func(ctx context.Context) ([]string, error)
	// AuditDir holds the audit keys and checkpoints (config audit.dir);
	// empty is audit.DefaultDir(dataDir). Keys are generated there on
	// first start.
	AuditDir string
	// Gallery, when set, answers the curator routes (watchlists,
	// enrolment, evaluation); without it they answer 503.
	Gallery Gallery
	// CheckpointEvery is how often Run signs the audit log's head while it
	// moves (default 5s): entries newer than the last checkpoint are the
	// only ones that could be cut off unseen.
	CheckpointEvery time.Duration
	// EmbeddedMQTT is the embedded NATS server's MQTT listener
	// (natsbus.EmbeddedMQTTBroker): the MQTT sink's broker when
	// alert.sinks.mqtt.url is empty.
	EmbeddedMQTT natsbus.MQTTBroker
}

// Service is the alert service. Its methods are safe for concurrent use.
type Service struct {
	cfg      config.Alert
	dataDir  string
	crops    string
	photoDir string
	log      *slog.Logger
	reg      *prometheus.Registry
	now      func() time.Time
	batch    int
	ackWait  time.Duration
	// depthEvery is how often Run reads the consumer's backlog.
	depthEvery time.Duration
	db         *db
	m          *metrics
	feed       *feed
	// inline sinks get new alerts on the commit path; runners run the
	// other sinks from the history (see sink.go).
	inline  []Sink
	runners []*sinkRunner
	// js is the JetStream Run was given, for audit checkpoints.
	js     atomic.Pointer[jetstream.JetStream]
	routes []route
	// alog is the audit log (internal/audit), keyed and checkpointed.
	alog            *audit.Log
	checkpointEvery time.Duration
	// tokenRecheck is how often a live feed rechecks its token.
	tokenRecheck time.Duration
	// cropMu keeps the retention sweep from removing a crop file between a
	// batch finding it already on disk and committing a row that refers to
	// it: batches hold it shared, the sweep exclusively.
	cropMu sync.RWMutex
	// consuming is 1 while Run holds a consumer; readyz reports it.
	consuming atomic.Int32
	// liveSlots bounds the open live feeds.
	liveSlots *liveSlots
	// labels bounds the watchlist label values of the metrics.
	labels     *labelGuard
	watchlists func(ctx context.Context) ([]string, error)

	// galleryAPI answers the curator routes (Options.Gallery); nil: 503.
	galleryAPI Gallery
	// health holds the cameras' newest statuses.
	health *cameraHealth

	closeOnce sync.Once
	closed    chan struct{}
}

// Open opens (creating and migrating) the alert database under dataDir.
func Open(ctx context.Context, dataDir string, cfg config.Alert, opts Options) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("alert config: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "alert")
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	batch := opts.BatchSize
	if batch <= 0 {
		batch = 128
	}
	ackWait := opts.AckWait
	if ackWait <= 0 {
		ackWait = 30 * time.Second
	}
	if err := os.MkdirAll(cropDir(dataDir), 0o750); err != nil {
		return nil, fmt.Errorf("creating crop directory: %w", err)
	}
	keys, err := auditKeys(dataDir, opts.AuditDir)
	if err != nil {
		return nil, err
	}
	d, err := openDB(ctx, DBPath(dataDir))
	if err != nil {
		return nil, err
	}
	alog := audit.NewLog(AuditLogName, keys, "")
	if err := alog.Start(ctx, d.w, now()); err != nil {
		d.Close()
		return nil, err
	}
	every := opts.CheckpointEvery
	if every <= 0 {
		every = 5 * time.Second
	}
	m, err := newMetrics(reg)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("registering alert metrics: %w", err)
	}
	s := &Service{
		cfg: cfg, dataDir: dataDir, crops: cropDir(dataDir), photoDir: opts.PhotoDir,
		log: log, reg: reg, now: now, batch: batch, ackWait: ackWait, depthEvery: 5 * time.Second, db: d, m: m,
		feed: newFeed(), closed: make(chan struct{}), alog: alog, checkpointEvery: every,
		tokenRecheck: TokenRecheck,
		liveSlots:    newLiveSlots(cfg.LiveMaxClients, cfg.LiveMaxPerToken),
		labels:       newLabelGuard(), watchlists: opts.Watchlists,
		galleryAPI: opts.Gallery, health: &cameraHealth{last: map[string]cameraSeen{}},
	}
	if s.watchlists != nil {
		// Known before the first hit is counted.
		if names, err := s.watchlists(ctx); err == nil {
			s.labels.setKnown(names)
		}
	}
	s.inline, s.runners, err = openSinks(sinkEnv{cfg: cfg.Sinks, log: log, feed: s.feed, m: m, console: opts.Console, embeddedMQTT: opts.EmbeddedMQTT})
	if err != nil {
		d.Close()
		return nil, err
	}
	for _, r := range s.runners {
		if r.start, err = s.startCursor(ctx, r); err != nil {
			d.Close()
			return nil, err
		}
	}
	s.routes = s.routeTable()
	return s, nil
}

// HTTPLimits are the limits the API's server must run with (config
// alert.max_connections and the package's timeouts); the live feed lifts
// the read and write timeouts for its own stream.
func (s *Service) HTTPLimits() httpserve.Limits {
	l := httpserve.DefaultLimits()
	l.MaxConns = s.cfg.MaxConnections
	return l
}

// Close closes the database and ends every live feed. Run must have
// returned (cancel its context first).
func (s *Service) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.closed)
		s.feed.close()
		if _, _, cerr := s.alog.Checkpoint(context.Background(), s.db.r, s.now()); cerr != nil {
			s.log.Error("final audit checkpoint failed", "err", cerr)
		}
		err = s.db.Close()
	})
	return err
}

// pendingHit is one hit waiting for its batch commit.
type pendingHit struct {
	hit   wire.Hit
	crop  []byte
	scene []byte // the downscaled frame with the face box; nil for none
	chip  []byte // the enrolled face (aligned chip); nil for none
}

// Store stores hit and its probe crop durably and returns whether it was
// new. Storing the same hit ID again is a no-op (created=false), so a
// redelivered message is never a second alert.
func (s *Service) Store(ctx context.Context, hit wire.Hit, crop []byte) (bool, error) {
	// Validate as a receiver would: Store is also called directly.
	return s.StoreImages(ctx, hit, wire.HitImages{Crop: crop})
}

// StoreImages is Store for a hit with all its images: the crop, the scene
// (the frame downscaled, the face box drawn) and the enrolled face.
func (s *Service) StoreImages(ctx context.Context, hit wire.Hit, im wire.HitImages) (bool, error) {
	if _, err := wire.EncodeHitImages(hit, im); err != nil {
		return false, fmt.Errorf("storing hit: %w", err)
	}
	created, err := s.storeBatch(ctx, []pendingHit{{hit, im.Crop, im.Scene, im.EnrolledChip}})
	if err != nil {
		return false, err
	}
	return created[0], nil
}

// storeBatch writes crops, then inserts every hit in one transaction
// (one fsync for the batch), then announces the new ones.
func (s *Service) storeBatch(ctx context.Context, hits []pendingHit) ([]bool, error) {
	start := time.Now()
	s.cropMu.RLock()
	defer s.cropMu.RUnlock()
	cropHash, sceneHash, chipHash, err := s.writeCrops(hits)
	if err != nil {
		return nil, err
	}
	tx, err := s.db.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("storing hits: %w", err)
	}
	defer tx.Rollback()
	// The id is above every id ever used (migration 3), never max(id)+1
	// of what is left after a sweep.
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO alerts (id, hit_id, camera, track, time_ns, stored_ns, watchlist, watchlist_kind, priority,
		second_reviewer, identity, identity_name, distance, threshold, second_distance, model_name, model_sha256, crop_sha256, enrolled_photo, extra,
		scene_sha256, enrolled_chip_sha256, incident_id, tracker, appearance)
		VALUES (1 + MAX(COALESCE((SELECT MAX(id) FROM alerts), 0), (SELECT id FROM alert_id_floor WHERE one = 1)),
		?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (hit_id) DO NOTHING`)
	if err != nil {
		return nil, fmt.Errorf("storing hits: %w", err)
	}
	defer stmt.Close()
	created := make([]bool, len(hits))
	ids := make([]int64, len(hits))
	forgotten := make([]bool, len(hits))
	merged := make([]string, len(hits))
	incidents := make([]int64, len(hits))
	nowNS := s.now().UnixNano()
	for i, p := range hits {
		h := p.hit
		// A hit whose alert retention has removed is not stored again (a new consumer re-reading the
		// stream, a replay): swept alerts never come back.
		gone, err := s.forgottenLocked(ctx, tx, h)
		if err != nil {
			return nil, err
		}
		if gone {
			forgotten[i] = true
			continue
		}
		// Another track's alert for the same person on the same camera,
		// of the same appearance (a track that broke and resumed).
		if same, err := s.sameAppearanceLocked(ctx, tx, h); err != nil {
			return nil, err
		} else if same != "" {
			merged[i] = same
			continue
		}
		// A redelivered hit is a no-op; only a new one joins (or opens)
		// an incident.
		var dup int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM alerts WHERE hit_id = ?`, h.ID).Scan(&dup); err != nil {
			return nil, fmt.Errorf("storing hit %s: %w", h.ID, err)
		}
		if dup > 0 {
			continue
		}
		inc, err := s.incidentForLocked(ctx, tx, h)
		if err != nil {
			return nil, err
		}
		incidents[i] = inc
		extra, _ := json.Marshal(alertExtra{Box: h.Box, Faces: h.Faces})
		res, err := stmt.ExecContext(ctx, h.ID, h.Camera, int64(h.Track), h.Time.UnixNano(), nowNS, h.Watchlist, h.WatchlistKind, h.Priority,
			h.SecondReviewer, h.Identity, h.IdentityName, h.Distance, h.Threshold, h.SecondDistance, h.Model.Name, h.Model.SHA256,
			cropHash[i], h.EnrolledPhoto, string(extra), sceneHash[i], chipHash[i], inc, int64(h.Tracker), int64(h.Appearance))
		if err != nil {
			return nil, fmt.Errorf("storing hit %s: %w", h.ID, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			created[i] = true
			ids[i], _ = res.LastInsertId()
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("committing %d hits: %w", len(hits), err)
	}
	s.m.storeSeconds.Observe(time.Since(start).Seconds())
	s.m.batchSize.Observe(float64(len(hits)))
	var fresh []Alert
	for i, p := range hits {
		if forgotten[i] {
			s.m.forgotten.Inc()
			s.log.Info("hit not stored: retention removed its alert already", "hit", p.hit.ID)
			continue
		}
		if merged[i] != "" {
			s.m.duplicates.Inc()
			s.log.Info("hit not stored: the same appearance as an alert already stored", "hit", p.hit.ID, "alert", merged[i])
			continue
		}
		if !created[i] {
			s.m.duplicates.Inc()
			continue
		}
		s.m.stored.WithLabelValues(s.labels.value(p.hit.Watchlist)).Inc()
		fresh = append(fresh, alertFromHit(ids[i], p.hit, cropHash[i], sceneHash[i], chipHash[i], incidents[i], nowNS))
		if lat := time.Since(p.hit.Time); lat > 0 {
			s.m.hitLatency.Observe(lat.Seconds())
		}
	}
	s.notifySinks(fresh)
	return created, nil
}

// sameAppearanceLocked returns the hit ID of a stored alert that h
// repeats: same camera and identity, another track, and the same
// appearance. When both come from the same tracker and carry an
// appearance, the tracker's word decides (a person who left through the
// frame's edge and came back moments later is a new appearance; one whose
// track broke inside the view is not, however long the pieces); otherwise
// (a hit from an older build, or the camera's tracker restarted or moved to
// another detect process) a face time within alert.same_appearance does,
// when that is on. "" when none.
func (s *Service) sameAppearanceLocked(ctx context.Context, tx *sql.Tx, h wire.Hit) (string, error) {
	var id string
	if h.Appearance != 0 {
		err := tx.QueryRowContext(ctx, `SELECT hit_id FROM alerts WHERE camera = ? AND tracker = ? AND appearance = ? AND identity = ? AND track != ?
			AND hit_id != ? LIMIT 1`, h.Camera, int64(h.Tracker), int64(h.Appearance), h.Identity, int64(h.Track), h.ID).Scan(&id)
		if err == nil {
			return id, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return "", fmt.Errorf("looking for the appearance of hit %s: %w", h.ID, err)
		}
	}
	w := s.cfg.SameAppearance
	if w <= 0 {
		return "", nil
	}
	t := h.Time.UnixNano()
	// The time rule, against the alerts the tracker's word does not cover:
	// all of them for a hit without an appearance, otherwise those of
	// another tracker or without one.
	err := tx.QueryRowContext(ctx, `SELECT hit_id FROM alerts WHERE camera = ? AND identity = ? AND track != ? AND time_ns BETWEEN ? AND ?
		AND hit_id != ? AND (? = 0 OR appearance = 0 OR tracker != ?) LIMIT 1`,
		h.Camera, h.Identity, int64(h.Track), t-int64(w), t+int64(w), h.ID, int64(h.Appearance), int64(h.Tracker)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("looking for the appearance of hit %s: %w", h.ID, err)
	}
	return id, nil
}

// forgottenLocked reports whether h must not be stored because retention
// removed its alert (a tombstone holds its ID's hash). tx is the store's
// write transaction.
func (s *Service) forgottenLocked(ctx context.Context, tx *sql.Tx, h wire.Hit) (bool, error) {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM alert_tombstones WHERE hit_hash = ?`, tombstone(h.ID)).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("checking hit %s against removed alerts: %w", h.ID, err)
	}
	return true, nil
}

// tombstone is what is kept of a removed alert's hit ID: its SHA-256.
func tombstone(hitID string) string {
	sum := sha256.Sum256([]byte(hitID))
	return hex.EncodeToString(sum[:])
}

// alertExtra is hit metadata kept as JSON: shown, never filtered on.
type alertExtra struct {
	Box   wire.Box         `json:"box"`
	Faces []wire.FaceScore `json:"faces"`
}

func isJPEG(b []byte) bool { return len(b) > 3 && bytes.HasPrefix(b, []byte{0xFF, 0xD8, 0xFF}) }

// writeCrops stores the batch's crops, scenes and enrolled faces as
// <sha256>.jpg and returns each hit's hashes of them ("" when it has none
// or it was refused). Every crop is
// durable under its final name before any row that refers to it commits,
// at the cost of two syncs per batch rather than two per crop: all new
// crops are written to temporary files, their data synced at once
// (syncData), renamed, and the directory synced. A crash before the
// renames leaves only temporary files, which the sweep removes.
func (s *Service) writeCrops(hits []pendingHit) (crops, scenes, chips []string, err error) {
	n := len(hits)
	blobs := make([][]byte, 3*n)
	for i, h := range hits {
		blobs[i], blobs[n+i], blobs[2*n+i] = h.crop, h.scene, h.chip
	}
	sums, err := s.writeImages(blobs, func(i int) string { return hits[i%n].hit.ID })
	if err != nil {
		return nil, nil, nil, err
	}
	return sums[:n], sums[n : 2*n], sums[2*n:], nil
}

// writeImages is writeCrops for any list of JPEGs; hitOf names the hit of
// the i-th for the logs.
func (s *Service) writeImages(blobs [][]byte, hitOf func(i int) string) ([]string, error) {
	sums := make([]string, len(blobs))
	type pending struct{ tmp, final string }
	var todo []pending
	defer func() {
		for _, p := range todo {
			os.Remove(p.tmp) // no-op once renamed
		}
	}()
	planned := map[string]bool{}
	for i, b := range blobs {
		if len(b) == 0 {
			continue
		}
		if !isJPEG(b) {
			// Keep the alert, drop the evidence we cannot show safely.
			s.m.cropsRejected.Inc()
			s.log.Warn("probe crop or scene is not a JPEG; storing the alert without it", "hit", hitOf(i), "bytes", len(b))
			continue
		}
		sum := sha256.Sum256(b)
		name := hex.EncodeToString(sum[:])
		sums[i] = name
		final := filepath.Join(s.crops, name+".jpg")
		if planned[name] || s.haveCrop(final, b) {
			continue
		}
		planned[name] = true
		tmp, err := writeTemp(s.crops, b)
		if err != nil {
			return nil, fmt.Errorf("writing crop %s: %w", name, err)
		}
		todo = append(todo, pending{tmp, final})
	}
	if len(todo) == 0 {
		return sums, nil
	}
	tmps := make([]string, len(todo))
	for i, p := range todo {
		tmps[i] = p.tmp
	}
	if err := syncData(s.crops, tmps); err != nil {
		return nil, fmt.Errorf("syncing crops: %w", err)
	}
	for _, p := range todo {
		if err := os.Rename(p.tmp, p.final); err != nil {
			return nil, fmt.Errorf("placing crop %s: %w", filepath.Base(p.final), err)
		}
	}
	dir, err := os.Open(s.crops)
	if err != nil {
		return nil, fmt.Errorf("syncing crop directory: %w", err)
	}
	err = dir.Sync()
	dir.Close()
	if err != nil {
		return nil, fmt.Errorf("syncing crop directory: %w", err)
	}
	return sums, nil
}

// haveCrop reports whether path already holds exactly crop (a file left
// by an earlier batch; anything else there is overwritten).
func (s *Service) haveCrop(path string, crop []byte) bool {
	st, err := os.Stat(path)
	if err != nil || st.Size() != int64(len(crop)) {
		return false
	}
	b, err := os.ReadFile(path)
	return err == nil && bytes.Equal(b, crop)
}

// writeTemp writes b to a new temporary file in dir (mode 0600) and
// returns its path; the data is not yet synced.
func writeTemp(dir string, b []byte) (string, error) {
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return "", err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// Sweep removes alerts stored longer ago than the retention period, their
// reviews, and the crop files no remaining alert refers to, leaving a
// tombstone (the SHA-256 of the hit ID) so that the hit is never stored
// again; it blanks review comments older than alert.comment_retention
// and expires the details of audit entries older than
// alert.audit_detail_retention. It returns the number of alerts removed.
// The audit log's entries are never swept: that an action happened stays.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	cutoff := s.now().Add(-s.cfg.Retention).UnixNano()
	s.cropMu.Lock()
	defer s.cropMu.Unlock()
	tx, err := s.db.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("sweeping expired alerts: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT crop_sha256 FROM alerts WHERE stored_ns < ?1 AND crop_sha256 != ''
		UNION SELECT scene_sha256 FROM alerts WHERE stored_ns < ?1 AND scene_sha256 != ''
		UNION SELECT enrolled_chip_sha256 FROM alerts WHERE stored_ns < ?1 AND enrolled_chip_sha256 != ''`, cutoff)
	if err != nil {
		return 0, fmt.Errorf("sweeping expired alerts: %w", err)
	}
	var crops []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			rows.Close()
			return 0, fmt.Errorf("sweeping expired alerts: %w", err)
		}
		crops = append(crops, c)
	}
	rows.Close()
	if err := s.tombstonesLocked(ctx, tx, `stored_ns < ?`, cutoff); err != nil {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM alerts WHERE stored_ns < ?`, cutoff)
	if err != nil {
		return 0, fmt.Errorf("deleting expired alerts: %w", err)
	}
	// Tombstones outlive every copy of their hit in the hits stream (its
	// age is bounded by retention too); older ones only cost space.
	if _, err := tx.ExecContext(ctx, `DELETE FROM alert_tombstones WHERE removed_ns < ?`,
		s.now().Add(-natsbus.HitsMaxAgeFor(s.cfg.Retention)-natsbus.HitsDuplicateWindow).UnixNano()); err != nil {
		return 0, fmt.Errorf("expiring tombstones: %w", err)
	}
	// Review comments are free text about a person: they go after
	// alert.comment_retention, the decision (who, what, when) stays.
	if s.cfg.CommentRetention > 0 {
		if _, err := tx.ExecContext(ctx, `UPDATE reviews SET comment = '' WHERE time_ns < ? AND comment != ''`,
			s.now().Add(-s.cfg.CommentRetention).UnixNano()); err != nil {
			return 0, fmt.Errorf("expiring review comments: %w", err)
		}
	}
	n, _ := res.RowsAffected()
	var orphans []string
	for _, c := range crops {
		var still int
		if err := tx.QueryRowContext(ctx, imageRefs, c).Scan(&still); err != nil {
			return 0, fmt.Errorf("sweeping crops: %w", err)
		}
		if still == 0 {
			orphans = append(orphans, c)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("committing sweep: %w", err)
	}
	// Rows first, files second: a crash in between leaves an orphan file
	// (removed by the next sweep's directory scan), never a dangling row.
	var ferr error
	for _, c := range orphans {
		if err := os.Remove(filepath.Join(s.crops, c+".jpg")); err != nil && !errors.Is(err, os.ErrNotExist) {
			ferr = errors.Join(ferr, fmt.Errorf("removing crop %s: %w", c, err))
		}
	}
	if err := s.sweepOrphanFiles(ctx, cutoff); err != nil {
		ferr = errors.Join(ferr, err)
	}
	// Audit details may name a person (a history query's filters): they
	// expire on their own schedule; the entries stay and still verify.
	if s.cfg.AuditDetailRetention > 0 {
		expired, err := s.alog.ExpireDetails(ctx, s.db.w, s.now().Add(-s.cfg.AuditDetailRetention))
		if err != nil {
			ferr = errors.Join(ferr, err)
		} else if expired > 0 {
			s.log.Info("audit details expired", "entries", expired)
		}
	}
	s.m.swept.Add(float64(n))
	if n > 0 {
		s.log.Info("retention sweep", "alerts_removed", n, "crops_removed", len(orphans))
	}
	return int(n), ferr
}

// imageRefs counts the alerts that refer to an image file (?1, its
// SHA-256) as their crop, scene or enrolled face.
const imageRefs = `SELECT (SELECT COUNT(*) FROM alerts WHERE crop_sha256 = ?1) + (SELECT COUNT(*) FROM alerts WHERE scene_sha256 = ?1)
	+ (SELECT COUNT(*) FROM alerts WHERE enrolled_chip_sha256 = ?1)`

// tombstonesLocked records a tombstone for every alert matching where
// (with args), inside the caller's write transaction, before they are
// deleted.
func (s *Service) tombstonesLocked(ctx context.Context, tx *sql.Tx, where string, args ...any) error {
	rows, err := tx.QueryContext(ctx, `SELECT hit_id FROM alerts WHERE `+where, args...)
	if err != nil {
		return fmt.Errorf("listing alerts to remove: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return fmt.Errorf("listing alerts to remove: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("listing alerts to remove: %w", err)
	}
	nowNS := s.now().UnixNano()
	for _, id := range ids {
		if _, err := tx.ExecContext(ctx, `INSERT INTO alert_tombstones (hit_hash, removed_ns) VALUES (?, ?)
			ON CONFLICT (hit_hash) DO UPDATE SET removed_ns = excluded.removed_ns`, tombstone(id), nowNS); err != nil {
			return fmt.Errorf("recording removed alert: %w", err)
		}
	}
	return nil
}

// sweepOrphanFiles removes crop files older than the cutoff that no alert
// refers to (left by a crash between a sweep's commit and its removals)
// and temporary files (left by a crash inside a batch). The caller holds
// cropMu exclusively, so no batch is writing.
func (s *Service) sweepOrphanFiles(ctx context.Context, cutoff int64) error {
	ents, err := os.ReadDir(s.crops)
	if err != nil {
		return fmt.Errorf("listing crops: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".tmp-") {
			os.Remove(filepath.Join(s.crops, name))
			continue
		}
		info, err := e.Info()
		if err != nil || info.ModTime().UnixNano() >= cutoff {
			continue
		}
		var n int
		if err := s.db.r.QueryRowContext(ctx, imageRefs,
			strings.TrimSuffix(name, ".jpg")).Scan(&n); err != nil {
			return fmt.Errorf("checking crop %s: %w", name, err)
		}
		if n == 0 {
			os.Remove(filepath.Join(s.crops, name))
		}
	}
	return nil
}

// sweepLoop runs Sweep every SweepInterval until ctx ends.
func (s *Service) sweepLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for {
		if _, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("retention sweep failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// readCrop opens a stored crop by hash.
func (s *Service) readCrop(sum string) (io.ReadCloser, error) {
	return os.Open(filepath.Join(s.crops, sum+".jpg"))
}

// ping checks the database answers.
func (s *Service) ping(ctx context.Context) error {
	var one int
	if err := s.db.r.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return err
	}
	return nil
}

var errNotFound = errors.New("not found")

// getAlert loads one alert with its reviews.
func (s *Service) getAlert(ctx context.Context, q queryer, id int64) (Alert, error) {
	return loadAlert(ctx, q, id)
}

// loadAlert loads one alert with its reviews (errNotFound when there is
// none).
func loadAlert(ctx context.Context, q queryer, id int64) (Alert, error) {
	row := q.QueryRowContext(ctx, `SELECT `+alertColumns+` FROM alerts WHERE id = ?`, id)
	a, err := scanAlert(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Alert{}, errNotFound
	}
	if err != nil {
		return Alert{}, fmt.Errorf("loading alert %d: %w", id, err)
	}
	rows, err := q.QueryContext(ctx, `SELECT reviewer, reviewer_name, decision, comment, time_ns FROM reviews WHERE alert_id = ? ORDER BY id`, id)
	if err != nil {
		return Alert{}, fmt.Errorf("loading reviews of alert %d: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var r Review
		var ns int64
		if err := rows.Scan(&r.Reviewer, &r.ReviewerName, &r.Decision, &r.Comment, &ns); err != nil {
			return Alert{}, fmt.Errorf("loading reviews of alert %d: %w", id, err)
		}
		r.Time = time.Unix(0, ns).UTC()
		a.Reviews = append(a.Reviews, r)
	}
	return a, rows.Err()
}

// queryer is what getAlert needs from a *sql.DB or *sql.Tx.
type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}
