package natsbus

import (
	"context"
	"net"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/facewatch/facewatch/internal/config"
)

// TestMQTTListener: with nats.mqtt.listen set, a real MQTT client on
// loopback receives what NATS publishes, '.' mapped to '/'.
func TestMQTTListener(t *testing.T) {
	ctx := ctxT(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
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
