package match

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestGalleryMigrations(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	g, err := OpenGallery(ctx, dir, GalleryOptions{})
	if err != nil {
		t.Fatalf("OpenGallery() = %v", err)
	}
	var v int
	if err := g.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != len(migrations) {
		t.Errorf("user_version = %d, want %d", v, len(migrations))
	}
	var mode string
	if err := g.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q (%v), want wal", mode, err)
	}
	var sync int
	if err := g.db.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil || sync != 2 {
		t.Errorf("synchronous = %d (%v), want 2 (FULL)", sync, err)
	}
	mustList(t, g, "kept")
	// A database from a newer facewatch is refused, not damaged.
	if _, err := g.db.ExecContext(ctx, "PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	g.Close()
	if _, err := OpenGallery(ctx, dir, GalleryOptions{}); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("OpenGallery(version 99) = %v, want an error saying the schema is newer", err)
	}
	// Put the version back and reopen: the data is still there.
	g = openRaw(t, dir)
	if _, err := g.db.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations))); err != nil {
		t.Fatal(err)
	}
	g.Close()
	g = openGallery(t, dir)
	if _, err := g.Watchlist(ctx, "kept"); err != nil {
		t.Errorf("Watchlist(kept) after reopening = %v", err)
	}
}

// openRaw opens the database without migrating, to repair a test's damage.
func openRaw(t *testing.T, dir string) *Gallery {
	t.Helper()
	db, err := sqlOpen(filepath.Join(dir, GalleryFile))
	if err != nil {
		t.Fatal(err)
	}
	return &Gallery{db: db}
}

func TestWatchlistBadInput(t *testing.T) {
	ctx := context.Background()
	g := openGallery(t, "")
	ok := WatchlistSpec{Name: "missing-children", Kind: KindMissing, Owner: "curator", LegalBasis: "court order 12/2026"}
	with := func(f func(*WatchlistSpec)) WatchlistSpec { s := ok; f(&s); return s }
	tests := []struct {
		name    string
		spec    WatchlistSpec
		wantErr error
	}{
		{"valid", ok, nil},
		{"unicode name", with(func(s *WatchlistSpec) { s.Name = "vermißte-行方不明" }), nil},
		{"same name again", ok, ErrExists},
		{"empty name", with(func(s *WatchlistSpec) { s.Name = "" }), ErrInvalid},
		{"blank name", with(func(s *WatchlistSpec) { s.Name = "   " }), ErrInvalid},
		{"10000-character name", with(func(s *WatchlistSpec) { s.Name = strings.Repeat("x", 10000) }), ErrInvalid},
		{"dot in name", with(func(s *WatchlistSpec) { s.Name = "a.b" }), ErrInvalid},
		{"control character", with(func(s *WatchlistSpec) { s.Name = "a\x00b" }), ErrInvalid},
		{"invalid utf-8", with(func(s *WatchlistSpec) { s.Name = "a\xffb" }), ErrInvalid},
		{"unknown kind", with(func(s *WatchlistSpec) { s.Name = "k"; s.Kind = "suspicious" }), ErrInvalid},
		{"no legal basis", with(func(s *WatchlistSpec) { s.Name = "l"; s.LegalBasis = "" }), ErrInvalid},
		{"no owner", with(func(s *WatchlistSpec) { s.Name = "o"; s.Owner = "" }), ErrInvalid},
		{"threshold too high", with(func(s *WatchlistSpec) { s.Name = "t"; s.Threshold = 3 }), ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, err := g.CreateWatchlist(ctx, tc.spec)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("CreateWatchlist(%.40q) = %v, want %v", tc.spec.Name, err, tc.wantErr)
			}
			if err != nil {
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error %q spans several lines", err)
				}
				return
			}
			got, err := g.Watchlist(ctx, tc.spec.Name)
			if err != nil || got.Name != tc.spec.Name || got.ID != w.ID || got.Version == 0 {
				t.Errorf("Watchlist(%q) = %+v, %v; want the created list", tc.spec.Name, got, err)
			}
		})
	}
	lists, err := g.Watchlists(ctx)
	if err != nil || len(lists) != 2 {
		t.Errorf("Watchlists() = %d lists, %v; want 2", len(lists), err)
	}
}

