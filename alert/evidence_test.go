package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/facewatch/facewatch/internal/audit"
	"github.com/facewatch/facewatch/internal/evidence"
	"github.com/facewatch/facewatch/internal/wire"
)

// TestEvidenceExport: an investigator's bundle of one alert verifies
// offline with the site's public key and carries the very crop and
// enrolled photo on disk, the decision, the model, the alert's audit
// entries (this export included, written first) and the chain head; the
// route wants a case reference and the investigator role; a purged
// enrolled photo is named as omitted, not silently missing.
func TestEvidenceExport(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	photos := filepath.Join(dir, "gallery-photos")
	s := openService(t, dir, Options{PhotoDir: photos})
	h, crop := makeHit(1, time.Now())
	photo := fakeJPEG(1000)
	h.EnrolledPhoto = sha(photo)
	photoPath := filepath.Join(photos, h.EnrolledPhoto[:2], h.EnrolledPhoto+".jpg")
	if err := os.MkdirAll(filepath.Dir(photoPath), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(photoPath, photo, 0o600); err != nil {
		t.Fatal(err)
	}
	scene, chip := testJPEG(t, 64, 36), testJPEG(t, 15, 15)
	if _, err := s.StoreImages(ctx, h, wire.HitImages{Crop: crop, Scene: scene, EnrolledChip: chip}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	inv := mustToken(t, s, RoleInvestigator, "ivy", time.Hour)
	op := mustToken(t, s, RoleOperator, "otto", time.Hour)
	pub, err := EvidencePublicKey(dir, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(EvidenceKeyPath(dir, testConfig())); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("signing key file: %v, %v; want mode 0600", st, err)
	}

	for _, c := range []struct {
		name, path, tok string
		want            int
	}{
		{"no case", "/api/v1/alerts/1/evidence", inv, http.StatusBadRequest},
		{"operator", "/api/v1/alerts/1/evidence?case=2026/0147", op, http.StatusForbidden},
		{"unknown alert", "/api/v1/alerts/99/evidence?case=2026/0147", inv, http.StatusNotFound},
	} {
		t.Run(c.name, func(t *testing.T) {
			if resp, body := do(t, srv, "GET", c.path, c.tok, nil); resp.StatusCode != c.want {
				t.Errorf("GET %s = %d %s, want %d", c.path, resp.StatusCode, body, c.want)
			}
		})
	}

	resp, body := do(t, srv, "GET", "/api/v1/alerts/1/evidence?case=2026/0147", inv, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Disposition"), "evidence-alert-1.json") {
		t.Fatalf("GET evidence = %d %s, want 200 with an attachment", resp.StatusCode, body)
	}
	r, err := evidence.Verify(body, pub)
	if err != nil || !r.OK() {
		t.Fatalf("Verify(bundle, site key) = %+v, %v; want intact", r, err)
	}
	if r.Manifest.Subject != "alert/1" || r.Manifest.Case != "2026/0147" || !strings.Contains(r.Manifest.ExportedBy, "ivy") {
		t.Errorf("manifest = %+v, want subject alert/1, case 2026/0147, exported by ivy", r.Manifest)
	}
	if string(r.Parts["probe.jpg"]) != string(crop) || string(r.Parts["enrolled.jpg"]) != string(photo) {
		t.Errorf("bundle images: probe %q, enrolled %q; want the stored crop and photo", r.Parts["probe.jpg"], r.Parts["enrolled.jpg"])
	}
	if !bytes.Equal(r.Parts["scene.jpg"], scene) || !bytes.Equal(r.Parts["enrolled-face.jpg"], chip) {
		t.Errorf("bundle scene %d bytes, enrolled face %d bytes; want the stored %d and %d", len(r.Parts["scene.jpg"]), len(r.Parts["enrolled-face.jpg"]), len(scene), len(chip))
	}
	var dec decisionPart
	var model struct{ Name, SHA256 string }
	json.Unmarshal(r.Parts["decision.json"], &dec)
	json.Unmarshal(r.Parts["model.json"], &model)
	if dec.Distance != h.Distance || dec.Threshold != h.Threshold || dec.Identity != h.Identity || model.Name != h.Model.Name || model.SHA256 != h.Model.SHA256 {
		t.Errorf("decision %+v, model %+v; want distance %g, threshold %g, identity %s, model %s", dec, model, h.Distance, h.Threshold, h.Identity, h.Model.Name)
	}
	var entries []AuditEntry
	var chain chainPart
	json.Unmarshal(r.Parts["audit.json"], &entries)
	json.Unmarshal(r.Parts["audit-chain.json"], &chain)
	last := entries[len(entries)-1]
	if last.Action != "evidence_export" || last.Case != "2026/0147" || last.ActorName != "ivy" || last.Target != "alert/1" {
		t.Errorf("last audit entry in the bundle = %+v, want ivy's evidence_export of alert/1", last)
	}
	var seq int64
	var head string
	if err := s.db.r.QueryRowContext(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&seq, &head); err != nil {
		t.Fatal(err)
	}
	if chain.HeadSeq != last.Seq || chain.HeadHash != last.Hash || !chain.ChainIntact || seq != last.Seq || head != last.Hash {
		t.Errorf("audit-chain.json = %+v, database head %d %s; want the export entry %d as head, chain intact", chain, seq, head, last.Seq)
	}

	// The enrolled photo purged from the gallery: the bundle says so.
	if err := os.Remove(photoPath); err != nil {
		t.Fatal(err)
	}
	_, body = do(t, srv, "GET", "/api/v1/alerts/1/evidence?case=2026/0147", inv, nil)
	r, err = evidence.Verify(body, pub)
	if err != nil || !r.OK() || r.Parts["enrolled.jpg"] != nil || len(r.Manifest.Omitted) != 1 ||
		!strings.Contains(r.Manifest.Omitted[0].Reason, "not in the gallery any more") {
		t.Errorf("bundle after the photo was purged = %+v, %v; want intact, the photo omitted with the reason", r, err)
	}
	// The package-level export (the command) gives a bundle under the same key.
	b, err := ExportEvidence(ctx, Local{DataDir: dir, Actor: audit.Actor{ID: "os:ivy", Name: "ivy", Role: "local"}}, testConfig(), photos, 1, "2026/0147")
	if err != nil {
		t.Fatal(err)
	}
	if r, err := evidence.Verify(b, pub); err != nil || !r.OK() {
		t.Errorf("ExportEvidence() bundle = %+v, %v; want intact under the site key", r, err)
	}
	if _, err := ExportEvidence(ctx, Local{DataDir: dir, Actor: audit.Actor{ID: "os:ivy", Name: "ivy", Role: "local"}}, testConfig(), photos, 1, ""); err == nil {
		t.Error("ExportEvidence(no case) = nil error")
	}
}
