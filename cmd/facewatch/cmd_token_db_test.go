package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/facewatch/facewatch/alert"
)

// TestTokenCreateNamesItsDatabase guards issue 14's finding that `token
// create` without --config silently made a new database under
// ./facewatch-data, whose token the running service refused: without
// --config it now refuses unless the alert database a service opened is
// there, creating nothing; whenever it creates a token it names the
// database file, and the token is in that file.
func TestTokenCreateNamesItsDatabase(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	implicit := filepath.Join(dir, "facewatch-data")
	// A site whose config lives elsewhere and names its own data directory.
	site := filepath.Join(dir, "site")
	if err := os.Mkdir(site, 0o755); err != nil {
		t.Fatal(err)
	}
	siteCfg := filepath.Join(site, "facewatch.yaml")
	if err := os.WriteFile(siteCfg, []byte("data_dir: data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A config naming the working directory's ./facewatch-data.
	localCfg := filepath.Join(dir, "local.yaml")
	if err := os.WriteFile(localCfg, []byte("data_dir: facewatch-data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	create := []string{"token", "create", "--role", "admin", "--person", "Ana Admin", "--name", "t"}
	stored := regexp.MustCompile(`^token (\S+) for Ana Admin as admin \(scope all\) valid until \S+, stored in (\S+); it is shown only this once$`)

	tests := []struct {
		name    string
		prepare func(t *testing.T)
		config  string
		wantErr string // "" when the token must be created
		wantDB  string
	}{
		{
			name:    "no config, no data directory",
			wantErr: "data directory " + implicit + " does not exist: give --config FILE",
		},
		{
			name: "no config, a data directory no service opened",
			prepare: func(t *testing.T) {
				if err := os.Mkdir(implicit, 0o755); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: "no alert database " + alert.DBPath(implicit) + ": give --config FILE",
		},
		{
			name:   "config naming another directory",
			config: siteCfg,
			wantDB: alert.DBPath(filepath.Join(site, "data")),
		},
		{
			name:   "config naming the working directory's",
			config: localCfg,
			wantDB: alert.DBPath(implicit),
		},
		{
			// The database the previous case made is the one a
			// service with that config reads.
			name:   "no config, the service's database there",
			wantDB: alert.DBPath(implicit),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.prepare != nil {
				tc.prepare(t)
			}
			args := create
			if tc.config != "" {
				args = append(append([]string{}, create...), "--config", tc.config)
			}
			code, out, errOut := runCLI(t, nil, args...)
			if tc.wantErr != "" {
				if code != 1 || out != "" || !strings.Contains(errOut, tc.wantErr) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
					t.Fatalf("facewatch %v = exit %d, stdout %q, stderr %q; want exit 1, no token and one line with %q", args, code, out, errOut, tc.wantErr)
				}
				if _, err := os.Stat(alert.DBPath(implicit)); err == nil {
					t.Fatalf("facewatch %v created %s", args, alert.DBPath(implicit))
				}
				return
			}
			if code != 0 || !strings.HasPrefix(out, "fwt_") {
				t.Fatalf("facewatch %v = exit %d, stdout %q, stderr %q; want a token", args, code, out, errOut)
			}
			var m []string
			for _, l := range strings.Split(errOut, "\n") {
				if m = stored.FindStringSubmatch(l); m != nil {
					break
				}
			}
			if m == nil || m[2] != tc.wantDB {
				t.Fatalf("facewatch %v stderr %q; want a line matching %v naming %s", args, errOut, stored, tc.wantDB)
			}
			toks, err := alert.ListTokens(context.Background(), m[2])
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, tk := range toks {
				found = found || tk.ID == m[1]
			}
			if !found {
				t.Errorf("token %s is not in %s, the database token create named (%d tokens there)", m[1], m[2], len(toks))
			}
		})
	}
}
