package alert

// Evidence bundles: one signed file per alert for a court (package
// internal/evidence holds the format, the signature and the offline
// check; this file gathers the parts).

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/facewatch/facewatch/internal/audit"
	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/evidence"
	"github.com/facewatch/facewatch/internal/wire"
)

// ErrAlertNotFound is returned by ExportEvidence for an alert id the
// history does not hold (never stored, or removed by retention).
var ErrAlertNotFound = errors.New("alert not found")

// EvidenceKeyPath is the file of the site's evidence signing key:
// alert.evidence_key_file, or <dataDir>/keys/evidence-ed25519.pem.
func EvidenceKeyPath(dataDir string, cfg config.Alert) string {
	if cfg.EvidenceKeyFile != "" {
		return cfg.EvidenceKeyFile
	}
	return filepath.Join(dataDir, "keys", "evidence-ed25519.pem")
}

// EvidencePublicKey returns the site's evidence public key, generating
// the key pair on first use.
func EvidencePublicKey(dataDir string, cfg config.Alert) (ed25519.PublicKey, error) {
	k, _, err := evidence.LoadOrCreateKey(EvidenceKeyPath(dataDir, cfg))
	if err != nil {
		return nil, err
	}
	return k.Public().(ed25519.PublicKey), nil
}

// ExportEvidence returns the signed evidence bundle of alert id from the
// alert database of l (a command run on the host, audited as l's OS user
// acting as a local investigator); caseRef, which is required, says why.
// photoDir holds the enrolled photos (the gallery's).
func ExportEvidence(ctx context.Context, l Local, cfg config.Alert, photoDir string, id int64, caseRef string) ([]byte, error) {
	if !caseFormat.MatchString(caseRef) {
		return nil, errors.New("exporting evidence: case reference must be 3-64 letters, digits or ' ._/:#-', starting with a letter or digit")
	}
	key, _, err := evidence.LoadOrCreateKey(EvidenceKeyPath(l.DataDir, cfg))
	if err != nil {
		return nil, fmt.Errorf("exporting evidence: %w", err)
	}
	var b []byte
	err = l.do(ctx, func(d *db, alog *audit.Log) error {
		src := evidenceSource{db: d, alog: alog, crops: cropDir(l.DataDir), photoDir: photoDir}
		p := principal{ID: l.Actor.ID, Name: l.Actor.Name, Person: l.Actor.Name, Role: RoleInvestigator}
		b, err = src.bundle(ctx, key, id, caseRef, p, l.Note, time.Now())
		return err
	})
	return b, err
}

// evidenceSource is where an alert's evidence lies.
type evidenceSource struct {
	alog     *audit.Log
	db       *db
	crops    string
	photoDir string
}

// decisionPart is the decision details of an alert, for the bundle.
type decisionPart struct {
	Watchlist      string           `json:"watchlist"`
	WatchlistKind  string           `json:"watchlist_kind"`
	Identity       string           `json:"identity"`
	IdentityName   string           `json:"identity_name"`
	Distance       float64          `json:"distance"`
	Threshold      float64          `json:"threshold"`
	SecondDistance float64          `json:"second_distance"`
	Box            wire.Box         `json:"box"`
	Faces          []wire.FaceScore `json:"faces"`
	Status         Status           `json:"status"`
	Reviews        []Review         `json:"reviews"`
	Captured       time.Time        `json:"captured"`
	Camera         string           `json:"camera"`
}

// chainPart is the audit chain's state when the bundle was made.
type chainPart struct {
	HeadSeq         int64  `json:"head_seq"`
	HeadHash        string `json:"head_hash"`
	VerifiedEntries int    `json:"verified_entries"`
	ChainIntact     bool   `json:"chain_intact"`
	Error           string `json:"error,omitempty"`
}

