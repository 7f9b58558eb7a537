package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// mqttSink publishes each alert's Event as JSON on the NATS subject
// <prefix>.<watchlist>. The NATS server's MQTT listener (nats.mqtt.listen)
// shows it to MQTT clients as the topic <prefix with '/'>/<watchlist>:
// facewatch.alerts.wanted is facewatch/alerts/wanted. MQTT subscribers
// get it at QoS 0, not retained: a subscriber that is away misses it (the
// history and the webhook sink keep it).
type mqttSink struct {
	prefix string
	nc     *atomic.Pointer[nats.Conn]
}

func openMQTTSink(env sinkEnv) (Sink, sinkRetry, error) {
	c := env.cfg.MQTT
	if !c.Enabled {
		return nil, sinkRetry{}, nil
	}
	return &mqttSink{prefix: c.SubjectPrefix, nc: env.nc}, sinkRetry{min: 100 * time.Millisecond, max: 10 * time.Second}, nil
}

// MQTTSubject is the NATS subject an alert of watchlist goes to under
// prefix; characters NATS or MQTT give a meaning to become '_'.
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

// Deliver publishes a and waits until the server has it.
func (m *mqttSink) Deliver(ctx context.Context, a Alert) error {
	nc := m.nc.Load()
	if nc == nil {
		return errors.New("publishing alert to MQTT: no NATS connection yet")
	}
	body, err := json.Marshal(EventOf(a))
	if err != nil {
		return fmt.Errorf("encoding alert %d: %w", a.ID, err)
	}
	subj := MQTTSubject(m.prefix, a.Watchlist)
	if err := nc.Publish(subj, body); err != nil {
		return fmt.Errorf("publishing alert %d on %s: %w", a.ID, subj, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("publishing alert %d on %s: %w", a.ID, subj, err)
	}
	return nil
}
