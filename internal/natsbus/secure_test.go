package natsbus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/wire"
)

// siteServer is a nats-server started from the configuration file
// WriteServerConfig wrote, as an integrator would start it
// (nats-server -c FILE), with the role credentials beside it.
type siteServer struct {
	url      string
	credsDir string
	conf     string
	tls      config.TLSFiles // the clients' side
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startSite writes a server config and credentials into a temporary
// directory, loads the file with nats-server's own parser and starts the
// server. With pki, the server requires TLS and client certificates.
func startSite(t testing.TB, pki *testPKI) siteServer {
	t.Helper()
	dir := t.TempDir()
	ids, err := NewIdentities()
	if err != nil {
		t.Fatal(err)
	}
	creds := filepath.Join(dir, "creds")
	if err := WriteIdentities(creds, ids); err != nil {
		t.Fatal(err)
	}
	sc := ServerConfig{
		Listen:      fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		StoreDir:    filepath.Join(dir, "jetstream"),
		ServerName:  "site-test",
		Identities:  ids,
		Permissions: PermissionOptions{AlertSubjectPrefix: "facewatch.alerts"},
	}
	site := siteServer{credsDir: creds, conf: filepath.Join(dir, "nats-server.conf")}
	scheme := "nats"
	if pki != nil {
		sc.TLS = pki.serverTLSFiles()
		site.tls = pki.clientTLSFiles()
		scheme = "tls"
	}
	text, err := WriteServerConfig(sc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(site.conf, text, 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(site.conf)
	if err != nil {
		t.Fatalf("nats-server cannot load the generated config: %v\n%s", err, text)
	}
	opts.NoLog, opts.NoSigs = true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server from the generated config did not start")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	site.url = scheme + "://" + sc.Listen
	return site
}

// roleConn connects to site as role and collects the asynchronous errors
// the server sends it (permission violations arrive that way).
type roleConn struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	errs chan error
}

func (s siteServer) connect(t testing.TB, role Role) *roleConn {
	t.Helper()
	opts, err := ClientOptions(config.NATS{CredsDir: s.credsDir, TLS: s.tls}, role)
	if err != nil {
		t.Fatal(err)
	}
	rc := &roleConn{errs: make(chan error, 64)}
	opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case rc.errs <- err:
		default:
		}
	}))
	if rc.nc, err = nats.Connect(s.url, opts...); err != nil {
		t.Fatalf("connecting as %s: %v", role, err)
	}
	t.Cleanup(rc.nc.Close)
	if rc.js, err = jetstream.New(rc.nc); err != nil {
		t.Fatal(err)
	}
	return rc
}

// violation waits for the server's permission violation naming subject.
func (rc *roleConn) violation(t testing.TB, subject string) error {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case err := <-rc.errs:
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `"`+subject+`"`) {
				return err
			}
		case <-deadline:
			return nil
		}
	}
}