func TestIdentityNames(t *testing.T) {
	ctx := context.Background()
	g := openGallery(t, "")
	mustList(t, g, "l")
	tests := []struct {
		name    string
		in      string
		wantErr error
	}{
		{"ascii", "John Smith", nil},
		{"unicode", "Zoë Ōkubo-Ślązak 王小明", nil},
		{"emoji", "🙂 person", nil},
		{"empty", "", ErrInvalid},
		{"10000 characters", strings.Repeat("é", 10000), ErrInvalid},
		{"newline", "a\nb", ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, created, err := g.EnsureIdentity(ctx, "l", IdentitySpec{Name: tc.in})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("EnsureIdentity(%.20q) = %v, want %v", tc.in, err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if !created || id.Name != tc.in {
				t.Errorf("EnsureIdentity(%q) = %+v created=%v, want a new identity of that name", tc.in, id, created)
			}
			again, created, err := g.EnsureIdentity(ctx, "l", IdentitySpec{Name: tc.in})
			if err != nil || created || again.ID != id.ID {
				t.Errorf("EnsureIdentity(%q) again = %d created=%v %v, want %d not created", tc.in, again.ID, created, err, id.ID)
			}
		})
	}
	if _, _, err := g.EnsureIdentity(ctx, "no-such-list", IdentitySpec{Name: "x"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("EnsureIdentity(no-such-list) = %v, want ErrNotFound", err)
	}
}

func TestEnrolmentBadInput(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	clock := now
	g, err := OpenGallery(ctx, t.TempDir(), GalleryOptions{Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := g.IntegrityCheck(ctx); err != nil {
			t.Errorf("IntegrityCheck() = %v", err)
		}
		g.Close()
	}()
	rng := rand.New(rand.NewPCG(1, 2))
	mustList(t, g, "a")
	mustList(t, g, "b")
	alice := mustIdentity(t, g, "a", "alice")
	bob := mustIdentity(t, g, "a", "bob")
	aliceB := mustIdentity(t, g, "b", "alice")
	v := randVec(rng)
	first := mustEnrol(t, g, alice.ID, v, "p1")

	nan := v
	nan[5] = float32(math.NaN())
	inf := v
	inf[0] = float32(math.Inf(-1))
	other := testModel
	other.SHA256 = strings.Repeat("cd", 32)
	base := NewEnrolment{IdentityID: alice.ID, Photo: fakePhoto("p2"), PhotoExt: ".jpg", ChipPNG: []byte("c"), Vector: randVec(rng), Model: testModel, Quality: 1, EnrolledBy: "curator"}
	with := func(f func(*NewEnrolment)) NewEnrolment { n := base; f(&n); return n }
	tests := []struct {
		name        string
		in          NewEnrolment
		wantErr     error
		wantCreated bool
	}{
		{"NaN descriptor", with(func(n *NewEnrolment) { n.Vector = nan }), ErrInvalid, false},
		{"Inf descriptor", with(func(n *NewEnrolment) { n.Vector = inf }), ErrInvalid, false},
		{"zero descriptor", with(func(n *NewEnrolment) { n.Vector = Vector{} }), ErrInvalid, false},
		{"other model", with(func(n *NewEnrolment) { n.Model = other }), ErrModelMismatch, false},
		{"no model", with(func(n *NewEnrolment) { n.Model = ModelID{} }), ErrInvalid, false},
		{"empty photo", with(func(n *NewEnrolment) { n.Photo = nil }), ErrInvalid, false},
		{"unknown identity", with(func(n *NewEnrolment) { n.IdentityID = 999 }), ErrNotFound, false},
		{"same photo, same identity", with(func(n *NewEnrolment) { n.Photo = fakePhoto("p1") }), nil, false},
		{"same photo, other identity on the list", with(func(n *NewEnrolment) { n.Photo = fakePhoto("p1"); n.IdentityID = bob.ID }), ErrExists, false},
		{"same photo, identity on another list", with(func(n *NewEnrolment) { n.Photo = fakePhoto("p1"); n.IdentityID = aliceB.ID }), nil, true},
		{"new photo", base, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := g.Pending(ctx)
			e, created, err := g.AddEnrolment(ctx, tc.in)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("AddEnrolment() = %v, want %v", err, tc.wantErr)
			}
			if created != tc.wantCreated {
				t.Errorf("AddEnrolment() created = %v, want %v", created, tc.wantCreated)
			}
			after, _ := g.Pending(ctx)
			if wantEvents := map[bool]int{true: 1, false: 0}[created]; after-before != wantEvents {
				t.Errorf("AddEnrolment() added %d events, want %d", after-before, wantEvents)
			}
			if tc.name == "same photo, same identity" && e.ID != first.ID {
				t.Errorf("AddEnrolment(same photo) = enrolment %d, want the existing %d", e.ID, first.ID)
			}
		})
	}
	es, err := g.Enrolments(ctx, alice.ID)
	if err != nil || len(es) != 2 || es[0].Vector != v {
		t.Errorf("Enrolments(alice) = %d (%v), want 2 with the first descriptor intact", len(es), err)
	}

	// An expired list refuses new identities and enrolments.
	if _, err := g.ExpireWatchlist(ctx, "a", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	clock = now.Add(2 * time.Hour)
	if _, _, err := g.EnsureIdentity(ctx, "a", IdentitySpec{Name: "carol"}); !errors.Is(err, ErrExpired) {
		t.Errorf("EnsureIdentity(expired list) = %v, want ErrExpired", err)
	}
	if _, _, err := g.AddEnrolment(ctx, with(func(n *NewEnrolment) { n.Photo = fakePhoto("p9") })); !errors.Is(err, ErrExpired) {
		t.Errorf("AddEnrolment(expired list) = %v, want ErrExpired", err)
	}
}

func TestDeleteRemovesDescriptorsAndPhotos(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	g := openGallery(t, dir)
	rng := rand.New(rand.NewPCG(3, 4))
	mustList(t, g, "a")
	mustList(t, g, "b")
	alice := mustIdentity(t, g, "a", "alice")
	aliceB := mustIdentity(t, g, "b", "alice")
	bob := mustIdentity(t, g, "b", "bob")
	shared := mustEnrol(t, g, alice.ID, randVec(rng), "shared")
	mustEnrol(t, g, aliceB.ID, randVec(rng), "shared")
	own := mustEnrol(t, g, alice.ID, randVec(rng), "own")
	mustEnrol(t, g, bob.ID, randVec(rng), "bob")
	photo := func(e Enrolment) string { return g.PhotoPath(&e, ".jpg") }
	for _, e := range []Enrolment{shared, own} {
		if _, err := os.Stat(photo(e)); err != nil {
			t.Fatalf("photo of enrolment %d: %v", e.ID, err)
		}
	}
	if err := g.DeleteIdentity(ctx, alice.ID); err != nil {
		t.Fatalf("DeleteIdentity(alice) = %v", err)
	}
	if _, err := os.Stat(photo(own)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("photo only alice used: stat = %v, want it removed", err)
	}
	if _, err := os.Stat(photo(shared)); err != nil {
		t.Errorf("photo still used on list b: stat = %v, want it kept", err)
	}
	var n int
	g.db.QueryRowContext(ctx, "SELECT count(*) FROM enrolments WHERE identity_id = ?", alice.ID).Scan(&n)
	if n != 0 {
		t.Errorf("enrolments of deleted identity = %d, want 0", n)
	}
	if err := g.DeleteIdentity(ctx, alice.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeleteIdentity(again) = %v, want ErrNotFound", err)
	}
	if err := g.DeleteWatchlist(ctx, "b"); err != nil {
		t.Fatalf("DeleteWatchlist(b) = %v", err)
	}
	g.db.QueryRowContext(ctx, "SELECT count(*) FROM enrolments").Scan(&n)
	if n != 0 {
		t.Errorf("enrolments after deleting every list = %d, want 0", n)
	}
	left, _ := filepath.Glob(filepath.Join(dir, photoDir, "*", "*"))
	if len(left) != 0 {
		t.Errorf("photo files after deleting every list = %v, want none", left)
	}
	if _, err := g.Identities(ctx, "b"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Identities(deleted list) = %v, want ErrNotFound", err)
	}
}
