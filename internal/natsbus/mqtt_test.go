package natsbus

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/facewatch/facewatch/internal/config"
)

// TestMQTTListener: with nats.mqtt.listen set, a real MQTT client on
// loopback receives what NATS publishes, '.' mapped to '/'.
func TestMQTTListener(t *testing.T) {
	ctx := ctxT(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	dir := t.TempDir()
	b, err := Open(ctx, config.NATS{MQTT: config.NATSMQTT{Listen: addr}}, dir, Options{PermissionOptions: PermissionOptions{AlertSubjectPrefix: "facewatch.test"}})
	if err != nil {
		t.Fatalf("Open(mqtt.listen %s) = %v", addr, err)
	}
	defer b.Close()
	pw, err := MQTTPassword(DefaultCredsDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	anon := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("natsbus-anon").SetAutoReconnect(false))
	if tok := anon.Connect(); tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
		anon.Disconnect(0)
		t.Fatal("MQTT connect without the password succeeded; want it refused")
	}
	client := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("natsbus-test").SetAutoReconnect(false).
		SetUsername(MQTTUser).SetPassword(pw))
	if tok := client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("MQTT connect to %s: %v", addr, tok.Error())
	}
	defer client.Disconnect(250)
	got := make(chan mqtt.Message, 1)
	if tok := client.Subscribe("facewatch/test/+", 0, func(_ mqtt.Client, m mqtt.Message) { got <- m }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("MQTT subscribe: %v", tok.Error())
	}
	if err := b.Conn.Publish("facewatch.test.one", []byte(`{"x":1}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m.Topic() != "facewatch/test/one" || string(m.Payload()) != `{"x":1}` {
			t.Errorf("MQTT got %s %q, want facewatch/test/one {\"x\":1}", m.Topic(), m.Payload())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no MQTT message within 10s")
	}
}

func TestMQTTListenerRefusesABadAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close() // the port stays taken
	for _, bad := range []string{"nohost", "127.0.0.1:x", ln.Addr().String()} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		b, err := Open(ctx, config.NATS{MQTT: config.NATSMQTT{Listen: bad}}, t.TempDir(), Options{})
		cancel()
		if err == nil {
			b.Close()
			t.Errorf("Open(mqtt.listen %q) = nil error, want one", bad)
		}
	}
}

// mqttConnect connects a real MQTT client to addr as user.
func mqttConnect(t *testing.T, addr, id, user, pass string) mqtt.Client {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetAutoReconnect(false).
		SetConnectTimeout(10 * time.Second).SetUsername(user).SetPassword(pass))
	if tok := c.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		t.Fatalf("MQTT connect to %s as %s: %v", addr, user, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// TestMQTTPermissions: on the embedded MQTT listener, subscribers
// (MQTTUser) cannot publish on the alert topics, and the alert service's
// publisher (MQTTPublisherUser) can publish only under the alert prefix
// and subscribe to nothing. The server acknowledges a QoS 1 publish it
// drops for lack of permission, so what counts is what arrives: a forged
// message published before a real one would arrive first.
func TestMQTTPermissions(t *testing.T) {
	ctx := ctxT(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	dir := t.TempDir()
	cfg := config.NATS{MQTT: config.NATSMQTT{Listen: addr}}
	b, err := Open(ctx, cfg, dir, Options{PermissionOptions: PermissionOptions{AlertSubjectPrefix: "facewatch.alerts"}})
	if err != nil {
		t.Fatalf("Open(mqtt.listen %s) = %v", addr, err)
	}
	defer b.Close()
	subPass, err := MQTTPassword(DefaultCredsDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	broker := EmbeddedMQTTBroker(cfg, dir)
	if broker.URL != "tcp://"+addr || broker.Username != MQTTPublisherUser {
		t.Fatalf("EmbeddedMQTTBroker = %+v, want tcp://%s as %s", broker, addr, MQTTPublisherUser)
	}
	raw, err := os.ReadFile(broker.PasswordFile)
	if err != nil {
		t.Fatalf("reading the publisher password the server generated: %v", err)
	}
	pubPass := strings.TrimSpace(string(raw))
	if pubPass == "" || pubPass == subPass {
		t.Fatalf("publisher password %q: want one of its own", pubPass)
	}
	if fi, err := os.Stat(broker.PasswordFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("publisher password file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}

	// Wrong password: refused.
	bad := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("bad").SetAutoReconnect(false).
		SetUsername(MQTTPublisherUser).SetPassword(subPass))
	if tok := bad.Connect(); tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
		bad.Disconnect(0)
		t.Fatal("MQTT connect as the publisher with the subscriber's password succeeded; want it refused")
	}

	got := make(chan mqtt.Message, 10)
	observer := mqttConnect(t, addr, "observer", MQTTUser, subPass)
	if tok := observer.Subscribe("facewatch/alerts/#", 1, func(_ mqtt.Client, m mqtt.Message) { got <- m }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("MQTT subscribe: %v", tok.Error())
	}
	// Outside the prefix, seen on NATS (MQTT subscribers may not look there).
	outside, err := b.Conn.SubscribeSync("other.>")
	if err != nil {
		t.Fatal(err)
	}
	inside, err := b.Conn.SubscribeSync("facewatch.alerts.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Conn.Flush(); err != nil {
		t.Fatal(err)
	}

	publish := func(c mqtt.Client, topic, body string) {
		t.Helper()
		if tok := c.Publish(topic, 1, false, body); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("MQTT publish on %s: no PUBACK: %v", topic, tok.Error())
		}
	}
	forger := mqttConnect(t, addr, "forger", MQTTUser, subPass)
	publish(forger, "facewatch/alerts/wanted", "forged")
	publisher := mqttConnect(t, addr, "facewatch-alerts", MQTTPublisherUser, pubPass)
	publish(publisher, "other/topic", "outside")
	if tok := publisher.Subscribe("facewatch/alerts/#", 1, nil); tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
		if res := tok.(*mqtt.SubscribeToken).Result(); res["facewatch/alerts/#"] != 0x80 {
			t.Errorf("publisher subscribe result = %v, want refused (0x80)", res)
		}
	}
	publish(publisher, "facewatch/alerts/wanted", "real")

	select {
	case m := <-got:
		if string(m.Payload()) != "real" || m.Qos() != 1 {
			t.Errorf("subscriber got %q at QoS %d first, want the publisher's \"real\" at QoS 1 (the subscriber's forged publish must be dropped)", m.Payload(), m.Qos())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the publisher's message did not reach the subscriber within 15s")
	}
	if m, err := inside.NextMsg(10 * time.Second); err != nil || string(m.Data) != "real" {
		t.Errorf("first NATS message under the prefix = %v, %v; want \"real\"", m, err)
	}
	if m, err := outside.NextMsg(0); err == nil {
		t.Errorf("the publisher published %q on %s, outside the alert prefix", m.Data, m.Subject)
	}
}
