package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/facewatch/facewatch/alert"
	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/match"
)

var lifecycleModel = match.ModelID{Name: "dlib_face_recognition_resnet_model_v1.dat", SHA256: strings.Repeat("ab", 32)}

// synthVec is a synthetic descriptor spread like dlib's (two of them are
// about 0.9 apart): the gallery and matcher work on descriptors alone.
func synthVec(rng *rand.Rand) match.Vector {
	var v match.Vector
	for i := range v {
		v[i] = float32(rng.NormFloat64() * 0.9 / math.Sqrt(2*match.Dim))
	}
	return v
}

// enrolSynthetic adds one identity with one synthetic descriptor and a
// stand-in photo file, and returns the identity, its vector and the
// photo's path.
func enrolSynthetic(t *testing.T, g *match.Gallery, rng *rand.Rand, list string, spec match.IdentitySpec) (match.Identity, match.Vector, string) {
	t.Helper()
	ctx := context.Background()
	id, _, err := g.EnsureIdentity(ctx, list, spec)
	if err != nil {
		t.Fatal(err)
	}
	v := synthVec(rng)
	e, _, err := g.AddEnrolment(ctx, match.NewEnrolment{IdentityID: id.ID, Photo: []byte("photo of " + spec.Name), PhotoExt: ".jpg",
		ChipPNG: []byte("chip"), Vector: v, Model: lifecycleModel, Quality: 0.9, EnrolledBy: "curator"})
	if err != nil {
		t.Fatal(err)
	}
	return id, v, g.PhotoPath(&e, ".jpg")
}

// auditOf returns the audit entries of target in dataDir's gallery
// database (the gallery's own audit log; its schema is the alert log's).
func auditOf(t *testing.T, dataDir, target string) []alert.AuditEntry {
	t.Helper()
	es, err := alert.AuditEntries(context.Background(), filepath.Join(dataDir, match.GalleryFile), target)
	if err != nil {
		t.Fatalf("AuditEntries(%s) = %v", target, err)
	}
	return es
}

