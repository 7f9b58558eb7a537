package alert

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/wire"
)

// Environment of the child process TestKilledServiceLosesNothing starts.
const (
	childEnv     = "FACEWATCH_ALERT_TEST_CHILD"
	childNATSEnv = "FACEWATCH_ALERT_TEST_NATS"
	childDataEnv = "FACEWATCH_ALERT_TEST_DATA"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(runChild())
	}
	goleak.VerifyTestMain(m)
}

// runChild is the alert service as a separate process: it consumes hits
// until it is killed (or a minute passes, so that it never outlives a
// broken test).
func runChild() int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM)
	defer stop()
	nc, err := nats.Connect(os.Getenv(childNATSEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	s, err := Open(ctx, os.Getenv(childDataEnv), testConfig(), Options{Registry: prometheus.NewRegistry(), BatchSize: 8, AckWait: 2 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	defer s.Close()
	if err := s.Run(ctx, js); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

func startChild(t *testing.T, natsURL, dataDir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", childNATSEnv+"="+natsURL, childDataEnv+"="+dataDir)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the alert service process: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// TestKilledServiceLosesNothing kills the alert service with SIGKILL in
// the middle of a stream of hits, restarts it, and checks that every hit
// became exactly one alert with its crop.
func TestKilledServiceLosesNothing(t *testing.T) {
	dir := t.TempDir()
	ns := startNATS(t, filepath.Join(dir, "js"))
	_, js := connectJS(t, ns.ClientURL())
	ctx := context.Background()
	if err := natsbus.EnsureStreams(ctx, js, natsbus.Topology{}); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	// Create the schema first so that the parent can watch the count.
	s0, err := Open(ctx, data, testConfig(), Options{Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	s0.Close()
	r, err := sql.Open("sqlite3", dsn(DBPath(data), true))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	count := func() int {
		var n int
		r.QueryRow(`SELECT COUNT(*) FROM alerts`).Scan(&n)
		return n
	}

	const total = 2000
	base := time.Now().UTC()
	want := map[string]string{} // hit ID → crop hash
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			h, crop := makeHit(i, base)
			if _, err := js.PublishAsync(wire.HitsSubject(h.Watchlist), encodeHit(t, h, crop), jetstream.WithMsgID(h.ID)); err != nil {
				t.Fatal(err)
			}
			want[h.ID] = sha(crop)
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(30 * time.Second):
			t.Fatal("publishing timed out")
		}
	}
	publish(0, total/2)
	child := startChild(t, ns.ClientURL(), data)
	deadline := time.Now().Add(30 * time.Second)
	for count() < 10 {
		if time.Now().After(deadline) {
			t.Fatal("the alert service stored nothing within 30s")
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	atKill := count()
	if atKill >= total/2 {
		t.Fatalf("all %d hits were stored before the kill landed; the test did not kill mid-stream", total/2)
	}
	// More hits arrive while the service is down.
	publish(total/2, total)
	startChild(t, ns.ClientURL(), data)
	waitFor(t, 60*time.Second, "every hit stored after the restart", func() bool {
		ci, err := js.Consumer(ctx, wire.HitsStream, testConfig().Consumer)
		if err != nil {
			return false
		}
		inf := ci.CachedInfo()
		return count() >= total && inf.NumPending == 0 && inf.NumAckPending == 0
	})
	rows, err := r.Query(`SELECT hit_id, crop_sha256 FROM alerts`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]int{}
	for rows.Next() {
		var id, crop string
		rows.Scan(&id, &crop)
		got[id]++
		if want[id] != crop {
			t.Errorf("alert %s has crop %q, want %q", id, crop, want[id])
		}
		if _, err := os.Stat(filepath.Join(cropDir(data), crop+".jpg")); err != nil {
			t.Errorf("crop of alert %s: %v", id, err)
		}
	}
	for id := range want {
		if got[id] != 1 {
			t.Errorf("alert %s stored %d times, want 1", id, got[id])
		}
	}
	if len(got) != total {
		t.Errorf("distinct alerts = %d, want %d (killed after %d)", len(got), total, atKill)
	}
	redelivered := -1
	if ci, err := js.Consumer(ctx, wire.HitsStream, testConfig().Consumer); err == nil {
		redelivered = int(ci.CachedInfo().Delivered.Consumer) - total
	}
	t.Logf("killed after %d of %d alerts; %d hits redelivered after the kill; all %d present once after restart", atKill, total, redelivered, len(got))
}
