package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/facewatch/facewatch/alert"
	"github.com/facewatch/facewatch/internal/config"
)

// TestTokenCreateScope: operator, investigator and integrator tokens need
// --scope (the whole site only as "all"), a group must be declared in
// alert.camera_groups, admin and curator tokens are site-wide, and the
// scope a token was created with is the one the API applies.
func TestTokenCreateScope(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "facewatch.yaml")
	yaml := "data_dir: data\nalert:\n  camera_groups:\n    north: [cam-n1, cam-n2]\n    south: [cam-s1]\n"
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	create := func(args ...string) []string {
		return append([]string{"token", "create", "--config", cfgPath, "--person", "Ana", "--name", "ana"}, args...)
	}
	cases := []struct {
		name      string
		args      []string
		code      int
		wantErr   string // substring of stderr when code != 0
		wantScope string // the scope token list shows, when code == 0
	}{
		{"operator without scope", create("--role", "operator"), 2, "--scope: operator tokens need a scope", ""},
		{"investigator without scope", create("--role", "investigator"), 2, "tokens need a scope", ""},
		{"integrator without scope", create("--role", "integrator"), 2, "tokens need a scope", ""},
		{"empty scope", create("--role", "operator", "--scope", " "), 2, "scope is empty", ""},
		{"undeclared group", create("--role", "operator", "--scope", "group:east"), 2, `camera group "east" is not declared`, ""},
		{"bad item", create("--role", "operator", "--scope", "camera:cam-n1"), 2, `kind "camera"`, ""},
		{"curator scoped", create("--role", "curator", "--scope", "group:north"), 1, "curator tokens are site-wide", ""},
		{"admin without scope", create("--role", "admin"), 0, "", "all"},
		{"operator site-wide", create("--role", "operator", "--scope", "all"), 0, "", "all"},
		{"operator north", create("--role", "operator", "--scope", "group:north"), 0, "", "group:north"},
		{"investigator mixed", create("--role", "investigator", "--scope", "watchlist:wanted, group:south,group:north"), 0, "", "group:north,group:south,watchlist:wanted"},
	}
	svc, err := alert.Open(context.Background(), filepath.Join(dir, "data"), func() config.Alert {
		c := config.Defaults().Alert
		c.CameraGroups = map[string][]string{"north": {"cam-n1", "cam-n2"}, "south": {"cam-s1"}}
		return c
	}(), alert.Options{Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	srv := httptest.NewServer(svc.Handler())
	defer srv.Close()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, stderr := runAlertCLI(t, c.args...)
			if code != c.code {
				t.Fatalf("facewatch %v = exit %d (%s), want %d", c.args, code, stderr, c.code)
			}
			if code != 0 {
				if !strings.Contains(stderr, c.wantErr) {
					t.Errorf("facewatch %v stderr = %q, want it to say %q", c.args, stderr, c.wantErr)
				}
				return
			}
			// The API applies the scope the token was created with.
			req, _ := http.NewRequest("GET", srv.URL+"/api/v1/whoami", nil)
			req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(out))
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var who struct{ Scope string }
			if err := json.NewDecoder(resp.Body).Decode(&who); err != nil || who.Scope != c.wantScope {
				t.Errorf("whoami of token %v = scope %q (%v), want %q", c.args, who.Scope, err, c.wantScope)
			}
		})
	}
	code, out, _ := runAlertCLI(t, "token", "list", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "scope group:north,group:south,watchlist:wanted") || !strings.Contains(out, "scope all") {
		t.Errorf("token list = exit %d %q, want each token's scope", code, out)
	}
}
