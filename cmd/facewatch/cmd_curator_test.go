package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/facewatch/facewatch/match"
)

// TestRunServesCuratorAPI: `facewatch run` wires the alert service's
// curator routes to the gallery it holds: a watchlist created over HTTP by
// a curator is the one `facewatch watchlist list` reads from the same data
// directory, recorded in the gallery's audit log under the curator.
func TestRunServesCuratorAPI(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, "data_dir: %s\nalert:\n  listen: %s\n", filepath.Join(dir, "data"), addr), 0o644)
	code, tokOut, errOut := runCLI(t, nil, "token", "create", "--role", "curator", "--person", "Cora Curator", "--scope", "all", "--config", cfg)
	if code != 0 {
		t.Fatalf("token create = %d, %q", code, errOut)
	}
	token := strings.TrimSpace(tokOut)

	ctx, cancel := context.WithCancel(context.Background())
	out, errb := &syncBuf{}, &syncBuf{}
	done := make(chan int, 1)
	go func() {
		done <- realMain(ctx, []string{"run", "--config", cfg, "--for", "2m"}, &env{stdout: out, stderr: errb, getenv: os.Getenv})
	}()
	defer func() {
		cancel()
		if c := <-done; c != 0 {
			t.Errorf("run exit = %d, stderr %q", c, errb.String())
		}
	}()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String(), "API and console: http://"+addr) {
		if time.Now().After(deadline) {
			t.Fatalf("run did not announce http://%s within 60s; stdout %q stderr %q", addr, out.String(), errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	req, _ := http.NewRequest("POST", "http://"+addr+"/api/v1/watchlists",
		bytes.NewReader([]byte(`{"name":"from-the-api","kind":"missing","owner":"Unit 4","legal_basis":"order 12/2026","threshold":0.48}`)))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /api/v1/watchlists under run = %d %s, want 201", resp.StatusCode, body)
	}
	code, listOut, errOut := runCLI(t, nil, "watchlist", "list", "--json", "--config", cfg)
	if code != 0 || !strings.Contains(listOut, `"name":"from-the-api"`) || !strings.Contains(listOut, `"legal_basis":"order 12/2026"`) {
		t.Errorf("watchlist list after the API created one = %d %q %q, want it listed with its legal basis", code, listOut, errOut)
	}
	db, err := sql.Open("sqlite3", filepath.Join(dir, "data", match.GalleryFile)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var who, role string
	if err := db.QueryRow(`SELECT actor_name, role FROM audit WHERE action = 'watchlist_create'`).Scan(&who, &role); err != nil || who != "Cora Curator" || role != "curator" {
		t.Errorf("gallery audit of the creation: actor %q role %q (%v), want Cora Curator, curator", who, role, err)
	}
}
