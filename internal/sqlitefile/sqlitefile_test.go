package sqlitefile

import (
	"database/sql"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	_ "github.com/mattn/go-sqlite3"
)

// TestAwkwardDirectoryNames opens real SQLite files in directories whose
// names would break a naively built URI, and checks the file lands where it
// was asked to.
func TestAwkwardDirectoryNames(t *testing.T) {
	for _, name := range []string{"plain", "with space", "q?mark", "hash#tag", "per%25cent", "ünïcode"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), name)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "x.db")
			db, err := sql.Open("sqlite3", DSN(path, url.Values{"_journal_mode": {"WAL"}}))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec("CREATE TABLE t (v INTEGER)"); err != nil {
				t.Fatalf("creating a table in %q: %v", path, err)
			}
			var mode string
			if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
				t.Errorf("journal_mode = %q, %v; want wal (parameters must survive the escaping)", mode, err)
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("database not at %q: %v", path, err)
			}
		})
	}
}
