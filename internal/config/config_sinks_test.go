package config

import (
	"strings"
	"testing"
)

func TestSinksValidation(t *testing.T) {
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
		{"mqtt", "alert:\n  sinks:\n    mqtt:\n      enabled: true\n", ""},
		{"mqtt prefix with wildcard", "alert:\n  sinks:\n    mqtt:\n      enabled: true\n      subject_prefix: a.*\n", "alert.sinks.mqtt.subject_prefix"},
		{"mqtt prefix with slash", "alert:\n  sinks:\n    mqtt:\n      enabled: true\n      subject_prefix: a/b\n", "alert.sinks.mqtt.subject_prefix"},
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