// publishRefused publishes on subject as rc and fails unless the server
// answers with a permission violation for it.
func (rc *roleConn) publishRefused(t *testing.T, role Role, subject string, data []byte) {
	t.Helper()
	if err := rc.nc.Publish(subject, data); err != nil {
		t.Fatal(err)
	}
	if err := rc.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if rc.violation(t, subject) == nil {
		t.Errorf("%s publishing on %s: no permission violation from the server, want one", role, subject)
	}
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestRolesEnforcedByServer is "every message trusted by identity, not by
// shape": against a nats-server started from the generated configuration
// file, an unauthenticated client is refused, an edge identity cannot
// publish a hit or a gallery event or read hits, no stage identity can
// delete or purge a stream, and the identities can still do their own
// jobs (a track report from detect reaches the matcher, a hit from match
// reaches the alert service), so the table is not simply "deny all".
func TestRolesEnforcedByServer(t *testing.T) {
	site := startSite(t, nil)
	ctx := ctxFor(t, time.Minute)
	admin := site.connect(t, RoleAdmin)
	if err := EnsureStreams(ctx, admin.js, Topology{}); err != nil {
		t.Fatalf("EnsureStreams as admin: %v", err)
	}

	t.Run("unauthenticated", func(t *testing.T) {
		nc, err := nats.Connect(site.url)
		if err == nil {
			nc.Close()
			t.Fatal("connecting without credentials succeeded; want an authorization violation")
		}
		if !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
			t.Errorf("connecting without credentials: %v, want an authorization violation", err)
		}
	})
	t.Run("unknown key", func(t *testing.T) {
		ids, err := NewIdentities()
		if err != nil {
			t.Fatal(err)
		}
		opt, err := nkeyOption(ids[RoleMatch])
		if err != nil {
			t.Fatal(err)
		}
		if nc, err := nats.Connect(site.url, opt); err == nil {
			nc.Close()
			t.Fatal("connecting with a key the server does not know succeeded")
		}
	})

	hit := wire.HitsSubject("wanted")
	for _, role := range []Role{RoleCamera, RoleDetect} {
		t.Run(string(role)+" forges a hit", func(t *testing.T) {
			rc := site.connect(t, role)
			rc.publishRefused(t, role, hit, []byte("forged"))
			// And through JetStream: no ack ever comes.
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			if _, err := rc.js.Publish(pctx, hit, []byte("forged"), jetstream.WithMsgID("forged-"+string(role))); err == nil {
				t.Errorf("%s: JetStream publish of a hit acknowledged; want it refused", role)
			}
		})
		t.Run(string(role)+" forges a gallery event", func(t *testing.T) {
			rc := site.connect(t, role)
			rc.publishRefused(t, role, wire.GalleryEvents, []byte(`{"kind":"watchlist_deleted","watchlist":"wanted"}`))
		})
		t.Run(string(role)+" reads hits", func(t *testing.T) {
			rc := site.connect(t, role)
			if _, err := rc.nc.SubscribeSync(wire.HitsWildcard); err != nil {
				t.Fatal(err)
			}
			rc.nc.Flush()
			if rc.violation(t, wire.HitsWildcard) == nil {
				t.Errorf("%s subscribing to %s: no permission violation, want one", role, wire.HitsWildcard)
			}
			if _, err := rc.js.CreateOrUpdateConsumer(ctxFor(t, time.Second), wire.HitsStream, jetstream.ConsumerConfig{Durable: "spy"}); err == nil {
				t.Errorf("%s created a consumer on %s; want it refused", role, wire.HitsStream)
			}
		})
	}

	stages := []Role{RoleCamera, RoleDetect, RoleMatch, RoleAlert, RoleCurator}
	for _, role := range stages {
		for _, op := range []string{"DELETE", "PURGE"} {
			t.Run(string(role)+" "+op, func(t *testing.T) {
				rc := site.connect(t, role)
				for _, stream := range []string{wire.TracksStream, wire.HitsStream, wire.GalleryStream} {
					subj := "$JS.API.STREAM." + op + "." + stream
					rc.publishRefused(t, role, subj, nil)
				}
				// The client library's own call fails too.
				dctx, cancel := context.WithTimeout(ctx, time.Second)
				defer cancel()
				if op == "DELETE" {
					if err := rc.js.DeleteStream(dctx, wire.HitsStream); err == nil {
						t.Errorf("%s: DeleteStream(%s) succeeded", role, wire.HitsStream)
					}
				}
				if _, err := rc.js.CreateStream(dctx, jetstream.StreamConfig{Name: "ROGUE", Subjects: []string{"facewatch.alerts.>"}}); err == nil {
					t.Errorf("%s created a stream; only the admin identity may", role)
				}
			})
		}
	}
	// After all that, the streams are still there.
	for _, name := range []string{wire.TracksStream, wire.HitsStream, wire.GalleryStream} {
		if _, err := admin.js.Stream(ctx, name); err != nil {
			t.Errorf("stream %s after the stage identities' attempts: %v", name, err)
		}
	}
	if _, err := admin.js.Stream(ctx, "ROGUE"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("stream ROGUE: %v, want not found", err)
	}

	t.Run("detect to match to alert", func(t *testing.T) {
		det, mat, alr, cur := site.connect(t, RoleDetect), site.connect(t, RoleMatch), site.connect(t, RoleAlert), site.connect(t, RoleCurator)
		// Each stage checks the topology at start-up; that must pass
		// without creating anything.
		for _, rc := range []*roleConn{det, mat, alr, cur} {
			if err := EnsureStreams(ctx, rc.js, Topology{}); err != nil {
				t.Fatalf("EnsureStreams as a stage: %v", err)
			}
		}
		if _, err := det.js.Publish(ctx, wire.TracksSubject("cam1"), []byte("track"), jetstream.WithMsgID("cam1/1/final")); err != nil {
			t.Fatalf("detect publishing a track report: %v", err)
		}
		mc, err := EnsureConsumer(ctx, mat.js, MatchConsumer(30*time.Second))
		if err != nil {
			t.Fatalf("match creating its consumer: %v", err)
		}
		msgs, err := mc.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range msgs.Messages() {
			n++
			if string(m.Data()) != "track" {
				t.Errorf("match got %q, want the track report", m.Data())
			}
			if _, err := mat.js.Publish(ctx, hit, []byte("hit"), jetstream.WithMsgID("cam1/1/alice")); err != nil {
				t.Fatalf("match publishing a hit: %v", err)
			}
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatalf("match acknowledging the track: %v", err)
			}
		}
		if n != 1 {
			t.Fatalf("match fetched %d track reports, want 1 (error %v)", n, msgs.Error())
		}
		ac, err := EnsureConsumer(ctx, alr.js, AlertConsumer(AlertDurable, 30*time.Second, 8))
		if err != nil {
			t.Fatalf("alert creating its consumer: %v", err)
		}
		hits, err := ac.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n = 0
		for m := range hits.Messages() {
			n++
			if m.Subject() != hit || string(m.Data()) != "hit" {
				t.Errorf("alert got %s %q, want %s hit", m.Subject(), m.Data(), hit)
			}
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatalf("alert acknowledging the hit: %v", err)
			}
		}
		if n != 1 {
			t.Fatalf("alert fetched %d hits, want 1 (error %v)", n, hits.Error())
		}
		if _, err := cur.js.Publish(ctx, wire.GalleryEvents, []byte(`{}`), jetstream.WithMsgID("gallery-1")); err != nil {
			t.Errorf("curator publishing a gallery event: %v", err)
		}
		if _, err := mat.js.OrderedConsumer(ctx, wire.GalleryStream, jetstream.OrderedConsumerConfig{}); err != nil {
			t.Errorf("match reading the gallery stream: %v", err)
		}
		for _, rc := range []*roleConn{det, mat, alr, cur} {
			select {
			case err := <-rc.errs:
				t.Errorf("a stage doing its own job got an asynchronous error: %v", err)
			default:
			}
		}
	})
}

