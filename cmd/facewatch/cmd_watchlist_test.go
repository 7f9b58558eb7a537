package main

import (
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
