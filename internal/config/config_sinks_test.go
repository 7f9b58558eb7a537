package config

import (
	"strings"
	"testing"
)

func TestSinksValidation(t *testing.T) {
	mq := "alert:\n  sinks:\n    mqtt:\n      enabled: true\n"
	hook := "alert:\n  sinks:\n    webhook:\n      enabled: true\n      url: https://hooks.example/fw\n      secret_env: FW_HOOK\n"
	cases := []struct {
		name string
		yaml string
		want string // substring of the error; "" for valid
	}{
		{"off by default", "", ""},
		{"webhook", hook, ""},
		{"webhook off is not checked", "alert:\n  sinks:\n    webhook:\n      url: ftp://x\n", ""},
		{"webhook bad url", strings.Replace(hook, "https://hooks.example/fw", "ftp://x", 1), "alert.sinks.webhook.url"},
		{"webhook no secret", strings.Replace(hook, "      secret_env: FW_HOOK\n", "", 1), "alert.sinks.webhook.secret_file, secret_env"},
		{"webhook two secrets", hook + "      secret_file: /etc/fw/hook\n", "alert.sinks.webhook.secret_file, secret_env"},
		{"webhook zero timeout", hook + "      timeout: 0s\n", "alert.sinks.webhook.timeout"},
		{"webhook backoff inverted", hook + "      backoff_min: 10s\n      backoff_max: 1s\n", "alert.sinks.webhook.backoff_max"},
		{"webhook unknown key", hook + "      secret: hunter2\n", "secret"},
		{"mqtt embedded", "nats:\n  mqtt:\n    listen: 127.0.0.1:1883\n" + mq, ""},
		{"mqtt embedded no host", "nats:\n  mqtt:\n    listen: :1883\n" + mq, ""},
		{"mqtt embedded without listener", mq, "alert.sinks.mqtt.url: empty"},
		{"mqtt embedded on port 0", "nats:\n  mqtt:\n    listen: 127.0.0.1:0\n" + mq, "no fixed port"},
		{"mqtt embedded with nats tls", "nats:\n  tls: {cert_file: c.pem, key_file: k.pem}\n  mqtt:\n    listen: 127.0.0.1:1883\n" + mq, "speaks TLS"},
		{"mqtt embedded with username", "nats:\n  mqtt:\n    listen: 127.0.0.1:1883\n" + mq + "      username: u\n", "alert.sinks.mqtt.url: empty"},
		{"mqtt url", mq + "      url: tcp://broker:1883\n", ""},
		{"mqtt url ssl with login", mq + "      url: ssl://broker:8883\n      username: fw\n      password_file: /etc/fw/mqtt\n      tls: {ca_file: ca.pem}\n", ""},
		{"mqtt url without port", mq + "      url: tcp://broker\n", ""},
		{"mqtt url bad scheme", mq + "      url: http://broker:1883\n", "alert.sinks.mqtt.url"},
		{"mqtt url mqtt scheme", mq + "      url: mqtt://broker:1883\n", "alert.sinks.mqtt.url"},
		{"mqtt url not a url", mq + "      url: broker:1883\n", "alert.sinks.mqtt.url"},
		{"mqtt url with credentials", mq + "      url: tcp://u:secret@broker:1883\n", "carries credentials"},
		{"mqtt url with path", mq + "      url: tcp://broker:1883/x\n", "alert.sinks.mqtt.url"},
		{"mqtt url bad port", mq + "      url: tcp://broker:0\n", "alert.sinks.mqtt.url: port"},
		{"mqtt tls with tcp", mq + "      url: tcp://broker:1883\n      tls: {ca_file: ca.pem}\n", "alert.sinks.mqtt.tls"},
		{"mqtt tls cert without key", mq + "      url: ssl://broker:8883\n      tls: {cert_file: c.pem}\n", "alert.sinks.mqtt.tls.cert_file"},
		{"mqtt password without user", mq + "      url: tcp://broker:1883\n      password_file: /etc/fw/mqtt\n", "alert.sinks.mqtt.username"},
		{"mqtt bad client id", mq + "      url: tcp://broker:1883\n      client_id: a/b\n", "alert.sinks.mqtt.client_id"},
		{"mqtt zero timeout", mq + "      url: tcp://broker:1883\n      timeout: 0s\n", "alert.sinks.mqtt.timeout"},
		{"mqtt backoff inverted", mq + "      url: tcp://broker:1883\n      backoff_min: 10s\n      backoff_max: 1s\n", "alert.sinks.mqtt.backoff_max"},
		{"mqtt password in config", mq + "      url: tcp://broker:1883\n      password: hunter2\n", "password"},
		{"mqtt off is not checked", "alert:\n  sinks:\n    mqtt:\n      url: ftp://x\n", ""},
		{"mqtt prefix with wildcard", mq + "      url: tcp://b:1883\n      subject_prefix: a.*\n", "alert.sinks.mqtt.subject_prefix"},
		{"mqtt prefix with slash", mq + "      url: tcp://b:1883\n      subject_prefix: a/b\n", "alert.sinks.mqtt.subject_prefix"},
		{"nats mqtt listen", "nats:\n  mqtt:\n    listen: 127.0.0.1:1883\n", ""},
		{"nats mqtt listen no host", "nats:\n  mqtt:\n    listen: :1883\n", ""},
		{"nats mqtt listen bad", "nats:\n  mqtt:\n    listen: nohost\n", "nats.mqtt.listen"},
		{"nats mqtt listen bad port", "nats:\n  mqtt:\n    listen: 127.0.0.1:99999\n", "nats.mqtt.listen"},
		{"nats mqtt with external url", "nats:\n  url: nats://n:4222\n  mqtt:\n    listen: 127.0.0.1:1883\n", "nats.mqtt.listen"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Parse([]byte(c.yaml))
			if c.want == "" {
				if err != nil {
					t.Fatalf("Parse(%q) = %v, want ok", c.yaml, err)
				}
				if c.name == "off by default" && (cfg.Alert.Sinks.Webhook.Enabled || cfg.Alert.Sinks.MQTT.Enabled || cfg.NATS.MQTT.Listen != "" ||
					cfg.Alert.Sinks.Webhook.Timeout <= 0 || cfg.Alert.Sinks.MQTT.SubjectPrefix != "facewatch.alerts") {
					t.Errorf("Parse(%q).Alert.Sinks = %+v, want both off with defaults filled", c.yaml, cfg.Alert.Sinks)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Parse(%q) = %v, want an error naming %s", c.yaml, err, c.want)
			}
		})
	}
}