// bundle audits the export (before anything is gathered: nothing leaves
// that is not recorded), then gathers the parts and signs them.
func (src evidenceSource) bundle(ctx context.Context, key ed25519.PrivateKey, id int64, caseRef string, p principal, note string, now time.Time) ([]byte, error) {
	a, err := loadAlert(ctx, src.db.r, id)
	if errors.Is(err, errNotFound) {
		return nil, fmt.Errorf("exporting evidence: alert %d: %w", id, ErrAlertNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("exporting evidence: %w", err)
	}
	target := "alert/" + strconv.FormatInt(id, 10)
	pub := key.Public().(ed25519.PublicKey)
	dm := map[string]string{"key_id": evidence.KeyID(pub)}
	if note != "" {
		dm["note"] = note
	}
	detail, _ := json.Marshal(dm)
	tx, err := src.db.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("auditing evidence export: %w", err)
	}
	defer tx.Rollback()
	a0 := p.actor()
	if err := src.alog.Append(ctx, tx, &AuditEntry{Time: now, Actor: a0.ID, ActorName: a0.Name, Role: a0.Role, Action: "evidence_export",
		Target: target, Case: caseRef, Detail: string(detail)}); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("auditing evidence export: %w", err)
	}

	var parts []evidence.Part
	var omitted []evidence.Omitted
	add := func(name, mediaType string, v any) error {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return fmt.Errorf("exporting evidence: %s: %w", name, err)
		}
		parts = append(parts, evidence.Part{Name: name, MediaType: mediaType, Data: b})
		return nil
	}
	if err := add("alert.json", "application/json", a); err != nil {
		return nil, err
	}
	if err := add("decision.json", "application/json", decisionPart{Watchlist: a.Watchlist, WatchlistKind: a.WatchlistKind,
		Identity: a.Identity, IdentityName: a.IdentityName, Distance: a.Distance, Threshold: a.Threshold, SecondDistance: a.SecondDistance,
		Box: a.Box, Faces: a.Faces, Status: a.Status, Reviews: a.Reviews, Captured: a.Time, Camera: a.Camera}); err != nil {
		return nil, err
	}
	if err := add("model.json", "application/json", a.Model); err != nil {
		return nil, err
	}
	if crop, why := src.readCrop(a.CropSHA256); why == "" {
		parts = append(parts, evidence.Part{Name: "probe.jpg", MediaType: "image/jpeg", Data: crop})
	} else {
		omitted = append(omitted, evidence.Omitted{Name: "probe.jpg", Reason: why})
	}
	// The scene and the enrolled face, when the hit carried them (hits
	// from before they existed did not: nothing to say about those).
	for _, img := range []struct{ name, sum string }{{"scene.jpg", a.SceneSHA256}, {"enrolled-face.jpg", a.EnrolledChipSHA256}} {
		if img.sum == "" {
			continue
		}
		if b, why := src.readCrop(img.sum); why == "" {
			parts = append(parts, evidence.Part{Name: img.name, MediaType: "image/jpeg", Data: b})
		} else {
			omitted = append(omitted, evidence.Omitted{Name: img.name, Reason: strings.Replace(why, "crop", "image", 1)})
		}
	}
	if photo, ctype, why := src.readPhoto(a.EnrolledPhoto); why == "" {
		name := "enrolled.jpg"
		if ctype == "image/png" {
			name = "enrolled.png"
		}
		parts = append(parts, evidence.Part{Name: name, MediaType: ctype, Data: photo})
	} else {
		omitted = append(omitted, evidence.Omitted{Name: "enrolled photo", Reason: why})
	}
	entries, err := auditEntries(ctx, src.db.r, target)
	if err != nil {
		return nil, fmt.Errorf("exporting evidence: %w", err)
	}
	if err := add("audit.json", "application/json", entries); err != nil {
		return nil, err
	}
	var ch chainPart
	if err := src.db.r.QueryRowContext(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&ch.HeadSeq, &ch.HeadHash); err != nil {
		return nil, fmt.Errorf("exporting evidence: reading audit head: %w", err)
	}
	cps, err := audit.ReadCheckpoints(src.alog.CheckpointFile())
	if err != nil {
		return nil, fmt.Errorf("exporting evidence: %w", err)
	}
	rep, verr := audit.Verify(ctx, src.db.r, src.alog.Keys(), AuditLogName, cps)
	ch.VerifiedEntries, ch.ChainIntact = rep.Entries, verr == nil
	if verr != nil {
		ch.Error = verr.Error()
	}
	if err := add("audit-chain.json", "application/json", ch); err != nil {
		return nil, err
	}
	by := fmt.Sprintf("%s (%s, token %s)", p.Person, p.Role, p.ID)
	if strings.HasPrefix(p.ID, "os:") {
		by = fmt.Sprintf("%s (%s, local command as OS user)", p.Person, p.Role)
	}
	return evidence.Build(evidence.Manifest{Created: now.UTC(), Subject: target, Case: caseRef,
		ExportedBy: by, Omitted: omitted}, parts, key)
}

