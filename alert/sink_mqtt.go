package alert

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/natsbus"
)

// mqttSink publishes each alert's Event as JSON to an MQTT broker, as an
// MQTT client, at QoS 1 and not retained, on the topic
// <prefix with '/'>/<watchlist> (facewatch/alerts/wanted). An alert counts
// as delivered only when the broker answered PUBACK: a broker that is down
// or slow is a failed attempt, retried by the sink loop from the history.
// A subscriber with a persistent session (clean session off) and a QoS 1
// subscription gets the alerts published while it was away when it comes
// back; the broker (nats-server's MQTT support included) keeps them.
//
// The broker is alert.sinks.mqtt.url, or, when that is empty, the
// embedded NATS server's MQTT listener, logged in as its publisher user.
type mqttSink struct {
	prefix   string
	broker   natsbus.MQTTBroker
	clientID string
	timeout  time.Duration
	tls      *tls.Config // nil for tcp://

	mu sync.Mutex
	// client is the connected client, nil until the first delivery and
	// after a failed one (the next attempt connects afresh). Guarded by mu.
	client mqtt.Client
}

func openMQTTSink(env sinkEnv) (Sink, sinkRetry, error) {
	c := env.cfg.MQTT
	if !c.Enabled {
		return nil, sinkRetry{}, nil
	}
	m := &mqttSink{prefix: c.SubjectPrefix, clientID: c.ClientID, timeout: c.Timeout,
		broker: natsbus.MQTTBroker{URL: c.URL, Username: c.Username, PasswordFile: c.PasswordFile}}
	if c.URL == "" {
		m.broker = env.embeddedMQTT
		if m.broker.URL == "" {
			return nil, sinkRetry{}, errors.New("alert.sinks.mqtt.url is empty and the embedded NATS server has no MQTT listener with a fixed port (nats.mqtt.listen): no broker to publish to")
		}
	} else if c.PasswordFile != "" {
		// Read now so that a wrong path stops the start, not every delivery.
		if _, err := readPasswordFile(c.PasswordFile); err != nil {
			return nil, sinkRetry{}, err
		}
	}
	if strings.HasPrefix(m.broker.URL, "ssl://") {
		tc, err := mqttTLS(c.TLS)
		if err != nil {
			return nil, sinkRetry{}, err
		}
		m.tls = tc
	}
	env.log.Info("mqtt alert sink", "broker", config.Redact(m.broker.URL), "user", m.broker.Username, "topic", strings.ReplaceAll(c.SubjectPrefix, ".", "/")+"/<watchlist>")
	return m, sinkRetry{min: c.BackoffMin, max: c.BackoffMax}, nil
}

// readPasswordFile reads a broker password; errors name the file, never
// its content.
func readPasswordFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading alert.sinks.mqtt.password_file: %w", err)
	}
	pw := strings.TrimSpace(string(b))
	if pw == "" {
		return "", fmt.Errorf("alert.sinks.mqtt.password_file %s is empty", path)
	}
	return pw, nil
}

// mqttTLS is the client TLS configuration for an ssl:// broker.
func mqttTLS(f config.TLSFiles) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading alert.sinks.mqtt.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("alert.sinks.mqtt.tls.ca_file %s holds no PEM certificate", f.CAFile)
		}
		tc.RootCAs = pool
	}
	if f.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading alert.sinks.mqtt.tls cert_file and key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// MQTTSubject is the NATS subject an alert of watchlist goes to under
// prefix on the embedded server; characters NATS or MQTT give a meaning to
// become '_'.
func MQTTSubject(prefix, watchlist string) string {
	tok := strings.Map(func(r rune) rune {
		switch r {
		case '.', '*', '>', '/', '+', '#', ' ', '\t', '\r', '\n':
			return '_'
		}
		return r
	}, watchlist)
	if tok == "" {
		tok = "_"
	}
	return prefix + "." + tok
}

// MQTTTopic is the MQTT topic an alert of watchlist is published on: its
// MQTTSubject with '/' for '.' (the mapping nats-server's MQTT support
// makes), so any broker shows the same topic.
func MQTTTopic(prefix, watchlist string) string {
	return strings.ReplaceAll(MQTTSubject(prefix, watchlist), ".", "/")
}

// connect returns the connected client, connecting when there is none.
func (m *mqttSink) connect(ctx context.Context) (mqtt.Client, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.client != nil && m.client.IsConnectionOpen() {
		return m.client, nil
	}
	m.closeLocked()
	opts := mqtt.NewClientOptions().AddBroker(m.broker.URL).SetClientID(m.clientID).
		// The history is the sink's queue and the cursor its session: the
		// client keeps nothing between connections and never reconnects
		// by itself; the sink loop retries.
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(m.timeout).SetWriteTimeout(m.timeout).SetKeepAlive(30 * time.Second).SetPingTimeout(m.timeout)
	if m.broker.Username != "" {
		opts.SetUsername(m.broker.Username)
	}
	if m.broker.PasswordFile != "" {
		pw, err := readPasswordFile(m.broker.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("connecting to mqtt broker %s: %w", config.Redact(m.broker.URL), err)
		}
		opts.SetPassword(pw)
	}
	if m.tls != nil {
		opts.SetTLSConfig(m.tls)
	}
	c := mqtt.NewClient(opts)
	if err := m.wait(ctx, c.Connect(), "connecting"); err != nil {
		c.Disconnect(0)
		return nil, fmt.Errorf("connecting to mqtt broker %s as %q: %w", config.Redact(m.broker.URL), m.broker.Username, err)
	}
	m.client = c
	return c, nil
}

// wait waits for tok, at most m.timeout and until ctx ends.
func (m *mqttSink) wait(ctx context.Context, tok mqtt.Token, doing string) error {
	t := time.NewTimer(m.timeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("%s: no answer from the broker within %v", doing, m.timeout)
	}
}

// Deliver publishes a at QoS 1 and waits for the broker's PUBACK.
func (m *mqttSink) Deliver(ctx context.Context, a Alert) error {
	body, err := json.Marshal(EventOf(a))
	if err != nil {
		return fmt.Errorf("encoding alert %d: %w", a.ID, err)
	}
	c, err := m.connect(ctx)
	if err != nil {
		return fmt.Errorf("publishing alert %d: %w", a.ID, err)
	}
	topic := MQTTTopic(m.prefix, a.Watchlist)
	if err := m.wait(ctx, c.Publish(topic, 1, false, body), "waiting for PUBACK"); err != nil {
		// A connection that lost a PUBACK is not trusted again.
		m.Close()
		return fmt.Errorf("publishing alert %d on mqtt topic %s: %w", a.ID, topic, err)
	}
	return nil
}

// Close disconnects from the broker; a later Deliver connects again.
func (m *mqttSink) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closeLocked()
}

func (m *mqttSink) closeLocked() {
	if m.client != nil {
		m.client.Disconnect(250)
		m.client = nil
	}
}
