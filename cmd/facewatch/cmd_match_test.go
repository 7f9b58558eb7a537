package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"image/png"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/facewatch/facewatch/internal/audit"
	"github.com/facewatch/facewatch/internal/eval"
	"github.com/facewatch/facewatch/internal/testdata"
	"github.com/facewatch/facewatch/internal/wire"
	"github.com/facewatch/facewatch/match"
)

// run runs one facewatch command line and returns its exit status and
// output.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	vars := map[string]string{"USER": "curator", "FACEWATCH_MODEL_DIR": string(testdata.ModelDir(t))}
	code := realMain(context.Background(), args, &env{stdout: &out, stderr: &errb, getenv: func(k string) string { return vars[k] }})
	return code, out.String(), errb.String()
}

func copyPhotos(t *testing.T, dst string, src string, n int) []string {
	t.Helper()
	ps, _ := filepath.Glob(filepath.Join(src, "*.jpg"))
	sort.Strings(ps)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range ps[:n] {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, filepath.Base(p)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return ps[n:]
}

// TestMatchCommands drives watchlist, enroll, identify and eval end to end
// on real photos, with gallery events published to a real nats-server.
func TestMatchCommands(t *testing.T) {
	ns := startJetStream(t, t.TempDir())
	dir := t.TempDir()
	cfg := filepath.Join(dir, "facewatch.yaml")
	if err := os.WriteFile(cfg, []byte("data_dir: data\nnats:\n  url: "+ns.ClientURL()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	enrol := filepath.Join(dir, "enrol")
	heldSimm := copyPhotos(t, filepath.Join(enrol, "John Simm"), testdata.Path(t, "dlib_johns/John_Simm"), 4)
	copyPhotos(t, filepath.Join(enrol, "John Salley"), testdata.Path(t, "dlib_johns/John_Salley"), 4)
	group, err := os.ReadFile(testdata.Path(t, "compreface/011_3.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(enrol, "Group"), 0o755)
	os.WriteFile(filepath.Join(enrol, "Group", "group.jpg"), group, 0o644)
	corrupt := filepath.Join(dir, "corrupt.jpg")
	os.WriteFile(corrupt, group[:len(group)/3], 0o644)

	steps := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string
		wantErr  string
	}{
		{"create", []string{"watchlist", "create", "--config", cfg, "--kind", "missing", "--legal-basis", "court order 7", "--owner", "ana", "--priority", "5", "missing-2026"}, 0, []string{`watchlist "missing-2026" created`}, ""},
		{"create again", []string{"watchlist", "create", "--config", cfg, "--kind", "missing", "--legal-basis", "x", "--owner", "ana", "missing-2026"}, 1, nil, "already exists"},
		{"bad kind", []string{"watchlist", "create", "--config", cfg, "--kind", "suspects", "--legal-basis", "x", "--owner", "ana", "other"}, 2, nil, "not one of missing, wanted, other"},
		{"10000-character name", []string{"watchlist", "create", "--config", cfg, "--kind", "other", "--legal-basis", "x", "--owner", "ana", strings.Repeat("n", 10000)}, 1, nil, "at most 200 allowed"},
		{"no case", []string{"identify", "--config", cfg, heldSimm[0]}, 2, nil, "--case"},
		{"empty list", []string{"identify", "--config", cfg, "--case", "CASE-1", "--list", "missing-2026", heldSimm[0]}, 1, nil, `watchlist "missing-2026" is empty`},
		{"empty gallery", []string{"identify", "--config", cfg, "--case", "CASE-1", heldSimm[0]}, 1, nil, "gallery is empty"},
		{"enroll", []string{"enroll", "--config", cfg, "--list", "missing-2026", "--by", "for inspector Lund", enrol}, 0,
			[]string{"enrolled 8 photos (8 new, 0 already there) of 2 identities", "refused: Group/group.jpg: several faces"}, ""},
		{"enroll again", []string{"enroll", "--config", cfg, "--list", "missing-2026", enrol}, 0, []string{"enrolled 8 photos (0 new, 8 already there)"}, ""},
		{"enroll unknown list", []string{"enroll", "--config", cfg, "--list", "nope", enrol}, 1, nil, `watchlist "nope": not found`},
		{"enroll files", []string{"enroll", "--config", cfg, "--list", "missing-2026", "--identity", "Zoë Ōkubo", "--ref", "case 42", "--expires", "720h",
			testdata.Path(t, "compreface/009_C.jpg"), testdata.Path(t, "compreface/017_0.jpg")}, 0,
			[]string{"enrolled 1 photos (1 new, 0 already there) of 1 identities", "017_0.jpg: no face"}, ""},
		{"list", []string{"watchlist", "list", "--config", cfg}, 0, []string{"missing-2026", "missing", "3 ", "9 "}, ""},
		{"threshold", []string{"watchlist", "threshold", "--config", cfg, "missing-2026", "0.55"}, 0, []string{"threshold 0.550"}, ""},
		{"show", []string{"watchlist", "show", "--config", cfg, "missing-2026"}, 0, []string{"court order 7", "John Simm", "John Salley", "Zoë Ōkubo", "threshold: 0.550"}, ""},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			code, out, errOut := run(t, s.args...)
			if code != s.wantCode {
				t.Fatalf("facewatch %s: exit %d, want %d; stderr %q", s.name, code, s.wantCode, errOut)
			}
			// Each refusal is printed once, on stdout, not also logged.
			if strings.Contains(errOut, "refused") {
				t.Errorf("facewatch %s: stderr %q repeats a refusal", s.name, errOut)
			}
			for _, w := range s.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("facewatch %s: stdout %q lacks %q", s.name, out, w)
				}
			}
			if s.wantErr != "" {
				last := strings.TrimSpace(errOut[strings.LastIndex(strings.TrimSpace(errOut), "\n")+1:])
				if !strings.Contains(last, s.wantErr) || len(last) > 400 {
					t.Errorf("facewatch %s: last stderr line %.200q, want one short line with %q", s.name, last, s.wantErr)
				}
			}
		})
	}

	// identify: one JSON line per face; the held-back photo is John Simm.
	code, out, errOut := run(t, "identify", "--config", cfg, "--case", "CASE-2", "--list", "missing-2026", heldSimm[0], testdata.Path(t, "compreface/017_0.jpg"), corrupt)
	if code != 1 || !strings.Contains(errOut, "1 of 3 files failed") {
		t.Errorf("identify exit %d stderr %q, want 1 and \"1 of 3 files failed\"", code, errOut)
	}
	var lines []identifyLine
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var il identifyLine
		if err := json.Unmarshal([]byte(l), &il); err != nil {
			t.Fatalf("identify line %q: %v", l, err)
		}
		lines = append(lines, il)
	}
	if len(lines) != 3 {
		t.Fatalf("identify printed %d lines, want 3:\n%s", len(lines), out)
	}
	if d := lines[0].Decision; d == nil || !d.Matched || d.Identity != "John Simm" || d.Threshold != 0.55 || len(lines[0].Best) == 0 {
		t.Errorf("identify(held-back John Simm) = %+v, want John Simm at threshold 0.55", lines[0])
	}
	if lines[1].Faces != 0 || lines[1].Decision != nil {
		t.Errorf("identify(no face) = %+v, want faces 0", lines[1])
	}
	if !strings.HasPrefix(lines[2].Error, "probe "+corrupt+" unreadable: ") || strings.Contains(lines[2].Error, "refused") {
		t.Errorf("identify(corrupt) = %+v, want \"probe %s unreadable: ...\" (a probe is not refused like an enrolment photo)", lines[2], corrupt)
	}

	// eval on the enrolment directory's photos and on idols.json.
	report, plot := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.png")
	code, out, errOut = run(t, "eval", "--out", report, "--plot", plot, "--sizes", "2,10", "--descriptors", testdata.Path(t, "go-face-testdata/idols.json"))
	if code != 0 || !strings.Contains(out, "equal error rate") || !strings.Contains(out, "10 identities:") {
		t.Fatalf("eval --descriptors: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	var rep eval.Report
	b, _ := os.ReadFile(report)
	if err := json.Unmarshal(b, &rep); err != nil || rep.Identities != 134 || len(rep.Recommendations) != 2 {
		t.Errorf("eval report = %d identities, %d recommendations, %v; want 134 and 2", rep.Identities, len(rep.Recommendations), err)
	}
	if f, err := os.Open(plot); err != nil {
		t.Errorf("eval plot: %v", err)
	} else {
		if _, err := png.Decode(f); err != nil {
			t.Errorf("eval plot is not a PNG: %v", err)
		}
		f.Close()
	}
	code, out, errOut = run(t, "eval", "--config", cfg, "--out", report, "--plot", plot, "--sizes", "2", enrol)
	if code != 0 || !strings.Contains(out, "2 identities, 8 faces") || !strings.Contains(errOut, "skipped: Group/group.jpg: several faces") {
		t.Errorf("eval DIR: exit %d, stdout %q, stderr %q; want 2 identities, 8 faces, the group photo skipped", code, out, errOut)
	}

	// Expire and delete.
	code, _, errOut = run(t, "watchlist", "expire", "--config", cfg, "--identity", "John Salley", "missing-2026")
	if code != 0 {
		t.Fatalf("watchlist expire --identity: exit %d, %s", code, errOut)
	}
	code, _, _ = run(t, "watchlist", "expire", "--config", cfg, "missing-2026")
	if code != 0 {
		t.Fatal("watchlist expire failed")
	}
	if code, _, errOut = run(t, "identify", "--config", cfg, "--case", "CASE-3", "--list", "missing-2026", heldSimm[0]); code != 1 || !strings.Contains(errOut, "expired") {
		t.Errorf("identify(expired list) = exit %d, %q; want 1 and \"expired\"", code, errOut)
	}
	if code, _, errOut = run(t, "watchlist", "delete", "--config", cfg, "missing-2026"); code != 0 {
		t.Fatalf("watchlist delete: exit %d, %s", code, errOut)
	}
	code, out, _ = run(t, "watchlist", "list", "--config", cfg, "--json")
	if code != 0 || strings.TrimSpace(out) != "null" {
		t.Errorf("watchlist list after delete = %q, want no lists", out)
	}

	// Every gallery change reached the stream, once.
	g, err := match.OpenGallery(context.Background(), filepath.Join(dir, "data"), match.GalleryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.IntegrityCheck(context.Background()); err != nil {
		t.Errorf("IntegrityCheck() = %v", err)
	}
	if n, err := g.Pending(context.Background()); err != nil || n != 0 {
		t.Errorf("events left unpublished = %d, %v; want 0", n, err)
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(context.Background(), wire.GalleryStream)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := st.Info(context.Background())
	// create 1 + identities 3 + enrolments 9 + threshold 1 + expiries 2 +
	// delete 1, less the 9 enrolments: deleting the list deleted their
	// descriptors from the stream too.
	if info.State.Msgs != 8 || info.State.LastSeq != 17 {
		t.Errorf("stream holds %d gallery events up to sequence %d, want 8 up to 17", info.State.Msgs, info.State.LastSeq)
	}

	// Every change and the search is in the gallery's audit log, as the
	// OS user running the commands; --by is a note beside it.
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, "data", match.GalleryFile)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	es, err := audit.Entries(context.Background(), db, 2, 0) // after the keyed-era entry
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, e := range es {
		count[e.Action]++
		if e.Actor != "os:"+u.Username || e.ActorName != u.Username || e.Role != "local" {
			t.Errorf("audit entry %d (%s) actor = %s %q %s, want os:%s %q local", e.Seq, e.Action, e.Actor, e.ActorName, e.Role, u.Username, u.Username)
		}
		if e.Action == "enrol" && !strings.Contains(e.Detail, "inspector Lund") && !strings.Contains(e.Case, "case 42") {
			t.Errorf("enrol entry %d detail %s, want the --by note", e.Seq, e.Detail)
		}
		if e.Action == "identify" && e.Case != "CASE-2" {
			t.Errorf("identify entry %d case %q, want CASE-2", e.Seq, e.Case)
		}
	}
	// The identify calls refused before searching (empty list, empty
	// gallery, expired list) record nothing; the one that searched does.
	want := map[string]int{"watchlist_create": 1, "identity_create": 3, "enrol": 9, "watchlist_threshold": 1, "identity_expire": 1,
		"watchlist_expire": 1, "watchlist_delete": 1, "identify": 1}
	for a, n := range want {
		if count[a] != n {
			t.Errorf("audit entries for %s = %d, want %d (all: %v)", a, count[a], n, count)
		}
	}
	if len(count) != len(want) {
		t.Errorf("audit actions = %v, want exactly %v", count, want)
	}
	code, out, errOut = run(t, "audit", "verify", "--config", cfg)
	if code != 0 || !strings.Contains(out, "audit log gallery ok") {
		t.Errorf("audit verify = exit %d %q %q, want the gallery log ok", code, out, errOut)
	}
}