// readCrop returns the probe crop of hash sum, or why it is not there.
func (src evidenceSource) readCrop(sum string) ([]byte, string) {
	if sum == "" {
		return nil, "the hit carried no usable crop"
	}
	b, err := os.ReadFile(filepath.Join(src.crops, sum+".jpg"))
	if err != nil {
		return nil, "crop file not on disk"
	}
	if s := sha256.Sum256(b); hex.EncodeToString(s[:]) != sum {
		return nil, "crop file does not match the SHA-256 recorded with the alert"
	}
	return b, ""
}

// readPhoto returns the enrolled photo of hash sum, or why it is not
// there.
func (src evidenceSource) readPhoto(sum string) ([]byte, string, string) {
	if !sha256Format.MatchString(sum) {
		return nil, "", "no enrolled photo recorded with the alert"
	}
	if src.photoDir == "" {
		return nil, "", "no photo directory configured"
	}
	f, ctype, err := openPhoto(src.photoDir, sum)
	if err != nil {
		return nil, "", "not in the gallery any more (deleted, purged after expiry, or the person was found)"
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, "", "unreadable: " + err.Error()
	}
	if s := sha256.Sum256(b); hex.EncodeToString(s[:]) != sum {
		return nil, "", "photo file does not match the SHA-256 recorded with the alert"
	}
	return b, ctype, ""
}

// evidenceH serves GET /api/v1/alerts/{id}/evidence: the signed bundle,
// for an investigator with a case reference; the export is audited first.
func (s *Service) evidenceH(w http.ResponseWriter, r *http.Request, p principal) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	c, ok := needCase(w, r)
	if !ok {
		return
	}
	var camera, watchlist string
	err := s.db.r.QueryRowContext(r.Context(), `SELECT camera, watchlist FROM alerts WHERE id = ?`, id).Scan(&camera, &watchlist)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !s.scopeOf(p).allows(camera, watchlist)) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("alert %d not found", id)) // out of scope: as if it did not exist
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "exporting the evidence failed")
		return
	}
	key, _, err := evidence.LoadOrCreateKey(EvidenceKeyPath(s.dataDir, s.cfg))
	if err != nil {
		s.log.Error("evidence signing key unavailable", "err", err)
		writeError(w, http.StatusInternalServerError, "the evidence signing key is unavailable")
		return
	}
	src := evidenceSource{db: s.db, alog: s.alog, crops: s.crops, photoDir: s.photoDir}
	s.cropMu.RLock() // the retention sweep must not remove the crop mid-read
	b, err := src.bundle(r.Context(), key, id, c, p, "", s.now())
	s.cropMu.RUnlock()
	if errors.Is(err, ErrAlertNotFound) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("alert %d not found", id))
		return
	}
	if err != nil {
		s.log.Error("exporting evidence", "id", id, "err", err)
		writeError(w, http.StatusInternalServerError, "exporting the evidence failed")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="evidence-alert-%d.json"`, id))
	w.Write(b)
}
