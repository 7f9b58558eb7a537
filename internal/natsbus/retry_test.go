package natsbus

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// clusterNode starts node i of a three-node JetStream cluster whose route
// ports are routes.
func clusterNode(t *testing.T, i int, routes []int) *server.Server {
	t.Helper()
	var urls []string
	for j, p := range routes {
		if j != i {
			urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", p))
		}
	}
	opts := &server.Options{
		ServerName: fmt.Sprintf("n%d", i+1), Host: "127.0.0.1", Port: -1,
		JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
		Cluster: server.ClusterOpts{Name: "fw", Host: "127.0.0.1", Port: routes[i]},
		Routes:  server.RoutesFromStr(strings.Join(urls, ",")),
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatalf("node %d did not start", i+1)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// TestEnsureWaitsForTheCluster starts a stage's start-up checks while its
// JetStream cluster has no quorum (one node of three up: no meta leader,
// so the JetStream API does not answer or answers "temporarily
// unavailable"), then brings the other two nodes up. The checks must wait
// for the cluster and succeed, as a stage started beside a cluster that is
// still forming, or electing a leader, must not exit. (In CI a stage once
// exited at start because one stream-info request went unanswered while a
// fresh cluster's routes settled.)
func TestEnsureWaitsForTheCluster(t *testing.T) {
	routes := []int{freePort(t), freePort(t), freePort(t)}
	n1 := clusterNode(t, 0, routes)
	nc, err := nats.Connect(n1.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		if err := EnsureStreams(ctx, js, Topology{Replicas: 3}); err != nil {
			done <- err
			return
		}
		_, err := EnsureCameraLeases(ctx, js, 3)
		done <- err
	}()
	// Long enough for a single unanswered request to time out.
	select {
	case err := <-done:
		t.Fatalf("EnsureStreams with one node of three up returned after %v: %v; want it to wait for the cluster", time.Since(start).Round(time.Millisecond), err)
	case <-time.After(7 * time.Second):
	}
	clusterNode(t, 1, routes)
	clusterNode(t, 2, routes)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("EnsureStreams once the cluster formed = %v, want success", err)
		}
	case <-ctx.Done():
		t.Fatal("EnsureStreams did not return within 2 minutes of the cluster forming")
	}
	t.Logf("start-up checks succeeded %v after they began (the cluster formed after 7 s)", time.Since(start).Round(time.Millisecond))
	s, err := js.Stream(ctx, Streams(Topology{Replicas: 3})[0].Name)
	if err != nil || s.CachedInfo().Config.Replicas != 3 {
		t.Fatalf("stream after start-up = %v, %v; want it at 3 replicas", s, err)
	}
}
