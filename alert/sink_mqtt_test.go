package alert

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/testcert"
)

// freePort returns a loopback address nothing listens on.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

const testPrefix = "facewatch.alerts"

// mqttTestBus is the embedded NATS server with its MQTT listener, as
// `facewatch run` starts it, and the identities a test needs.
type mqttTestBus struct {
	bus      *natsbus.Bus
	natsDir  string
	mqttAddr string
	alertJS  jetstream.JetStream // the alert role: consumes hits
	matchJS  jetstream.JetStream // the match role: publishes hits
	subPass  string              // natsbus.MQTTUser's password
}

// openMQTTBus starts the embedded server under dir with nats.mqtt.listen
// on mqttAddr (a free port when empty).
func openMQTTBus(t *testing.T, dir, mqttAddr string) *mqttTestBus {
	t.Helper()
	ctx := context.Background()
	if mqttAddr == "" {
		mqttAddr = freePort(t)
	}
	natsDir := filepath.Join(dir, "nats")
	bus, err := natsbus.Open(ctx, config.NATS{MQTT: config.NATSMQTT{Listen: mqttAddr}}, natsDir, natsbus.Options{
		PermissionOptions: natsbus.PermissionOptions{AlertSubjectPrefix: testPrefix}})
	if err != nil {
		t.Fatalf("natsbus.Open with nats.mqtt.listen %s = %v", mqttAddr, err)
	}
	t.Cleanup(bus.Close)
	if err := natsbus.EnsureStreams(ctx, bus.JS, natsbus.Topology{}); err != nil {
		t.Fatal(err)
	}
	b := &mqttTestBus{bus: bus, natsDir: natsDir, mqttAddr: mqttAddr}
	// The service and the matcher use their own identities, as in
	// `facewatch run`.
	alertBus, err := bus.As(ctx, natsbus.RoleAlert, "alert")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(alertBus.Close)
	matchBus, err := bus.As(ctx, natsbus.RoleMatch, "match")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(matchBus.Close)
	b.alertJS, b.matchJS = alertBus.JS, matchBus.JS
	b.subPass, err = natsbus.MQTTPassword(natsbus.DefaultCredsDir(natsDir))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// subscriber is a real MQTT client, logged in as natsbus.MQTTUser,
// subscribed at QoS 1 to every alert topic. With persistent set it asks
// for a persistent session (clean session off), as Home Assistant does.
type subscriber struct {
	t      *testing.T
	client mqtt.Client
	mu     sync.Mutex
	// guarded by mu:
	events []Event
	qos    []byte
	topics []string
}

func (s *subscriber) handle(_ mqtt.Client, m mqtt.Message) {
	var e Event
	if err := json.Unmarshal(m.Payload(), &e); err != nil {
		s.t.Errorf("MQTT payload on %s %q: %v", m.Topic(), m.Payload(), err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, e)
	s.qos = append(s.qos, m.Qos())
	s.topics = append(s.topics, m.Topic())
}

func (s *subscriber) ids() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int64
	for _, e := range s.events {
		out = append(out, e.ID)
	}
	return out
}

// connect connects (again) with clientID; a persistent session that
// already holds the subscription gets its stored messages through the
// default handler, before any Subscribe.
func (s *subscriber) connect(addr, user, pass, clientID string, persistent bool) {
	s.t.Helper()
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(clientID).SetUsername(user).SetPassword(pass).
		SetCleanSession(!persistent).SetConnectTimeout(5 * time.Second).SetAutoReconnect(false).SetDefaultPublishHandler(s.handle)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		s.t.Fatalf("MQTT connect to %s as %s: %v", addr, clientID, tok.Error())
	}
	s.client = c
	s.t.Cleanup(func() { c.Disconnect(100) })
}

func (s *subscriber) subscribe() {
	s.t.Helper()
	if tok := s.client.Subscribe("facewatch/alerts/#", 1, s.handle); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		s.t.Fatalf("MQTT subscribe: %v", tok.Error())
	}
}

// mqttSinkConfig enables the MQTT sink with fast retries.
func mqttSinkConfig(url string) config.Alert {
	cfg := testConfig()
	cfg.Sinks.MQTT = config.Defaults().Alert.Sinks.MQTT
	cfg.Sinks.MQTT.Enabled = true
	cfg.Sinks.MQTT.URL = url
	cfg.Sinks.MQTT.Timeout = 5 * time.Second
	cfg.Sinks.MQTT.BackoffMin, cfg.Sinks.MQTT.BackoffMax = 20*time.Millisecond, 200*time.Millisecond
	return cfg
}

