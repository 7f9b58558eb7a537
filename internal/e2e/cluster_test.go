package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/pipeline"
	"github.com/facewatch/facewatch/internal/rtsptest"
	"github.com/facewatch/facewatch/internal/synthcam"
	"github.com/facewatch/facewatch/internal/testdata"
	"github.com/facewatch/facewatch/internal/wire"
)

// The cluster test's clip: four cameras play the same 44 s clip (10 fps,
// sampled at 5) in which the enrolled person crosses three times and a
// stranger once, timed around the two faults (stream seconds):
//
//	 3- 6  A crosses                      (every node and worker up)
//	 8     kill -9 the NATS node leading the tracks stream
//	12-15  A crosses                      (two nodes; a new leader may still be in election)
//	21     kill -9 a detect worker (it owns two cameras); its reports of
//	       the second crossing are out by then (elections take 4-9 s)
//	23-26  a stranger crosses             (the dead worker's cameras are unwatched
//	       until their leases expire)
//	       ... its cameras must be re-owned within 15 s ...
//	38-41  A crosses                      (two nodes, one detect worker): after
//	       the re-own bound, so every camera is watched again
const (
	clusterFPS       = 10
	clusterCameras   = 4
	clusterDuration  = 44 * time.Second
	killNATSAt       = 8 * time.Second
	killDetectAt     = 21 * time.Second
	reownBound       = 15 * time.Second
	clusterWatchlist = watchlist
)

// natsNode is one nats-server process of the test cluster.
type natsNode struct {
	name       string
	client     int
	cmd        *exec.Cmd
	done       chan struct{}
	configPath string
}

// freePort asks the kernel for a free loopback port.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// clusterSite is the secured site `facewatch nats init --nodes` wrote:
// the role credentials and the client side of mutual TLS.
type clusterSite struct {
	creds string
	tls   config.TLSFiles
}

