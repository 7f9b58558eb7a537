package alert

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/facewatch/facewatch/internal/audit"
)

// TestLiveFeedEndsWithItsToken opens real SSE connections, then revokes
// (through the CLI's path: another handle on the database file) or
// expires one token mid-stream: its feed must end within 5 s, and another
// person's feed must go on.
func TestLiveFeedEndsWithItsToken(t *testing.T) {
	for _, how := range []string{"revoked", "expired"} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir()
			clk := &clock{t: time.Now()}
			s := openService(t, dir, Options{Now: clk.now})
			srv := httptest.NewServer(s.Handler())
			defer srv.Close()
			victim := mustToken(t, s, RoleOperator, "otto", time.Hour)
			other := mustToken(t, s, RoleOperator, "olga", 48*time.Hour)
			ch, stop := openLive(t, srv, victim, "")
			defer stop()
			och, ostop := openLive(t, srv, other, "")
			defer ostop()
			h, crop := makeHit(1, clk.now())
			if _, err := s.Store(context.Background(), h, crop); err != nil {
				t.Fatal(err)
			}
			nextEvent(t, ch) // the feed works before
			nextEvent(t, och)

			began := time.Now()
			switch how {
			case "revoked":
				if err := RevokeToken(context.Background(), local(dir), hashToken(victim)[:12]); err != nil {
					t.Fatal(err)
				}
			case "expired":
				clk.add(2 * time.Hour)
			}
			var last sseEvent
		wait:
			for {
				select {
				case ev, ok := <-ch:
					if !ok {
						break wait
					}
					last = ev
				case <-time.After(5*time.Second - time.Since(began)):
					t.Fatalf("live feed of a %s token still open after 5s", how)
				}
			}
			if took := time.Since(began); took > 5*time.Second {
				t.Errorf("live feed of a %s token ended after %v, want within 5s", how, took)
			}
			if last.event != "end" {
				t.Errorf("last event of a %s token's feed = %+v, want an end event saying why", how, last)
			}
			// The other person's feed is unaffected.
			h2, crop2 := makeHit(2, clk.now())
			if _, err := s.Store(context.Background(), h2, crop2); err != nil {
				t.Fatal(err)
			}
			if a := nextEvent(t, och); a.HitID != h2.ID {
				t.Errorf("other feed's next alert = %s, want %s", a.HitID, h2.ID)
			}
		})
	}
}

// TestTokenChangesAudited: issuing and revoking a token from the CLI's
// path each add one audit entry naming the local actor, the action, the
// token and the person, with the note beside (not instead of) the actor.
func TestTokenChangesAudited(t *testing.T) {
	dir := t.TempDir()
	l := local(dir)
	l.Note = "ticket 77"
	ctx := context.Background()
	last := func() AuditEntry {
		s := openService(t, dir, Options{})
		defer s.Close()
		seq, _, err := audit.Head(ctx, s.db.r)
		if err != nil {
			t.Fatal(err)
		}
		es, err := audit.Entries(ctx, s.db.r, seq, seq)
		if err != nil || len(es) != 1 {
			t.Fatalf("reading audit entry %d = %v, %v", seq, es, err)
		}
		return es[0]
	}
	_, info, err := CreateToken(ctx, l, TokenSpec{Role: RoleCurator, Person: "Cora Lind", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		action string
		do     func() error
	}{
		{"token_create", func() error { return nil }},
		{"token_revoke", func() error { return RevokeToken(ctx, l, info.ID) }},
	} {
		if err := step.do(); err != nil {
			t.Fatalf("%s = %v", step.action, err)
		}
		e := last()
		if e.Action != step.action || e.Target != "token/"+info.ID || e.Actor != testAdmin.ID || e.ActorName != testAdmin.Name ||
			e.Role != "local" || !strings.Contains(e.Detail, "Cora Lind") || !strings.Contains(e.Detail, "ticket 77") {
			t.Errorf("audit entry after %s = %+v, want action %s on token/%s by %s with the person and the note", step.action, e, step.action, info.ID, testAdmin.ID)
		}
	}
	if err := RevokeToken(ctx, l, info.ID); err == nil {
		t.Error("RevokeToken(already revoked) = nil, want an error")
	}
}
