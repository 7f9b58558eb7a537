package main

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/natsbus"
)

// doctor's checks of the alert sinks (the MQTT broker and its login).

// checkMQTTSink reports where the MQTT alert sink publishes and whether
// its password file can be read; dial adds the broker's reachability.
func checkMQTTSink(cfg config.Config, dial func(name, hostport string)) []check {
	m := cfg.Alert.Sinks.MQTT
	if !m.Enabled {
		return nil
	}
	const name = "alert mqtt sink"
	if m.URL == "" {
		return []check{{name, "info", fmt.Sprintf("publishes to the embedded MQTT listener %s as %s (QoS 1)", cfg.NATS.MQTT.Listen, natsbus.MQTTPublisherUser)}}
	}
	var out []check
	if m.PasswordFile != "" {
		b, err := os.ReadFile(m.PasswordFile)
		switch {
		case err != nil:
			out = append(out, check{name, "FAIL", fmt.Sprintf("cannot read alert.sinks.mqtt.password_file: %v", err)})
		case strings.TrimSpace(string(b)) == "":
			out = append(out, check{name, "FAIL", fmt.Sprintf("alert.sinks.mqtt.password_file %s is empty", m.PasswordFile)})
		}
	}
	if u, err := url.Parse(m.URL); err == nil {
		def := "1883"
		if u.Scheme == "ssl" {
			def = "8883"
		}
		dial("alert mqtt broker", hostWithPort(u, def))
	}
	return out
}

func hostWithPort(u *url.URL, def string) string {
	if u.Port() != "" {
		return u.Host[strings.LastIndex(u.Host, "@")+1:]
	}
	return net.JoinHostPort(u.Hostname(), def)
}
