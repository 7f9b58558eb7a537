package archtest

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// TestEveryFuzzerRunsInMakeTest: every Fuzz function of the repository is
// listed in the Makefile's FUZZ_TARGETS (which `make test` runs briefly),
// and every listed target exists; a fuzzer that CI never runs guards
// nothing.
func TestEveryFuzzerRunsInMakeTest(t *testing.T) {
	root := filepath.Join("..", "..")
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatalf("reading Makefile: %v", err)
	}
	listed := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\t([a-z0-9/_]+:Fuzz\w+)( \\)?$`).FindAllStringSubmatch(string(mk), -1) {
		listed[m[1]] = true
	}
	if !strings.Contains(string(mk), "$(MAKE) fuzz") {
		t.Errorf("Makefile: the test target does not run `$(MAKE) fuzz`")
	}
	found := map[string]bool{}
	fuzzFunc := regexp.MustCompile(`(?m)^func (Fuzz\w+)\(f \*testing\.F\)`)
	err = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && p != root || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if !strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(p))
		for _, m := range fuzzFunc.FindAllStringSubmatch(string(b), -1) {
			found[filepath.ToSlash(rel)+":"+m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking the repository: %v", err)
	}
	var missing, stale []string
	for k := range found {
		if !listed[k] {
			missing = append(missing, k)
		}
	}
	for k := range listed {
		if !found[k] {
			stale = append(stale, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(stale)
	if len(missing) > 0 {
		t.Errorf("fuzzers not in the Makefile's FUZZ_TARGETS: %v", missing)
	}
	if len(stale) > 0 {
		t.Errorf("FUZZ_TARGETS names fuzzers that do not exist: %v", stale)
	}
	if len(found) < 10 {
		t.Errorf("found %d fuzzers, want the repository's (at least 10): is the walk broken?", len(found))
	}
}

// TestOutsideInputParsersFuzzed: the parsers of what a stranger can send
// (issue 11) keep a fuzzer that `make test` runs. TestEveryFuzzerRunsInMakeTest
// checks that each listed target exists; this list checks that none of
// these is dropped.
func TestOutsideInputParsersFuzzed(t *testing.T) {
	mk, err := os.ReadFile(filepath.Join("..", "..", "Makefile"))
	if err != nil {
		t.Fatalf("reading Makefile: %v", err)
	}
	listed := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\t([a-z0-9/_]+:Fuzz\w+)( \\)?$`).FindAllStringSubmatch(string(mk), -1) {
		listed[m[1]] = true
	}
	for target, parser := range map[string]string{
		"internal/config:FuzzRedact":         "credential redaction (Redact, RedactError, nats.url errors)",
		"alert:FuzzBearer":                   "bearer token and console cookie",
		"alert:FuzzCaseRef":                  "case references",
		"alert:FuzzLastEventID":              "Last-Event-ID",
		"alert:FuzzReviewBody":               "the review JSON",
		"internal/pipeline:FuzzFrameMessage": "frames arriving over NATS, checked before decoding",
		"internal/wire:FuzzDecodeFrame":      "the frame wire format",
		"detect:FuzzDecode":                  "image bytes and their header",
		"models:FuzzExtractTar":              "model archive extraction (tar)",
		"models:FuzzExtractZip":              "model archive extraction (zip)",
	} {
		if !listed[target] {
			t.Errorf("FUZZ_TARGETS lacks %s, the fuzzer of %s", target, parser)
		}
	}
}
