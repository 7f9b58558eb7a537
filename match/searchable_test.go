package match

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// TestCheckSearchable checks the rules a search of watchlists must pass:
// named lists exist, are active and hold enrolments, and the gallery is
// not empty.
func TestCheckSearchable(t *testing.T) {
	ctx := context.Background()
	g := openGallery(t, "")
	now := time.Now()
	if err := g.CheckSearchable(ctx, nil, now); !errors.Is(err, ErrEmpty) || !strings.Contains(err.Error(), "gallery is empty") {
		t.Errorf("CheckSearchable(empty gallery) = %v, want the gallery is empty", err)
	}
	mustList(t, g, "full")
	mustList(t, g, "none")
	mustList(t, g, "old")
	rng := rand.New(rand.NewPCG(5, 6))
	for _, l := range []string{"full", "old"} {
		id := mustIdentity(t, g, l, "someone")
		mustEnrol(t, g, id.ID, randVec(rng), l)
	}
	if _, err := g.ExpireWatchlist(ctx, "old", now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		lists   []string
		wantErr error
		want    string
	}{
		{nil, nil, ""},
		{[]string{"full"}, nil, ""},
		{[]string{"full", "none"}, ErrEmpty, `watchlist "none" is empty`},
		{[]string{"old"}, ErrExpired, `watchlist "old" expired at`},
		{[]string{"nosuch"}, ErrNotFound, `watchlist "nosuch"`},
	}
	for _, tc := range tests {
		err := g.CheckSearchable(ctx, tc.lists, now)
		if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
			t.Errorf("CheckSearchable(%q) = %v, want %v", tc.lists, err, tc.wantErr)
			continue
		}
		if err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CheckSearchable(%q) = %q, want it to say %q", tc.lists, err, tc.want)
		}
	}
	// A list that expires later is still searchable now, not after.
	if _, err := g.ExpireWatchlist(ctx, "full", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := g.CheckSearchable(ctx, []string{"full"}, now); err != nil {
		t.Errorf("CheckSearchable(full, before expiry) = %v, want nil", err)
	}
	if err := g.CheckSearchable(ctx, []string{"full"}, now.Add(2*time.Hour)); !errors.Is(err, ErrExpired) {
		t.Errorf("CheckSearchable(full, after expiry) = %v, want ErrExpired", err)
	}
}