// TestMutualTLS: a server from the generated config with TLS and a CA
// refuses a client without a client certificate and a client that does not
// trust the server's CA, and serves one with both.
func TestMutualTLS(t *testing.T) {
	pki := makePKI(t, t.TempDir())
	site := startSite(t, &pki)
	ctx := ctxFor(t, 30*time.Second)
	cases := []struct {
		name string
		tls  config.TLSFiles
		ok   bool
	}{
		{"no client certificate", config.TLSFiles{CAFile: pki.CA}, false},
		{"server not trusted", config.TLSFiles{CertFile: pki.ClientCert, KeyFile: pki.ClientKey}, false},
		{"mutual", pki.clientTLSFiles(), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := Open(ctx, config.NATS{URL: site.url, CredsDir: site.credsDir, TLS: c.tls}, t.TempDir(), Options{Role: RoleDetect})
			if c.ok {
				if err != nil {
					t.Fatalf("Open over mutual TLS = %v", err)
				}
				defer b.Close()
				if !b.Conn.TLSRequired() {
					t.Error("connection is not TLS")
				}
				return
			}
			if err == nil {
				b.Close()
				t.Fatalf("Open(%s) succeeded; want the TLS handshake refused", c.name)
			}
		})
	}
}

// TestEmbeddedRoles: the embedded server applies the same table to the
// in-process connections of `facewatch run`'s stages.
func TestEmbeddedRoles(t *testing.T) {
	ctx := ctxFor(t, 30*time.Second)
	b, err := Open(ctx, config.NATS{}, t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Role() != RoleAdmin {
		t.Errorf("embedded Open's own connection is role %q, want admin", b.Role())
	}
	if err := EnsureStreams(ctx, b.JS, Topology{}); err != nil {
		t.Fatal(err)
	}
	cam, err := b.As(ctx, RoleCamera, "camera")
	if err != nil {
		t.Fatal(err)
	}
	defer cam.Close()
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := cam.JS.Publish(pctx, wire.HitsSubject("wanted"), []byte("forged")); err == nil {
		t.Error("in-process camera identity published a hit")
	}
	m, err := b.As(ctx, RoleMatch, "match")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.JS.Publish(ctx, wire.HitsSubject("wanted"), []byte("hit")); err != nil {
		t.Errorf("in-process match identity publishing a hit: %v", err)
	}
	// Closing a stage's connection leaves the server up.
	m.Close()
	if _, err := b.JS.Stream(ctx, wire.HitsStream); err != nil {
		t.Errorf("server after a stage's Close: %v", err)
	}
}

// TestEmbeddedListenRules: a non-loopback nats.listen without TLS is
// refused with one line naming the key; listening at all writes the roles'
// keys 0600 and makes clients authenticate.
func TestEmbeddedListenRules(t *testing.T) {
	ctx := ctxFor(t, 30*time.Second)
	for _, listen := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		_, err := Open(ctx, config.NATS{Listen: listen}, t.TempDir(), Options{})
		if err == nil {
			t.Fatalf("Open(listen %q, no TLS) succeeded; want it refused", listen)
		}
		if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, "nats.listen") || !strings.Contains(msg, "nats.tls") {
			t.Errorf("Open(listen %q) = %q; want one line naming nats.listen and nats.tls", listen, msg)
		}
	}
	pki := makePKI(t, t.TempDir())
	dir := t.TempDir()
	b, err := Open(ctx, config.NATS{Listen: "0.0.0.0:0", TLS: pki.serverTLSFiles()}, dir, Options{})
	if err != nil {
		t.Fatalf("Open(listen 0.0.0.0 with TLS) = %v", err)
	}
	defer b.Close()
	creds := DefaultCredsDir(dir)
	for _, r := range Roles() {
		st, err := os.Stat(filepath.Join(creds, string(r)+".nk"))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s.nk has mode %v, want 0600", r, st.Mode().Perm())
		}
	}
	port := b.srv.Addr().(*net.TCPAddr).Port
	url := fmt.Sprintf("tls://127.0.0.1:%d", port)
	if nc, err := nats.Connect(url, nats.RootCAs(pki.CA), nats.ClientCert(pki.ClientCert, pki.ClientKey)); err == nil {
		nc.Close()
		t.Error("a client with a certificate but no credentials was let in")
	}
	c, err := Open(ctx, config.NATS{URL: url, CredsDir: creds, TLS: pki.clientTLSFiles()}, t.TempDir(), Options{Role: RoleAlert})
	if err != nil {
		t.Fatalf("Open as alert with the generated credentials over mutual TLS: %v", err)
	}
	c.Close()
}

