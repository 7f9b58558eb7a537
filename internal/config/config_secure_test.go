package config

import (
	"strings"
	"testing"
)

// TestSecurityKeys: the NATS and HTTPS keys come in usable sets, and an
// embedded server is never let listen beyond loopback without TLS.
func TestSecurityKeys(t *testing.T) {
	cases := []struct {
		name, yaml, err string // err "" means valid
	}{
		{"in-process", "nats: {}\n", ""},
		{"loopback", "nats: {listen: \"127.0.0.1:4222\"}\n", ""},
		{"localhost", "nats: {listen: \"localhost:4222\"}\n", ""},
		{"ipv6 loopback", "nats: {listen: \"[::1]:4222\"}\n", ""},
		{"every interface", "nats: {listen: \"0.0.0.0:4222\"}\n", `nats.listen: "0.0.0.0:4222" is not a loopback address and nats.tls has no cert_file`},
		{"empty host", "nats: {listen: \":4222\"}\n", `nats.listen: ":4222" is not a loopback address`},
		{"lan address", "nats: {listen: \"192.0.2.1:4222\"}\n", `nats.listen: "192.0.2.1:4222" is not a loopback address`},
		{"every interface with tls", "nats: {listen: \"0.0.0.0:4222\", tls: {cert_file: c.pem, key_file: k.pem}}\n", ""},
		{"mqtt beyond loopback", "nats: {mqtt: {listen: \"0.0.0.0:1883\"}}\n", `nats.mqtt.listen: "0.0.0.0:1883" is not a loopback address`},
		{"external server, listen ignored", "nats: {url: \"tls://nats.example:4222\", listen: \"0.0.0.0:4222\"}\n", ""},
		{"nats cert without key", "nats: {tls: {cert_file: c.pem}}\n", "nats.tls.cert_file, key_file: set both or neither"},
		{"nats ca only (client)", "nats: {url: \"tls://h:4222\", tls: {ca_file: ca.pem}}\n", ""},
		{"https key without cert", "alert: {tls: {key_file: k.pem}}\n", "alert.tls.cert_file, key_file: set both or neither"},
		{"redirect without https", "alert: {tls: {redirect_listen: \":80\"}}\n", "alert.tls.redirect_listen: only with cert_file and key_file"},
		{"negative hsts", "alert: {tls: {cert_file: c, key_file: k, hsts_max_age: -1s}}\n", "alert.tls.hsts_max_age"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml))
			switch {
			case c.err == "" && err != nil:
				t.Errorf("Parse(%q) = %v, want valid", c.yaml, err)
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Errorf("Parse(%q) = %v, want an error containing %q", c.yaml, err, c.err)
			}
		})
	}
	cfg, err := Parse([]byte("cameras:\n  - id: a\n    url: rtsps://cam/s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cameras[0].TLSInsecureSkipVerify {
		t.Error("cameras[0].tls_insecure_skip_verify defaults to true; certificate verification must be on by default")
	}
}