func openMQTTService(t *testing.T, dir string, cfg config.Alert, embedded natsbus.MQTTBroker) *Service {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	s, err := Open(context.Background(), dir, cfg, Options{Registry: prometheus.NewRegistry(), EmbeddedMQTT: embedded})
	if err != nil {
		t.Fatalf("Open(%s) = %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestMQTTSinkDeliversARealHit runs the embedded NATS server with its
// MQTT listener, subscribes a real MQTT client at QoS 1, and checks that
// a hit consumed by the alert service arrives as the alert's JSON on
// facewatch/alerts/<watchlist> at QoS 1: the sink published it at QoS 1
// (a NATS core publish reaches MQTT subscribers at QoS 0 only), as the
// embedded publisher user (alert.sinks.mqtt.url empty).
func TestMQTTSinkDeliversARealHit(t *testing.T) {
	dir := t.TempDir()
	b := openMQTTBus(t, dir, "")
	sub := &subscriber{t: t}
	sub.connect(b.mqttAddr, natsbus.MQTTUser, b.subPass, "facewatch-test", false)
	sub.subscribe()

	embedded := natsbus.EmbeddedMQTTBroker(config.NATS{MQTT: config.NATSMQTT{Listen: b.mqttAddr}}, b.natsDir)
	if embedded.Username != natsbus.MQTTPublisherUser {
		t.Fatalf("EmbeddedMQTTBroker user = %q, want %q", embedded.Username, natsbus.MQTTPublisherUser)
	}
	s := openMQTTService(t, filepath.Join(dir, "data"), mqttSinkConfig(""), embedded)
	runService(t, s, b.alertJS)
	h, crop := makeHit(1, time.Now().Add(-time.Second))
	publishHit(t, b.matchJS, h, crop)

	waitFor(t, 15*time.Second, "the MQTT message", func() bool { return len(sub.ids()) == 1 })
	sub.mu.Lock()
	e, qos, topic := sub.events[0], sub.qos[0], sub.topics[0]
	sub.mu.Unlock()
	if want := "facewatch/alerts/" + h.Watchlist; topic != want {
		t.Errorf("MQTT topic = %q, want %q", topic, want)
	}
	if qos != 1 {
		t.Errorf("MQTT message QoS = %d, want 1", qos)
	}
	want := Event{Type: "alert", ID: 1, HitID: h.ID, Watchlist: h.Watchlist, WatchlistKind: h.WatchlistKind, Priority: h.Priority,
		Identity: h.Identity, IdentityName: h.IdentityName, Distance: h.Distance, Threshold: h.Threshold, Camera: h.Camera,
		Track: h.Track, Time: h.Time.UTC(), StoredAt: e.StoredAt, Model: testModel.Name, AlertURL: "/api/v1/alerts/1",
		CropURL: "/api/v1/alerts/1/crop", Incident: 1, IncidentURL: "/api/v1/incidents/1"}
	if e != want || e.StoredAt.IsZero() {
		t.Errorf("MQTT event = %+v, want %+v", e, want)
	}
	waitFor(t, 5*time.Second, "the delivered counter", func() bool {
		return testutil.ToFloat64(s.m.sinkDelivered.WithLabelValues("mqtt")) == 1
	})
}

// TestMQTTPersistentSessionGetsAlertsStoredWhileAway: a subscriber with a
// persistent session and a QoS 1 subscription (Home Assistant restarting)
// disconnects; the alerts stored meanwhile wait in the broker and arrive,
// every one, at QoS 1, when it reconnects with the same client id.
func TestMQTTPersistentSessionGetsAlertsStoredWhileAway(t *testing.T) {
	dir := t.TempDir()
	b := openMQTTBus(t, dir, "")
	sub := &subscriber{t: t}
	sub.connect(b.mqttAddr, natsbus.MQTTUser, b.subPass, "home-assistant", true)
	sub.subscribe()

	embedded := natsbus.EmbeddedMQTTBroker(config.NATS{MQTT: config.NATSMQTT{Listen: b.mqttAddr}}, b.natsDir)
	s := openMQTTService(t, filepath.Join(dir, "data"), mqttSinkConfig(""), embedded)
	runService(t, s, b.alertJS)
	base := time.Now().Add(-time.Minute)
	h, crop := makeHit(0, base)
	publishHit(t, b.matchJS, h, crop)
	waitFor(t, 15*time.Second, "alert 1 while connected", func() bool { return len(sub.ids()) == 1 })

	sub.client.Disconnect(100)
	const away = 5
	for i := 1; i <= away; i++ {
		h, crop := makeHit(i, base)
		publishHit(t, b.matchJS, h, crop)
	}
	// Delivered means the broker acknowledged each one (PUBACK).
	waitFor(t, 20*time.Second, "the sink's deliveries while the subscriber is away", func() bool {
		return testutil.ToFloat64(s.m.sinkDelivered.WithLabelValues("mqtt")) == 1+away
	})
	if got := sub.ids(); len(got) != 1 {
		t.Fatalf("subscriber got %v while disconnected", got)
	}

	sub.connect(b.mqttAddr, natsbus.MQTTUser, b.subPass, "home-assistant", true)
	waitFor(t, 20*time.Second, "the alerts stored while away", func() bool { return len(sub.ids()) >= 1+away })
	got := sub.ids()
	slices.Sort(got)
	if want := []int64{1, 2, 3, 4, 5, 6}; !slices.Equal(got, want) {
		t.Errorf("alert ids received = %v, want %v (each once)", got, want)
	}
	sub.mu.Lock()
	for i, q := range sub.qos {
		if q != 1 {
			t.Errorf("message %d (alert %d) came at QoS %d, want 1", i, sub.events[i].ID, q)
		}
	}
	sub.mu.Unlock()
}

// TestMQTTBrokerDownLosesNothing: the sink's broker (a separate embedded
// NATS server with an MQTT listener, reached by url, username and
// password_file like any external broker) goes down while alerts are
// stored. The sink counts failed attempts, keeps the alerts in its
// backlog, and delivers every one once the broker is back; a subscriber
// with a persistent session gets them all.
func TestMQTTBrokerDownLosesNothing(t *testing.T) {
	dir := t.TempDir()
	// The hits bus: the alert service's own NATS server.
	ns := startNATS(t, filepath.Join(dir, "js"))
	_, js := connectJS(t, ns.ClientURL())
	if err := natsbus.EnsureStreams(context.Background(), js, natsbus.Topology{}); err != nil {
		t.Fatal(err)
	}
	// The broker: its publisher password is written before it first
	// starts (the server keeps an existing one), as an operator would.
	brokerDir := filepath.Join(dir, "broker")
	creds := natsbus.DefaultCredsDir(filepath.Join(brokerDir, "nats"))
	if err := os.MkdirAll(creds, 0o700); err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(creds, "mqtt-publisher.password")
	if err := os.WriteFile(pwFile, []byte("publisher-password-for-the-test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	broker := openMQTTBus(t, brokerDir, "")
	addr := broker.mqttAddr
	sub := &subscriber{t: t}
	sub.connect(addr, natsbus.MQTTUser, broker.subPass, "home-assistant", true)
	sub.subscribe()

	cfg := mqttSinkConfig("tcp://" + addr)
	cfg.Sinks.MQTT.Username = natsbus.MQTTPublisherUser
	cfg.Sinks.MQTT.PasswordFile = pwFile
	s := openMQTTService(t, filepath.Join(dir, "data"), cfg, natsbus.MQTTBroker{})
	runService(t, s, js)
	base := time.Now().Add(-time.Minute)
	for i := range 2 {
		h, crop := makeHit(i, base)
		publishHit(t, js, h, crop)
	}
	waitFor(t, 15*time.Second, "2 alerts through the broker", func() bool { return len(sub.ids()) == 2 })
	waitFor(t, 5*time.Second, "2 deliveries counted", func() bool {
		return testutil.ToFloat64(s.m.sinkDelivered.WithLabelValues("mqtt")) == 2
	})

	// Down: three more are stored and not delivered.
	broker.bus.Close()
	for i := 2; i < 5; i++ {
		h, crop := makeHit(i, base)
		publishHit(t, js, h, crop)
	}
	waitFor(t, 10*time.Second, "5 alerts stored", func() bool { return countAlerts(t, s) == 5 })
	f0 := testutil.ToFloat64(s.m.sinkFailures.WithLabelValues("mqtt"))
	waitFor(t, 15*time.Second, "failed attempts", func() bool {
		return testutil.ToFloat64(s.m.sinkFailures.WithLabelValues("mqtt")) >= f0+2
	})
	if got := testutil.ToFloat64(s.m.sinkBacklog.WithLabelValues("mqtt")); got != 3 {
		t.Errorf("backlog with the broker down = %v, want 3", got)
	}
	if got := testutil.ToFloat64(s.m.sinkDelivered.WithLabelValues("mqtt")); got != 2 {
		t.Errorf("delivered with the broker down = %v, want 2", got)
	}

	// Back on the same address and store: the subscriber's session and
	// the sink both reconnect.
	openMQTTBus(t, brokerDir, addr)
	waitFor(t, 30*time.Second, "the 3 alerts kept while the broker was down", func() bool {
		return testutil.ToFloat64(s.m.sinkDelivered.WithLabelValues("mqtt")) == 5
	})
	// The backlog gauge is set when the batch ends, after the last
	// delivery is counted: wait for it rather than read it at once.
	waitFor(t, 10*time.Second, "the backlog back to 0", func() bool {
		return testutil.ToFloat64(s.m.sinkBacklog.WithLabelValues("mqtt")) == 0
	})
	sub.connect(addr, natsbus.MQTTUser, broker.subPass, "home-assistant", true)
	waitFor(t, 20*time.Second, "all 5 alerts at the subscriber", func() bool { return len(sub.ids()) >= 5 })
	got := sub.ids()
	slices.Sort(got)
	if want := []int64{1, 2, 3, 4, 5}; !slices.Equal(got, want) {
		t.Errorf("alert ids received = %v, want %v (each once)", got, want)
	}
}

// TestMQTTSinkTimesOutOnASilentBroker: a broker that accepts the TCP
// connection and never answers (hung; a plain listener stands in for it,
// since a real broker cannot be made to hang on demand) costs each attempt
// at most alert.sinks.mqtt.timeout: the attempts fail, are counted and
// retried, and the alert is delivered once a real broker answers on that
// address.
func TestMQTTSinkTimesOutOnASilentBroker(t *testing.T) {
	dir := t.TempDir()
	ns := startNATS(t, filepath.Join(dir, "js"))
	_, js := connectJS(t, ns.ClientURL())
	if err := natsbus.EnsureStreams(context.Background(), js, natsbus.Topology{}); err != nil {
		t.Fatal(err)
	}
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := silent.Addr().String()
	var held sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	held.Go(func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never answered
			mu.Unlock()
		}
	})
	brokerDir := filepath.Join(dir, "broker")
	creds := natsbus.DefaultCredsDir(filepath.Join(brokerDir, "nats"))
	if err := os.MkdirAll(creds, 0o700); err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(creds, "mqtt-publisher.password")
	if err := os.WriteFile(pwFile, []byte("publisher-password-for-the-test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := mqttSinkConfig("tcp://" + addr)
	cfg.Sinks.MQTT.Username = natsbus.MQTTPublisherUser
	cfg.Sinks.MQTT.PasswordFile = pwFile
	cfg.Sinks.MQTT.Timeout = 300 * time.Millisecond
	s := openMQTTService(t, filepath.Join(dir, "data"), cfg, natsbus.MQTTBroker{})
	runService(t, s, js)
	h, crop := makeHit(0, time.Now().Add(-time.Minute))
	publishHit(t, js, h, crop)
	waitFor(t, 20*time.Second, "timed-out attempts", func() bool {
		return testutil.ToFloat64(s.m.sinkFailures.WithLabelValues("mqtt")) >= 3
	})
	if d := testutil.ToFloat64(s.m.sinkDelivered.WithLabelValues("mqtt")); d != 0 {
		t.Errorf("delivered to a broker that never answered = %v, want 0", d)
	}

	silent.Close()
	mu.Lock()
	for _, c := range conns {
		c.Close()
	}
	mu.Unlock()
	held.Wait()
	openMQTTBus(t, brokerDir, addr)
	waitFor(t, 20*time.Second, "the delivery once a broker answers", func() bool {
		return testutil.ToFloat64(s.m.sinkDelivered.WithLabelValues("mqtt")) == 1
	})
}

// TestMQTTSinkOverTLS: an ssl:// broker that requires client
// certificates (the embedded server's listener with nats.tls and a CA:
// mutual TLS), reached with tls.ca_file, cert_file and key_file.
func TestMQTTSinkOverTLS(t *testing.T) {
	dir := t.TempDir()
	ns := startNATS(t, filepath.Join(dir, "js"))
	_, js := connectJS(t, ns.ClientURL())
	if err := natsbus.EnsureStreams(context.Background(), js, natsbus.Topology{}); err != nil {
		t.Fatal(err)
	}
	ca := testcert.NewCA(t, dir)
	srvCert, srvKey := ca.Issue(t, testcert.Leaf{Name: "broker"})
	cliCert, cliKey := ca.Issue(t, testcert.Leaf{Name: "facewatch", Client: true})
	natsDir := filepath.Join(dir, "broker", "nats")
	creds := natsbus.DefaultCredsDir(natsDir)
	if err := os.MkdirAll(creds, 0o700); err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(creds, "mqtt-publisher.password")
	if err := os.WriteFile(pwFile, []byte("publisher-password-for-the-test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	bus, err := natsbus.Open(context.Background(), config.NATS{MQTT: config.NATSMQTT{Listen: addr},
		TLS: config.TLSFiles{CAFile: ca.File, CertFile: srvCert, KeyFile: srvKey}}, natsDir,
		natsbus.Options{PermissionOptions: natsbus.PermissionOptions{AlertSubjectPrefix: testPrefix}})
	if err != nil {
		t.Fatalf("natsbus.Open with TLS and nats.mqtt.listen %s = %v", addr, err)
	}
	t.Cleanup(bus.Close)
	subPass, err := natsbus.MQTTPassword(creds)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := mqttTLS(config.TLSFiles{CAFile: ca.File, CertFile: cliCert, KeyFile: cliKey})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan mqtt.Message, 4)
	sub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("ssl://" + addr).SetClientID("tls-subscriber").SetTLSConfig(tc).
		SetUsername(natsbus.MQTTUser).SetPassword(subPass).SetAutoReconnect(false).SetConnectTimeout(10 * time.Second))
	if tok := sub.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		t.Fatalf("MQTT connect over TLS to %s: %v", addr, tok.Error())
	}
	defer sub.Disconnect(100)
	if tok := sub.Subscribe("facewatch/alerts/#", 1, func(_ mqtt.Client, m mqtt.Message) { got <- m }); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		t.Fatalf("MQTT subscribe: %v", tok.Error())
	}

	cfg := mqttSinkConfig("ssl://" + addr)
	cfg.Sinks.MQTT.Username = natsbus.MQTTPublisherUser
	cfg.Sinks.MQTT.PasswordFile = pwFile
	cfg.Sinks.MQTT.TLS = config.TLSFiles{CAFile: ca.File, CertFile: cliCert, KeyFile: cliKey}
	s := openMQTTService(t, filepath.Join(dir, "data"), cfg, natsbus.MQTTBroker{})
	runService(t, s, js)
	h, crop := makeHit(0, time.Now().Add(-time.Minute))
	publishHit(t, js, h, crop)
	select {
	case m := <-got:
		var e Event
		if err := json.Unmarshal(m.Payload(), &e); err != nil || e.HitID != h.ID || m.Qos() != 1 {
			t.Errorf("MQTT over TLS got %q at QoS %d (%v), want alert of hit %s at QoS 1", m.Payload(), m.Qos(), err, h.ID)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no alert over TLS within 20s (sink failures %v)", testutil.ToFloat64(s.m.sinkFailures.WithLabelValues("mqtt")))
	}
}

// TestMQTTSinkRefusesAMissingPasswordFile: a password_file that cannot be
// read stops the start with the file named.
func TestMQTTSinkRefusesAMissingPasswordFile(t *testing.T) {
	cfg := mqttSinkConfig("tcp://127.0.0.1:1883")
	cfg.Sinks.MQTT.Username = "facewatch"
	cfg.Sinks.MQTT.PasswordFile = filepath.Join(t.TempDir(), "missing")
	_, err := Open(context.Background(), t.TempDir(), cfg, Options{Registry: prometheus.NewRegistry()})
	if err == nil {
		t.Fatal("Open with a missing mqtt password_file = nil error, want one")
	}
	t.Log(err)
}

func TestMQTTSubject(t *testing.T) {
	for _, c := range []struct{ prefix, list, want, topic string }{
		{"facewatch.alerts", "wanted", "facewatch.alerts.wanted", "facewatch/alerts/wanted"},
		{"facewatch.alerts", "a.b*c>d/e+f#g h", "facewatch.alerts.a_b_c_d_e_f_g_h", "facewatch/alerts/a_b_c_d_e_f_g_h"},
		{"x", "", "x._", "x/_"},
	} {
		if got := MQTTSubject(c.prefix, c.list); got != c.want {
			t.Errorf("MQTTSubject(%q, %q) = %q, want %q", c.prefix, c.list, got, c.want)
		}
		if got := MQTTTopic(c.prefix, c.list); got != c.topic {
			t.Errorf("MQTTTopic(%q, %q) = %q, want %q", c.prefix, c.list, got, c.topic)
		}
	}
}