// TestGalleryPurgeCommand: `gallery purge` removes what expired at least
// the grace period ago (photo file, rows) and nothing younger, writes one
// audit entry per purge without descriptor data, and keeps a record that
// `gallery purges` lists.
func TestGalleryPurgeCommand(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "facewatch.yaml")
	if err := os.WriteFile(cfg, []byte("data_dir: data\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(dir, "data")
	g, err := match.OpenGallery(ctx, dataDir, match.GalleryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, err := g.CreateWatchlist(ctx, match.WatchlistSpec{Name: "missing", Kind: match.KindMissing, Owner: "c", LegalBasis: "order 1"}); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	now := time.Now()
	type entry struct {
		name    string
		expires time.Time
		purged  bool
		id      match.Identity
		vec     match.Vector
		photo   string
	}
	entries := []*entry{
		{name: "ann", expires: now.Add(-2 * time.Hour), purged: true}, // past a 1h grace
		{name: "cat", expires: now.Add(-10 * time.Minute)},            // expired, within grace
		{name: "bob"}, // never expires
	}
	for _, e := range entries {
		e.id, e.vec, e.photo = enrolSynthetic(t, g, rng, "missing", match.IdentitySpec{Name: e.name})
		if !e.expires.IsZero() {
			if _, err := g.ExpireIdentity(ctx, e.id.ID, e.expires); err != nil {
				t.Fatal(err)
			}
		}
	}

	code, out, errOut := run(t, "gallery", "purge", "--config", cfg, "--grace", "1h", "--by", "ana")
	if code != 0 || !strings.Contains(out, `expired: identity "ann" of "missing" by `+osUser(t)) || strings.Contains(out, "cat") {
		t.Fatalf("gallery purge --grace 1h = exit %d, stdout %q, stderr %q; want ann purged by ana, not cat", code, out, errOut)
	}
	for _, e := range entries {
		_, statErr := os.Stat(e.photo)
		_, idErr := g.Identity(ctx, e.id.ID)
		entriesOf := auditOf(t, dataDir, "identity/"+strconv.FormatInt(e.id.ID, 10))
		if e.purged {
			if !errors.Is(statErr, os.ErrNotExist) || !errors.Is(idErr, match.ErrNotFound) {
				t.Errorf("%s after purge: photo %v, identity %v; want both gone", e.name, statErr, idErr)
			}
			if len(entriesOf) != 1 || entriesOf[0].Action != "gallery_purge_expired" || entriesOf[0].ActorName != osUser(t) ||
				!strings.Contains(entriesOf[0].Detail, `"identity":"ann"`) || !strings.Contains(entriesOf[0].Detail, `"note":"ana"`) {
				t.Errorf("audit of %s = %+v, want one gallery_purge_expired entry by ana naming ann", e.name, entriesOf)
			}
			b64 := base64.StdEncoding.EncodeToString(match.EncodeVector(&e.vec))
			for _, a := range entriesOf {
				if strings.Contains(a.Detail, b64[:40]) {
					t.Errorf("audit entry %d carries %s's descriptor", a.Seq, e.name)
				}
			}
		} else if statErr != nil || idErr != nil || len(entriesOf) != 0 {
			t.Errorf("%s (within grace or not expiring): photo %v, identity %v, audit %+v; want kept, not audited", e.name, statErr, idErr, entriesOf)
		}
	}
	if code, out, errOut := run(t, "audit", "verify", "--config", cfg); code != 0 {
		t.Errorf("audit verify after purge = exit %d, %q, %q; want 0", code, out, errOut)
	}
	// With the configured grace (720h) nothing more is due.
	if code, out, _ := run(t, "gallery", "purge", "--config", cfg); code != 0 || !strings.Contains(out, "nothing expired 720h0m0s ago") {
		t.Errorf("gallery purge (grace 720h) = exit %d, %q; want nothing purged", code, out)
	}
	code, out, _ = run(t, "gallery", "purges", "--config", cfg, "--json")
	var ps []match.Purge
	if err := json.Unmarshal([]byte(out), &ps); code != 0 || err != nil || len(ps) != 1 || ps[0].Identity != "ann" || !ps[0].Audited {
		t.Errorf("gallery purges --json = exit %d, %q (%v); want one audited record of ann", code, out, err)
	}
	for _, bad := range [][]string{
		{"gallery"},
		{"gallery", "scrub", "--config", cfg},
		{"gallery", "purge", "--config", cfg, "extra"},
	} {
		if code, _, _ := run(t, bad...); code != 2 {
			t.Errorf("facewatch %q = exit %d, want 2", bad, code)
		}
	}
	if code, _, errOut := run(t, "gallery", "purge", "--config", cfg, "--grace", "-1h"); code != 1 || !strings.Contains(errOut, "negative") {
		t.Errorf("gallery purge --grace -1h = exit %d, %q; want 1, refused as negative", code, errOut)
	}
}

// TestWatchlistFoundCommand: with a matcher following a real nats-server,
// `watchlist found` ends the person's matching within a second (the
// command publishes the delete), purges the photo, and writes an audit
// entry naming who, which identity and why.
func TestWatchlistFoundCommand(t *testing.T) {
	ctx := context.Background()
	ns := startJetStream(t, t.TempDir())
	dir := t.TempDir()
	cfg := filepath.Join(dir, "facewatch.yaml")
	if err := os.WriteFile(cfg, []byte("data_dir: data\nnats:\n  url: "+ns.ClientURL()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(dir, "data")
	g, err := match.OpenGallery(ctx, dataDir, match.GalleryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for _, l := range []match.WatchlistSpec{
		{Name: "missing", Kind: match.KindMissing, Owner: "c", LegalBasis: "order 1"},
		{Name: "wanted", Kind: match.KindWanted, Owner: "c", LegalBasis: "warrant 2"},
	} {
		if _, err := g.CreateWatchlist(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	amy, vAmy, amyPhoto := enrolSynthetic(t, g, rng, "missing", match.IdentitySpec{Name: "amy", ExternalRef: "MP-7"})
	enrolSynthetic(t, g, rng, "wanted", match.IdentitySpec{Name: "wes"})

	// The matcher: its own gallery handle and NATS connection.
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	mg, err := match.OpenGallery(ctx, dataDir, match.GalleryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer mg.Close()
	idx := match.NewIndex(config.Defaults().Match, match.IndexOptions{Gallery: mg, JetStream: js})
	mctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); idx.Run(mctx) }()
	defer func() { stop(); wg.Wait() }()
	select {
	case <-idx.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("matcher not ready")
	}
	name := func() string {
		d, err := idx.DecideTrack([]match.Probe{{Vector: vAmy, Model: lifecycleModel, Quality: 1}}, match.SearchOptions{})
		if err != nil {
			t.Fatalf("DecideTrack() = %v", err)
		}
		return d.Identity
	}
	if got := name(); got != "amy" {
		t.Fatalf("matcher before found: name(amy) = %q, want amy", got)
	}

	for _, bad := range []struct {
		args []string
		code int
	}{
		{[]string{"watchlist", "found", "--config", cfg, "--identity", "amy", "missing"}, 2},                         // no reason
		{[]string{"watchlist", "found", "--config", cfg, "--identity", "wes", "--reason", "arrested", "wanted"}, 1},  // not missing
		{[]string{"watchlist", "found", "--config", cfg, "--identity", "nobody", "--reason", "found", "missing"}, 1}, // unknown
	} {
		if code, _, errOut := run(t, bad.args...); code != bad.code {
			t.Errorf("facewatch %q = exit %d (%s), want %d", bad.args, code, errOut, bad.code)
		}
	}
	if got := name(); got != "amy" {
		t.Fatalf("matcher after refused calls: name(amy) = %q, want amy", got)
	}

	start := time.Now()
	code, out, errOut := run(t, "watchlist", "found", "--config", cfg, "--identity", "amy", "--reason", "found alive in Lyon, case 2026/0147", "--by", "ana", "missing")
	if code != 0 || !strings.Contains(out, `identity "amy" of "missing" marked found`) {
		t.Fatalf("watchlist found = exit %d, %q, %q", code, out, errOut)
	}
	for name() != "" {
		if time.Since(start) > time.Second {
			t.Fatal("matcher still names amy 1s after `watchlist found`")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("watchlist found -> no match in %v", time.Since(start))
	if _, err := os.Stat(amyPhoto); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("amy's photo after found: %v, want gone", err)
	}
	es := auditOf(t, dataDir, "identity/"+strconv.FormatInt(amy.ID, 10))
	if len(es) != 1 || es[0].Action != "gallery_found" || es[0].ActorName != osUser(t) || es[0].Role != "local" || !strings.Contains(es[0].Detail, `"note":"ana"`) ||
		!strings.Contains(es[0].Detail, `"reason":"found alive in Lyon, case 2026/0147"`) || !strings.Contains(es[0].Detail, `"external_ref":"MP-7"`) {
		t.Errorf("audit of amy = %+v, want one gallery_found entry by ana with the reason and reference", es)
	}
	if n, err := g.Pending(ctx); err != nil || n != 0 {
		t.Errorf("gallery events unpublished after found = %d, %v; want 0", n, err)
	}
}

// osUser is the OS user local commands are audited as.
func osUser(t *testing.T) string {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return u.Username
}
