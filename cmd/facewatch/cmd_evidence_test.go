package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/facewatch/facewatch/alert"
	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/evidence"
	"github.com/facewatch/facewatch/internal/wire"
	"github.com/facewatch/facewatch/match"
)

// tamper rewrites a bundle file with f applied to its decoded parts.
func tamper(t *testing.T, src, dst string, f func(b *evidence.Bundle)) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var b evidence.Bundle
	if err := json.Unmarshal(data, &b); err != nil {
		t.Fatal(err)
	}
	f(&b)
	out, _ := json.MarshalIndent(b, "", "  ")
	if err := os.WriteFile(dst, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

func flipByte(enc string, at int) string {
	d, _ := base64.StdEncoding.DecodeString(enc)
	d[at%len(d)] ^= 0x01
	return base64.StdEncoding.EncodeToString(d)
}

// TestEvidenceCommands: export writes a bundle (mode 0600, never over an
// existing file) holding the alert's crop and the gallery's enrolled
// photo; verify with the exported public key passes it and fails, naming
// the part or the signature, a copy altered in one byte of the image, of
// the alert JSON or of the signature, and one checked against another
// site's key.
func TestEvidenceCommands(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "facewatch.yaml")
	if err := os.WriteFile(cfgPath, []byte("data_dir: data\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(dir, "data")
	// The enrolled photo lives in the gallery, as in a real deployment.
	g, err := match.OpenGallery(ctx, dataDir, match.GalleryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, err := g.CreateWatchlist(ctx, match.WatchlistSpec{Name: "missing", Kind: match.KindMissing, Owner: "c", LegalBasis: "order 1"}); err != nil {
		t.Fatal(err)
	}
	id, _, err := g.EnsureIdentity(ctx, "missing", match.IdentitySpec{Name: "Jane Doe"})
	if err != nil {
		t.Fatal(err)
	}
	photo := append([]byte{0xFF, 0xD8, 0xFF, 0xE0}, bytes.Repeat([]byte("enrolled photo "), 20)...)
	if _, _, err := g.AddEnrolment(ctx, match.NewEnrolment{IdentityID: id.ID, Photo: photo, PhotoExt: ".jpg", ChipPNG: []byte("chip"),
		Vector: synthVec(rand.New(rand.NewPCG(1, 2))), Model: lifecycleModel, Quality: 0.9, EnrolledBy: "c"}); err != nil {
		t.Fatal(err)
	}
	svc, err := alert.Open(ctx, dataDir, config.Defaults().Alert, alert.Options{Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	crop := append([]byte{0xFF, 0xD8, 0xFF, 0xE0}, bytes.Repeat([]byte("probe crop "), 30)...)
	h := wire.Hit{Version: wire.Version, Camera: "gate-1", Track: 9, Time: time.Now(), Watchlist: "missing", WatchlistKind: "missing",
		Identity: "p-17", IdentityName: "Jane Doe", Distance: 0.41, Threshold: 0.5, SecondDistance: 0.8,
		Model: wire.Model{Name: "resnet", SHA256: strings.Repeat("0", 64)}, EnrolledPhoto: match.PhotoHash(photo), CropLen: len(crop)}
	h.ID = wire.HitID(h.Camera, h.Track, h.Identity)
	if _, err := svc.Store(ctx, h, crop); err != nil {
		t.Fatal(err)
	}
	svc.Close()

	bundle := filepath.Join(dir, "b.json")
	code, out, errOut := run(t, "evidence", "export", "--config", cfgPath, "--alert", "1", "--case", "2026/0147", "--by", "ivy", "--out", bundle)
	if code != 0 || !strings.Contains(out, "written to "+bundle) || strings.Contains(out, "omitted") {
		t.Fatalf("evidence export = exit %d, %q, %q; want the bundle written with nothing omitted", code, out, errOut)
	}
	if st, err := os.Stat(bundle); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("bundle file: %v, %v; want mode 0600", st, err)
	}
	if code, _, errOut := run(t, "evidence", "export", "--config", cfgPath, "--alert", "1", "--case", "2026/0147", "--out", bundle); code != 1 || !strings.Contains(errOut, "exists") {
		t.Errorf("evidence export over an existing file = exit %d, %q; want 1, refused", code, errOut)
	}
	pem := filepath.Join(dir, "site.pem")
	if code, _, errOut := run(t, "evidence", "pubkey", "--config", cfgPath, "--out", pem); code != 0 {
		t.Fatalf("evidence pubkey = exit %d, %q", code, errOut)
	}
	data, _ := os.ReadFile(bundle)
	r, err := evidence.Verify(data, nil)
	if err != nil || !bytes.Equal(r.Parts["probe.jpg"], crop) || !bytes.Equal(r.Parts["enrolled.jpg"], photo) {
		t.Fatalf("bundle parts: probe %d bytes, enrolled %d bytes (%v); want the stored crop and the gallery's photo", len(r.Parts["probe.jpg"]), len(r.Parts["enrolled.jpg"]), err)
	}

	otherKey := filepath.Join(dir, "other", "k.pem")
	k, _, err := evidence.LoadOrCreateKey(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	otherPEM := filepath.Join(dir, "other.pem")
	os.WriteFile(otherPEM, evidence.PublicKeyPEM(k.Public().(ed25519.PublicKey)), 0o644)
	variant := func(name string, f func(b *evidence.Bundle)) string {
		p := filepath.Join(dir, name+".json")
		tamper(t, bundle, p, f)
		return p
	}
	tests := []struct {
		name, file, pubkey string
		code               int
		want               []string // in stderr
	}{
		{"untouched", bundle, pem, 0, nil},
		{"untouched, own key only", bundle, "", 0, nil},
		{"image byte", variant("image", func(b *evidence.Bundle) { b.Parts["probe.jpg"] = flipByte(b.Parts["probe.jpg"], 200) }), pem, 1, []string{"part probe.jpg"}},
		{"enrolled photo byte", variant("photo", func(b *evidence.Bundle) { b.Parts["enrolled.jpg"] = flipByte(b.Parts["enrolled.jpg"], 50) }), pem, 1, []string{"part enrolled.jpg"}},
		{"alert JSON byte", variant("json", func(b *evidence.Bundle) { b.Parts["alert.json"] = flipByte(b.Parts["alert.json"], 30) }), pem, 1, []string{"part alert.json"}},
		{"signature byte", variant("sig", func(b *evidence.Bundle) { b.Signature = flipByte(b.Signature, 5) }), pem, 1, []string{"signature: does not verify"}},
		{"wrong public key", bundle, otherPEM, 1, []string{"public key:", "signature: does not verify"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"evidence", "verify", tc.file}
			if tc.pubkey != "" {
				args = append(args, "--pubkey", tc.pubkey)
			}
			code, out, errOut := run(t, args...)
			if code != tc.code {
				t.Fatalf("facewatch %q = exit %d, stdout %q, stderr %q; want %d", args, code, out, errOut, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) || !strings.Contains(out, "PROBLEM: "+w) {
					t.Errorf("facewatch %q: stderr %q, stdout %q; want both to name %q", args, errOut, out, w)
				}
			}
			if tc.code == 0 && tc.pubkey != "" && !strings.Contains(out, "verified: signature by key") {
				t.Errorf("facewatch %q stdout %q, want verified", args, out)
			}
			if tc.code == 1 && strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Errorf("facewatch %q stderr %q, want one line", args, errOut)
			}
		})
	}
	for _, bad := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"evidence", "export", "--config", cfgPath, "--alert", "1"}, 2, "--case"},
		{[]string{"evidence", "export", "--config", cfgPath, "--alert", "77", "--case", "2026/0147", "--out", filepath.Join(dir, "x.json")}, 1, "alert not found"},
		{[]string{"evidence", "verify", cfgPath}, 1, "not an evidence bundle"},
		{[]string{"evidence", "sign"}, 2, "unknown verb"},
	} {
		if code, _, errOut := run(t, bad.args...); code != bad.code || !strings.Contains(errOut, bad.want) {
			t.Errorf("facewatch %q = exit %d, %q; want %d mentioning %q", bad.args, code, errOut, bad.code, bad.want)
		}
	}
	// Every export is in the audit log, by the OS user (--by only adds a
	// note) and for which case.
	es, err := alert.AuditEntries(ctx, alert.DBPath(dataDir), "alert/1")
	if err != nil || len(es) == 0 || es[len(es)-1].Action != "evidence_export" || es[0].ActorName != osUser(t) ||
		!strings.Contains(es[0].Detail, `"note":"ivy"`) || es[0].Case != "2026/0147" {
		t.Errorf("audit of alert/1 = %+v, %v; want the OS user's evidence_export for case 2026/0147 with note ivy", es, err)
	}
}