// startCluster runs deploy/nats/node{1,2,3}.conf as three real nats-server
// processes on loopback, secured as a site is: `facewatch nats init
// --nodes nats1,nats2,nats3 --make-ca` writes the users every node
// includes, the CA, each node's certificate, a client certificate and the
// role credentials; the deploy files are used with their /etc/nats paths,
// host names, ports, store and monitoring addresses rewritten for one
// machine. Clients and routes speak mutual TLS; every client
// authenticates with its role's nkey.
func startCluster(t *testing.T) ([]*natsNode, clusterSite) {
	t.Helper()
	natsBin := testdata.NATSServer(t)
	dir := t.TempDir()
	siteDir := filepath.Join(dir, "site")
	if out, err := exec.Command(bin, "nats", "init", "--dir", siteDir, "--nodes", "nats1,nats2,nats3", "--make-ca", "--clients", "client").CombinedOutput(); err != nil {
		t.Fatalf("facewatch nats init --nodes = %v:\n%s", err, out)
	}
	site := clusterSite{creds: filepath.Join(siteDir, "creds"), tls: config.TLSFiles{CAFile: filepath.Join(siteDir, "tls", "ca.pem"),
		CertFile: filepath.Join(siteDir, "tls", "client.pem"), KeyFile: filepath.Join(siteDir, "tls", "client-key.pem")}}
	var client, route, mon [3]int
	for i := range 3 {
		client[i], route[i], mon[i] = freePort(t), freePort(t), freePort(t)
	}
	var nodes []*natsNode
	for i := range 3 {
		src, err := os.ReadFile(filepath.Join(testdata.RepoRoot(), "deploy", "nats", fmt.Sprintf("node%d.conf", i+1)))
		if err != nil {
			t.Fatal(err)
		}
		s := string(src)
		rep := []string{
			"0.0.0.0:4222", fmt.Sprintf("127.0.0.1:%d", client[i]),
			"0.0.0.0:6222", fmt.Sprintf("127.0.0.1:%d", route[i]),
			"127.0.0.1:8222", fmt.Sprintf("127.0.0.1:%d", mon[i]),
			"/var/lib/nats/jetstream", filepath.Join(dir, fmt.Sprintf("store%d", i+1)),
			"max_file_store: 20GB", "max_file_store: 4GB", // the streams reserve 1.6 GiB
			"/etc/nats/", siteDir + "/",
		}
		for j := range 3 {
			rep = append(rep, fmt.Sprintf("nats-route://nats%d:6222", j+1), fmt.Sprintf("nats-route://127.0.0.1:%d", route[j]))
		}
		for j := 0; j < len(rep); j += 2 {
			if !strings.Contains(s, rep[j]) {
				t.Fatalf("deploy/nats/node%d.conf no longer contains %q; update the test's rewriting", i+1, rep[j])
			}
			s = strings.ReplaceAll(s, rep[j], rep[j+1])
		}
		// Beside auth.conf, which it includes.
		path := filepath.Join(siteDir, fmt.Sprintf("node%d-test.conf", i+1))
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		n := &natsNode{name: fmt.Sprintf("nats%d", i+1), client: client[i], configPath: path, done: make(chan struct{})}
		logf, err := os.Create(filepath.Join(dir, n.name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		n.cmd = exec.Command(natsBin, "-c", path)
		n.cmd.Stdout, n.cmd.Stderr = logf, logf
		if err := n.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { // ends when the node exits
			n.cmd.Wait()
			logf.Close()
			close(n.done)
		}()
		t.Cleanup(func() {
			n.cmd.Process.Kill()
			<-n.done
			if t.Failed() {
				b, _ := os.ReadFile(logf.Name())
				t.Logf("--- %s log ---\n%s", n.name, tail(string(b), 3000))
			}
		})
		nodes = append(nodes, n)
	}
	return nodes, site
}

func clusterURL(nodes []*natsNode) string {
	var us []string
	for _, n := range nodes {
		us = append(us, fmt.Sprintf("tls://127.0.0.1:%d", n.client))
	}
	return strings.Join(us, ",")
}

// clusterClip renders the test's clip and returns it with its truth, the
// enrolled identity and its enrolment photo.
func clusterClip(t *testing.T) (*rtsptest.Clip, synthcam.Truth, synthcam.Scenario) {
	t.Helper()
	sc, err := synthcam.Johns(testdata.SharedDir(), width, height, clusterFPS)
	if err != nil {
		t.Fatal(err)
	}
	var a1, a2, stranger synthcam.Appearance
	for _, a := range sc.Script.Appearances {
		switch {
		case a.Identity == sc.Enrolled && a1.Identity == "":
			a1 = a
		case a.Identity == sc.Enrolled:
			a2 = a
		case stranger.Identity == "":
			stranger = a
		}
	}
	at := func(a synthcam.Appearance, start float64) synthcam.Appearance {
		d := a.End - a.Start
		a.Start = time.Duration(start * float64(time.Second))
		a.End = a.Start + d
		return a
	}
	script := synthcam.Script{Width: width, Height: height, FPS: clusterFPS, Duration: clusterDuration,
		Background:  testdata.OpenCV(t, "vtest.avi"),
		Appearances: []synthcam.Appearance{at(a1, 3), at(a2, 12), at(stranger, 23), at(a1, 38)}}
	file := filepath.Join(t.TempDir(), "cluster.h264")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tr, err := synthcam.Render(ctx, script, file)
	if err != nil {
		t.Fatal(err)
	}
	clip, err := rtsptest.LoadClip(file, clusterFPS)
	if err != nil {
		t.Fatal(err)
	}
	return clip, tr, sc
}

// multiCam serves one clip on several paths and records when each frame
// was sent on each.
type multiCam struct {
	srv   *rtsptest.Server
	ids   []string
	mu    sync.Mutex
	sent  map[string]map[int]time.Time // camera → frame index → sent
	marks map[int]chan struct{}        // frame index on the first camera → closed when sent
}

func serveCameras(t *testing.T, clip *rtsptest.Clip, n int, marks ...int) *multiCam {
	t.Helper()
	c := &multiCam{sent: map[string]map[int]time.Time{}, marks: map[int]chan struct{}{}}
	for _, m := range marks {
		c.marks[m] = make(chan struct{})
	}
	var srcs []rtsptest.Source
	for i := range n {
		id := fmt.Sprintf("cam-%d", i+1)
		c.ids = append(c.ids, id)
		c.sent[id] = map[int]time.Time{}
		first := i == 0
		srcs = append(srcs, rtsptest.Source{Name: id, Clip: clip, StartOnPlay: true, OnFrame: func(ev rtsptest.FrameEvent) {
			c.mu.Lock()
			c.sent[id][ev.Index] = ev.Sent
			ch := c.marks[ev.Index]
			if first && ch != nil {
				delete(c.marks, ev.Index)
				close(ch)
			}
			c.mu.Unlock()
		}})
	}
	srv, err := rtsptest.Start(context.Background(), rtsptest.Options{Sources: srcs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	c.srv = srv
	return c
}

// mark returns the channel closed when frame i is sent on the first camera.
func (c *multiCam) mark(i int) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch, ok := c.marks[i]; ok {
		return ch
	}
	done := make(chan struct{})
	close(done)
	return done
}

func (c *multiCam) window(camera string, a synthcam.Appearance) (time.Time, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sent[camera][a.FirstFrame], c.sent[camera][a.LastFrame].Add(frameInterval)
}

// clusterConfig writes the config every facewatch process of the test
// shares: the three nodes, three replicas, the four cameras.
func clusterConfig(t *testing.T, data, natsURL string, site clusterSite, cams *multiCam) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "data_dir: %s\nlog_level: info\n", data)
	fmt.Fprintf(&b, "nats:\n  url: %q\n  replicas: 3\n  ack_wait: 2s\n  creds_dir: %q\n", natsURL, site.creds)
	fmt.Fprintf(&b, "  tls:\n    ca_file: %q\n    cert_file: %q\n    key_file: %q\n", site.tls.CAFile, site.tls.CertFile, site.tls.KeyFile)
	b.WriteString("cameras:\n")
	for _, id := range cams.ids {
		fmt.Fprintf(&b, "  - id: %s\n    url: %s\n    max_fps: %d\n    open_timeout: 5s\n    backoff_max: 2s\n", id, cams.srv.URL(id), sampleFPS)
	}
	fmt.Fprintf(&b, "detect:\n  upsample: 0\n  max_width: %d\nalert:\n  listen: 127.0.0.1:0\n", width)
	path := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// leaseOwners reads which worker holds each camera's detect lease.
func leaseOwners(ctx context.Context, kv jetstream.KeyValue, cams []string) map[string]string {
	out := map[string]string{}
	for _, id := range cams {
		c, cancel := context.WithTimeout(ctx, time.Second)
		e, err := kv.Get(c, pipeline.RoleDetect+".item."+id)
		cancel()
		if err == nil {
			out[id] = string(e.Value())
		}
	}
	return out
}

// TestClusterFailover is a three-host site on one machine: three real
// nats-server processes clustered from deploy/nats (streams and the lease
// bucket at three replicas), one camera process, two detect workers
// sharing four cameras through leases, one matcher and one alert service,
// all real processes. Mid-stream it kills -9 the NATS node leading the
// tracks stream, then one detect worker. Every crossing of the enrolled
// person on every camera must give exactly one alert (none lost, none
// twice), the stranger none; the dead worker's cameras must be owned again
// within 15 s; the cluster must keep serving with one node down.
func TestClusterFailover(t *testing.T) {
	clip, tr, sc := clusterClip(t)
	fpsIdx := func(d time.Duration) int { return int(d * clusterFPS / time.Second) }
	cams := serveCameras(t, clip, clusterCameras, fpsIdx(killNATSAt), fpsIdx(killDetectAt))
	nodes, site := startCluster(t)
	url := clusterURL(nodes)
	data := t.TempDir()
	enrol(t, data, map[string]string{sc.Enrolled: sc.EnrolPhoto})

	// The test's own client: wait for the cluster to elect a JetStream
	// leader and take the topology at three replicas.
	opts, err := natsbus.ClientOptions(config.NATS{CredsDir: site.creds, TLS: site.tls}, natsbus.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, append(opts, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	formed := time.Now()
	for {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := natsbus.EnsureStreams(c, js, natsbus.Topology{Replicas: 3})
		cancel()
		if err == nil {
			break
		}
		if time.Since(formed) > 60*time.Second {
			t.Fatalf("the three-node cluster did not take the streams within 60s: %v", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("cluster formed and streams created at 3 replicas in %v", time.Since(formed).Round(time.Millisecond))
	kv, err := natsbus.EnsureCameraLeases(ctx, js, 3)
	if err != nil {
		t.Fatal(err)
	}

	cfg := clusterConfig(t, data, url, site, cams)
	ps := map[string]*proc{
		"match":   start(t, "match", "match", "--config", cfg),
		"alert":   start(t, "alert", "alert", "--config", cfg),
		"detect1": start(t, "detect1", "detect", "--config", cfg),
		"detect2": start(t, "detect2", "detect", "--config", cfg),
	}
	// The cameras start once both workers hold their shares, so that the
	// clip starts with every camera's frames taken.
	pidOf := func(name string) string { return "-" + strconv.Itoa(ps[name].cmd.Process.Pid) }
	deadline := time.Now().Add(90 * time.Second)
	for {
		owners := leaseOwners(ctx, kv, cams.ids)
		per := map[string]int{}
		for _, o := range owners {
			for _, w := range []string{"detect1", "detect2"} {
				if strings.HasSuffix(o, pidOf(w)) {
					per[w]++
				}
			}
		}
		if per["detect1"] == 2 && per["detect2"] == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("detect workers did not share the four cameras two and two within 90s: %v", owners)
		}
		time.Sleep(200 * time.Millisecond)
	}
	ps["camera"] = start(t, "camera", "camera", "--config", cfg)

	// Fault 1: kill -9 the node leading the tracks stream.
	select {
	case <-cams.mark(fpsIdx(killNATSAt)):
	case <-time.After(90 * time.Second):
		t.Fatal("the clip did not reach the first fault within 90s")
	}
	info, err := js.Stream(ctx, wire.TracksStream)
	if err != nil {
		t.Fatal(err)
	}
	leader := info.CachedInfo().Cluster.Leader
	var victim *natsNode
	for _, n := range nodes {
		if n.name == leader {
			victim = n
		}
	}
	if victim == nil {
		t.Fatalf("tracks stream leader %q is none of the nodes", leader)
	}
	killed := time.Now()
	victim.cmd.Process.Kill()
	<-victim.done
	// NATS failover: until the tracks stream has a new leader and takes a
	// write again.
	var natsFailover time.Duration
	for {
		c, cancel := context.WithTimeout(ctx, time.Second)
		s, err := js.Stream(c, wire.TracksStream)
		ok := err == nil && s.CachedInfo().Cluster != nil && s.CachedInfo().Cluster.Leader != "" && s.CachedInfo().Cluster.Leader != leader
		if ok {
			_, err = js.Stream(c, wire.HitsStream)
			ok = err == nil
		}
		cancel()
		if ok {
			natsFailover = time.Since(killed)
			break
		}
		if time.Since(killed) > 30*time.Second {
			t.Fatalf("no new tracks stream leader within 30s of killing %s: %v", leader, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("NATS node loss: killed %s (tracks stream leader); new leader elected and serving after %v", leader, natsFailover.Round(time.Millisecond))

	// Fault 2: kill -9 one detect worker.
	select {
	case <-cams.mark(fpsIdx(killDetectAt)):
	case <-time.After(60 * time.Second):
		t.Fatal("the clip did not reach the second fault within 60s")
	}
	dead, alive := "detect1", "detect2"
	before := leaseOwners(ctx, kv, cams.ids)
	var lost []string
	for id, o := range before {
		if strings.HasSuffix(o, pidOf(dead)) {
			lost = append(lost, id)
		}
	}
	sort.Strings(lost)
	if len(lost) == 0 {
		t.Fatalf("%s owns no camera before the kill: %v", dead, before)
	}
	killed = time.Now()
	ps[dead].cmd.Process.Kill()
	<-ps[dead].done
	var reowned time.Duration
	for {
		owners := leaseOwners(ctx, kv, cams.ids)
		all := len(owners) == len(cams.ids)
		for _, o := range owners {
			all = all && strings.HasSuffix(o, pidOf(alive))
		}
		if all {
			reowned = time.Since(killed)
			break
		}
		if time.Since(killed) > 2*reownBound {
			t.Fatalf("cameras %v not re-owned by %s within %v: %v", lost, alive, 2*reownBound, owners)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("detect worker loss: cameras %v re-owned by the survivor %v after the kill", lost, reowned.Round(time.Millisecond))
	if reowned > reownBound {
		t.Errorf("cameras re-owned %v after the owner died, want within %v", reowned, reownBound)
	}

	// The clip ends; every track and hit is consumed.
	for _, id := range cams.ids {
		select {
		case <-cams.srv.Path(id).Done():
		case <-time.After(90 * time.Second):
			t.Fatalf("camera %s's clip did not end within 90s", id)
		}
	}
	idle := func(stream, consumer string) bool {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		cons, err := js.Consumer(c, stream, consumer)
		if err != nil {
			return false
		}
		info, err := cons.Info(c)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	}
	time.Sleep(3 * time.Second)
	settleBy := time.Now().Add(60 * time.Second)
	for stable := 0; stable < 4; {
		if time.Now().After(settleBy) {
			t.Fatal("tracks and hits were not all consumed within 60s of the clip's end")
		}
		if idle(wire.TracksStream, natsbus.MatchDurable) && idle(wire.HitsStream, config.Defaults().Alert.Consumer) {
			stable++
		} else {
			stable = 0
		}
		time.Sleep(500 * time.Millisecond)
	}

	// Exactly one alert per camera and crossing of the enrolled person.
	alerts := readAlerts(t, data)
	var apps []synthcam.Appearance
	for _, a := range tr.Appearances {
		if a.Identity == sc.Enrolled {
			apps = append(apps, a)
		}
	}
	if len(apps) != 3 {
		t.Fatalf("clip shows %s %d times, want 3", sc.Enrolled, len(apps))
	}
	count := map[string]int{} // camera/appearance → alerts
	for _, a := range alerts {
		if a.identity != sc.Enrolled {
			t.Errorf("alert %s names %q, want only %q (strangers get none)", a.hitID, a.identity, sc.Enrolled)
			continue
		}
		which := -1
		for i, ap := range apps {
			from, to := cams.window(a.camera, ap)
			if !a.time.Before(from.Add(-frameInterval)) && !a.time.After(to) {
				which = i
			}
		}
		if which < 0 {
			t.Errorf("alert %s on %s at %s is outside every crossing of %s", a.hitID, a.camera, a.time.Format("15:04:05.000"), sc.Enrolled)
			continue
		}
		count[fmt.Sprintf("%s/%d", a.camera, which)]++
	}
	for _, id := range cams.ids {
		for i := range apps {
			if n := count[fmt.Sprintf("%s/%d", id, i)]; n != 1 {
				t.Errorf("camera %s, crossing %d of %s: %d alerts, want exactly 1", id, i+1, sc.Enrolled, n)
			}
		}
	}
	if t.Failed() {
		for _, a := range alerts {
			t.Logf("alert %s %s %s at %s", a.hitID, a.camera, a.identity, a.time.Format("15:04:05.000"))
		}
	}
	// The cluster still serves with one node down: a write to the hits
	// stream's subject space is stored at the two surviving replicas.
	c, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := js.Stream(c, wire.GalleryStream)
	if err != nil {
		t.Fatalf("gallery stream with one node down: %v", err)
	}
	if cl := s.CachedInfo().Cluster; cl == nil || cl.Leader == "" || cl.Leader == leader {
		t.Errorf("gallery stream cluster = %+v, want a leader other than the dead %s", cl, leader)
	}
	for _, name := range []string{"camera", alive, "match", "alert"} {
		ps[name].stop(t)
	}
}