// TestLeaseBucketPermissions: the camera and detect identities can use the
// camera lease bucket (bind, put, get, create-if-absent, watch) once the
// admin has made it, and cannot delete it; match cannot touch it.
func TestLeaseBucketPermissions(t *testing.T) {
	site := startSite(t, nil)
	ctx := ctxFor(t, 30*time.Second)
	admin := site.connect(t, RoleAdmin)
	if _, err := admin.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: CameraLeaseBucket, TTL: time.Minute}); err != nil {
		t.Fatalf("admin creating the lease bucket: %v", err)
	}
	for _, role := range []Role{RoleCamera, RoleDetect} {
		t.Run(string(role), func(t *testing.T) {
			rc := site.connect(t, role)
			kv, err := rc.js.KeyValue(ctx, CameraLeaseBucket)
			if err != nil {
				t.Fatalf("%s binding the lease bucket: %v", role, err)
			}
			w, err := kv.Watch(ctx, "cam-"+string(role))
			if err != nil {
				t.Fatalf("%s watching a key: %v", role, err)
			}
			defer w.Stop()
			if _, err := kv.Create(ctx, "cam-"+string(role), []byte("worker-1")); err != nil {
				t.Fatalf("%s creating a lease: %v", role, err)
			}
			e, err := kv.Get(ctx, "cam-"+string(role))
			if err != nil || string(e.Value()) != "worker-1" {
				t.Fatalf("%s reading its lease = %v, %v; want worker-1", role, e, err)
			}
			if _, err := kv.Update(ctx, "cam-"+string(role), []byte("worker-2"), e.Revision()); err != nil {
				t.Errorf("%s renewing the lease: %v", role, err)
			}
			seen := false
			deadline := time.After(5 * time.Second)
			for !seen {
				select {
				case u := <-w.Updates():
					seen = u != nil && string(u.Value()) == "worker-2"
				case <-deadline:
					t.Fatalf("%s: the watch did not see the renewal", role)
				}
			}
			dctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			if err := rc.js.DeleteKeyValue(dctx, CameraLeaseBucket); err == nil {
				t.Errorf("%s deleted the lease bucket", role)
			}
		})
	}
	m := site.connect(t, RoleMatch)
	kctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := m.js.KeyValue(kctx, CameraLeaseBucket); err == nil {
		t.Error("match bound the lease bucket; only the edge roles may")
	}
}
