package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWatchlistVerbs checks the verb table's dispatch and argument
// counts, and that a verb's flags are its own.
func TestWatchlistVerbs(t *testing.T) {
	tests := []struct {
		args     []string
		code     int
		inStderr string
	}{
		{[]string{"watchlist"}, 2, "want a verb: create, list, show, expire, delete, threshold or found"},
		{[]string{"watchlist", "found"}, 2, "watchlist found wants 1 argument(s), got 0"},
		{[]string{"watchlist", "frobnicate"}, 2, `unknown verb "frobnicate"`},
		{[]string{"watchlist", "list", "extra"}, 2, "watchlist list wants 0 argument(s), got 1"},
		{[]string{"watchlist", "show"}, 2, "watchlist show wants 1 argument(s), got 0"},
		{[]string{"watchlist", "threshold", "l"}, 2, "watchlist threshold wants 2 argument(s), got 1"},
		{[]string{"watchlist", "show", "--kind", "missing", "l"}, 2, "flag provided but not defined: -kind"},
		{[]string{"watchlist", "delete", "--at", "now", "l"}, 2, "flag provided but not defined: -at"},
		{[]string{"watchlist", "-h"}, 0, "verbs:\n  create"},
		{[]string{"watchlist", "help"}, 0, "Run `facewatch watchlist VERB -h`"},
		{[]string{"watchlist", "create", "--kind", "missing", "--legal-basis", "order 7", "l"}, 2,
			"usage: facewatch watchlist create NAME --kind KIND --owner WHO --legal-basis TEXT [flags]\nfacewatch watchlist: usage: --owner is required"},
		{[]string{"watchlist", "create", "--kind", "missing", "--owner", "ana", "l"}, 2, "--legal-basis is required"},
		{[]string{"watchlist", "create", "--owner", "ana", "--legal-basis", "order 7", "l"}, 2, "--kind is required"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, errOut := runCLI(t, nil, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.inStderr) {
				t.Errorf("facewatch %v = exit %d, stderr %q; want exit %d mentioning %q", tc.args, code, errOut, tc.code, tc.inStderr)
			}
		})
	}
}

// TestServiceCommandsRefuseImplicitDataDir: without --config, commands
// that only make sense against an existing service refuse a data
// directory that does not exist (one line naming it and --config) and
// create nothing; with one that exists they name it.
func TestServiceCommandsRefuseImplicitDataDir(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, args := range [][]string{
		{"token", "create", "--role", "admin"},
		{"token", "list"},
		{"token", "revoke", "abc"},
		{"audit", "verify"},
		{"watchlist", "list"},
		{"watchlist", "create", "--kind", "missing", "--owner", "ana", "--legal-basis", "x", "l"},
		{"enroll", "--list", "l", "photos"},
		{"identify", "--case", "CASE-1", "probe.jpg"},
		{"gallery", "purges"},
		{"evidence", "export", "--alert", "1", "--case", "CASE-1"},
		{"evidence", "pubkey"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, out, errOut := runCLI(t, nil, args...)
			want := "data directory " + filepath.Join(dir, "facewatch-data") + " does not exist: give --config FILE"
			if code != 1 || out != "" || !strings.Contains(errOut, want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Errorf("facewatch %v = exit %d, stdout %q, stderr %q; want exit 1 and one line with %q", args, code, out, errOut, want)
			}
			if _, err := os.Stat(filepath.Join(dir, "facewatch-data")); err == nil {
				t.Fatalf("facewatch %v created the data directory", args)
			}
		})
	}
	// The dead-letter commands would start an embedded server of their
	// own there and report none of the service's letters, and nats setup
	// needs the nats.url and credentials only a config gives: --config is
	// required, as their help says.
	for _, args := range [][]string{{"deadletter", "list"}, {"deadletter", "replay", "1"}, {"nats", "setup"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, out, errOut := runCLI(t, nil, args...)
			if code != 2 || out != "" || !strings.Contains(errOut, "--config FILE is required") {
				t.Errorf("facewatch %v = exit %d, stdout %q, stderr %q; want exit 2 saying --config is required", args, code, out, errOut)
			}
			if _, err := os.Stat(filepath.Join(dir, "facewatch-data")); err == nil {
				t.Fatalf("facewatch %v created the data directory", args)
			}
		})
	}
	// With the directory there (made by a command given a config that
	// names it), a command uses it and says so.
	cfg := filepath.Join(dir, "site.yaml")
	if err := os.WriteFile(cfg, []byte("data_dir: facewatch-data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI(t, nil, "token", "create", "--config", cfg, "--role", "admin", "--person", "Ana Admin", "--name", "first"); code != 0 {
		t.Fatalf("token create --config = exit %d, %q", code, errOut)
	}
	code, out, errOut := runCLI(t, nil, "token", "create", "--role", "admin", "--person", "Ana Admin", "--name", "t")
	if code != 0 || !strings.HasPrefix(out, "fwt_") || !strings.Contains(errOut, "facewatch token: data directory "+filepath.Join(dir, "facewatch-data")+"\n") {
		t.Fatalf("token create in an existing data directory = exit %d, stdout %q, stderr %q; want a token and the directory named", code, out, errOut)
	}
	code, out, errOut = runCLI(t, nil, "token", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	id := strings.Fields(lines[len(lines)-1])
	if code != 0 || len(lines) != 2 || len(id) == 0 || id[len(id)-1] != "t" {
		t.Fatalf("token list = exit %d, %q, %q", code, out, errOut)
	}
	code, out, errOut = runCLI(t, nil, "token", "revoke", id[0])
	if code != 0 || !strings.Contains(out, "token "+id[0]+" revoked (role admin, person \"Ana Admin\", name \"t\"") {
		t.Errorf("token revoke = exit %d, stdout %q, stderr %q; want it to say what it revoked", code, out, errOut)
	}
}
