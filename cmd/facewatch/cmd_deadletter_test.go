package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/wire"
)

// TestDeadLetterCommand stores two refused messages through a real NATS
// server and reads them with `facewatch deadletter list` (text and JSON),
// then replays the one whose body was kept onto its original subject.
func TestDeadLetterCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	srv, err := natsbus.StartServer(ctx, filepath.Join(dir, "nats"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	cfgPath := filepath.Join(dir, "facewatch.yaml")
	creds := natsbus.DefaultCredsDir(filepath.Join(dir, "nats"))
	if err := os.WriteFile(cfgPath, []byte("data_dir: data\nnats:\n  url: "+srv.ClientURL()+"\n  creds_dir: "+creds+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bus, err := natsbus.Open(ctx, config.NATS{URL: srv.ClientURL(), CredsDir: creds}, dir, natsbus.Options{Role: natsbus.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	if err := natsbus.EnsureStreams(ctx, bus.JS, natsbus.Topology{}); err != nil {
		t.Fatal(err)
	}
	for _, l := range []natsbus.Letter{
		{Stage: "match", Subject: wire.TracksSubject("cam1"), Kind: wire.KindTrack, Data: []byte("descriptors"), Reason: errors.New("model mismatch")},
		{Stage: "alert", Subject: wire.HitsSubject("missing"), Kind: wire.KindHit, Data: []byte("a newer hit"), KeepBody: true,
			Reason: errors.New("schema version 3 is newer than this build accepts (1..2)")},
	} {
		if err := bus.DeadLetter(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		args []string
		want []string // substrings of stdout, in order of lines
	}{
		{"list", []string{"deadletter", "list", "--config", cfgPath}, []string{"model mismatch", "schema version 3 is newer"}},
		{"list one stage", []string{"deadletter", "list", "--stage", "alert", "--config", cfgPath}, []string{"facewatch.hits.missing"}},
		{"list the newest", []string{"deadletter", "list", "--limit", "1", "--config", cfgPath}, []string{"11 bytes kept"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := runAlertCLI(t, tc.args...)
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if code != 0 || len(lines) != len(tc.want) {
				t.Fatalf("facewatch %v = exit %d, %d lines (%q, %s); want 0, %d lines", tc.args, code, len(lines), out, stderr, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("facewatch %v line %d = %q, want it to mention %q", tc.args, i, lines[i], w)
				}
			}
		})
	}
	code, out, _ := runAlertCLI(t, "deadletter", "list", "--json", "--config", cfgPath)
	var first natsbus.StoredLetter
	if code != 0 || json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &first) != nil || first.Stage != "match" || first.Bytes != 0 || first.Body == "" {
		t.Errorf("deadletter list --json = exit %d, first %+v; want the match letter without its body", code, first)
	}

	sub, err := bus.Conn.SubscribeSync(wire.HitsSubject("missing"))
	if err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := runAlertCLI(t, "deadletter", "replay", "2", "--config", cfgPath); code != 0 || !strings.Contains(out, "replayed") {
		t.Fatalf("deadletter replay 2 = exit %d %q %s, want replayed", code, out, stderr)
	}
	m, err := sub.NextMsg(10 * time.Second)
	if err != nil || string(m.Data) != "a newer hit" {
		t.Errorf("replayed message = %v, want the kept hit body on %s", err, wire.HitsSubject("missing"))
	}
	if code, _, _ := runAlertCLI(t, "deadletter", "replay", "1", "--config", cfgPath); code != 1 {
		t.Errorf("deadletter replay of a letter without body = exit %d, want 1", code)
	}
	if code, _, _ := runAlertCLI(t, "deadletter", "replay", "--config", cfgPath); code != 2 {
		t.Errorf("deadletter replay without a sequence = exit %d, want 2", code)
	}
}
