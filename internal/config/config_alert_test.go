package config

import (
	"strings"
	"testing"
)

func TestAlertSectionValidation(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		want string // substring of the error; "" for valid
	}{
		{"defaults", "", ""},
		{"all set", "alert:\n  listen: 0.0.0.0:9000\n  retention: 720h\n  sweep_interval: 30s\n  export_limit: 500\n  consumer: alert-b\n", ""},
		{"empty listen", "alert:\n  listen: \"\"\n", "alert.listen"},
		{"zero retention", "alert:\n  retention: 0s\n", "alert.retention"},
		{"negative unmatched", "alert:\n  unmatched_retention: -1s\n", "alert.unmatched_retention"},
		{"unmatched too short", "alert:\n  unmatched_retention: 5s\n", "alert.unmatched_retention"},
		{"unmatched too long", "alert:\n  unmatched_retention: 48h\n", "alert.unmatched_retention"},
		{"negative comment retention", "alert:\n  comment_retention: -1h\n", "alert.comment_retention"},
		{"negative audit detail retention", "alert:\n  audit_detail_retention: -1h\n", "alert.audit_detail_retention"},
		{"sweep too often", "alert:\n  sweep_interval: 10ms\n", "alert.sweep_interval"},
		{"export limit zero", "alert:\n  export_limit: 0\n", "alert.export_limit"},
		{"export limit huge", "alert:\n  export_limit: 2000000\n", "alert.export_limit"},
		{"consumer with a dot", "alert:\n  consumer: a.b\n", "alert.consumer"},
		{"consumer empty", "alert:\n  consumer: \"\"\n", "alert.consumer"},
		{"unknown key", "alert:\n  retension: 1h\n", "retension"},
		{"limits set", "alert:\n  max_connections: 100\n  live_max_clients: 20\n  live_max_per_token: 2\n", ""},
		{"too few connections", "alert:\n  max_connections: 4\n", "alert.max_connections"},
		{"live feeds take every connection", "alert:\n  max_connections: 64\n  live_max_clients: 64\n", "alert.live_max_clients"},
		{"no live feeds", "alert:\n  live_max_clients: 0\n", "alert.live_max_clients"},
		{"per token over the total", "alert:\n  live_max_clients: 4\n  live_max_per_token: 5\n", "alert.live_max_per_token"},
		{"per token zero", "alert:\n  live_max_per_token: 0\n", "alert.live_max_per_token"},
		{"camera groups", "alert:\n  camera_groups:\n    north: [cam-1, cam-2]\n    south: [cam-2]\n", ""},
		{"group listing no camera", "alert:\n  camera_groups:\n    north: []\n", "alert.camera_groups.north: lists no cameras"},
		{"group name with a dot", "alert:\n  camera_groups:\n    a.b: [cam-1]\n", "alert.camera_groups: group name \"a.b\""},
		{"group named all", "alert:\n  camera_groups:\n    all: [cam-1]\n", "alert.camera_groups: group name \"all\""},
		{"member not an id", "alert:\n  camera_groups:\n    north: [\"cam 1\"]\n", "alert.camera_groups.north[0]"},
		{"member twice", "alert:\n  camera_groups:\n    north: [cam-1, cam-1]\n", "alert.camera_groups.north[1]: camera \"cam-1\" is listed twice"},
		{"member not a configured camera", "cameras:\n  - {id: cam-1, url: 'rtsp://h/s'}\nalert:\n  camera_groups:\n    north: [cam-1, cam-9]\n", "alert.camera_groups.north[1]: camera \"cam-9\" is not in cameras"},
		{"members all configured", "cameras:\n  - {id: cam-1, url: 'rtsp://h/s'}\nalert:\n  camera_groups:\n    north: [cam-1]\n", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Parse([]byte(c.yaml))
			if c.want == "" {
				if err != nil {
					t.Fatalf("Parse(%q) = %v, want ok", c.yaml, err)
				}
				if c.name == "defaults" && (cfg.Alert.Consumer == "" || cfg.Alert.ExportLimit < 1 || cfg.Alert.SweepInterval <= 0 ||
					cfg.Alert.MaxConnections < 1 || cfg.Alert.LiveMaxClients < 1 || cfg.Alert.LiveMaxPerToken < 1) {
					t.Errorf("Parse(%q).Alert = %+v, want every default filled", c.yaml, cfg.Alert)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Parse(%q) = %v, want an error naming %s", c.yaml, err, c.want)
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("Parse(%q) error has several lines: %q", c.yaml, err)
			}
		})
	}
}
