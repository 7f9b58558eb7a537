package alert

import (
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/natsbus"
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

// TestMQTTSinkDeliversARealHit runs the embedded NATS server with its
// MQTT listener (nats.mqtt.listen), subscribes a real MQTT client to it,
// and checks that a hit consumed by the alert service arrives as the
// alert's JSON on facewatch/alerts/<watchlist>.
func TestMQTTSinkDeliversARealHit(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	mqttAddr := freePort(t)
	bus, err := natsbus.Open(ctx, config.NATS{MQTT: config.NATSMQTT{Listen: mqttAddr}}, filepath.Join(dir, "nats"), natsbus.Options{
		PermissionOptions: natsbus.PermissionOptions{AlertSubjectPrefix: "facewatch.alerts"}})
	if err != nil {
		t.Fatalf("natsbus.Open with nats.mqtt.listen %s = %v", mqttAddr, err)
	}
	defer bus.Close()
	if err := natsbus.EnsureStreams(ctx, bus.JS, natsbus.Topology{}); err != nil {
		t.Fatal(err)
	}

	// The service and the matcher use their own identities, as in
	// `facewatch run`: the alert role may consume hits and publish on the
	// MQTT subject, the match role may publish hits.
	alertBus, err := bus.As(ctx, natsbus.RoleAlert, "alert")
	if err != nil {
		t.Fatal(err)
	}
	defer alertBus.Close()
	matchBus, err := bus.As(ctx, natsbus.RoleMatch, "match")
	if err != nil {
		t.Fatal(err)
	}
	defer matchBus.Close()
	pw, err := natsbus.MQTTPassword(natsbus.DefaultCredsDir(filepath.Join(dir, "nats")))
	if err != nil {
		t.Fatal(err)
	}

	got := make(chan mqtt.Message, 10)
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + mqttAddr).SetClientID("facewatch-test").SetUsername(natsbus.MQTTUser).SetPassword(pw).
		SetConnectTimeout(5 * time.Second).SetAutoReconnect(false)
	client := mqtt.NewClient(opts)
	if tok := client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("MQTT connect to %s: %v", mqttAddr, tok.Error())
	}
	defer client.Disconnect(250)
	if tok := client.Subscribe("facewatch/alerts/#", 0, func(_ mqtt.Client, m mqtt.Message) { got <- m }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("MQTT subscribe: %v", tok.Error())
	}

	cfg := testConfig()
	cfg.Sinks.MQTT = config.MQTTSink{Enabled: true, SubjectPrefix: "facewatch.alerts"}
	s := openWithConfig(t, filepath.Join(dir, "data"), cfg)
	runService(t, s, alertBus.JS)
	h, crop := makeHit(1, time.Now().Add(-time.Second))
	publishHit(t, matchBus.JS, h, crop)

	select {
	case m := <-got:
		if want := "facewatch/alerts/" + h.Watchlist; m.Topic() != want {
			t.Errorf("MQTT topic = %q, want %q", m.Topic(), want)
		}
		var e Event
		if err := json.Unmarshal(m.Payload(), &e); err != nil {
			t.Fatalf("MQTT payload %q: %v", m.Payload(), err)
		}
		if e.Type != "alert" || e.ID != 1 || e.HitID != h.ID || e.Identity != h.Identity || e.Camera != h.Camera || e.Distance != h.Distance {
			t.Errorf("MQTT event = %+v, want alert 1 of hit %s", e, h.ID)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no MQTT message within 15s")
	}
	waitFor(t, 5*time.Second, "the delivered counter", func() bool {
		return testutil.ToFloat64(s.m.sinkDelivered.WithLabelValues("mqtt")) == 1
	})
}

func TestMQTTSubject(t *testing.T) {
	for _, c := range []struct{ prefix, list, want string }{
		{"facewatch.alerts", "wanted", "facewatch.alerts.wanted"},
		{"facewatch.alerts", "a.b*c>d/e+f#g h", "facewatch.alerts.a_b_c_d_e_f_g_h"},
		{"x", "", "x._"},
	} {
		if got := MQTTSubject(c.prefix, c.list); got != c.want {
			t.Errorf("MQTTSubject(%q, %q) = %q, want %q", c.prefix, c.list, got, c.want)
		}
	}
}
