package main

import (
	"regexp"
	"strings"
	"testing"
)

// Help conventions, checked here for `facewatch help` and every command's
// and verb's -h:
//   - `facewatch help` prints the command list on stdout and exits 0; a
//     command's -h prints its usage and flags on stderr (the flag
//     package's habit) and exits 0; wrong usage exits 2, failure 1.
//   - Usage starts "usage: facewatch COMMAND"; every flag is listed once,
//     with at most one default.
//   - A flag's argument name is an upper-case placeholder (FILE, N,
//     DURATION) or the flag package's type name (string, int, float,
//     duration) — never words the flag package took from back-quotes in
//     the text, nor its meaningless "value".
//   - A flag the usage line shows outside [brackets] is required, and its
//     text says "(required)"; a flag whose text says "(required)" is not
//     shown in brackets.

// helpInvocations lists every -h to check: each command, and each verb of
// the commands that have verbs.
func helpInvocations() [][]string {
	var out [][]string
	for _, c := range commands() {
		out = append(out, []string{c.name, "-h"})
	}
	for _, v := range watchlistVerbs {
		out = append(out, []string{"watchlist", v.name, "-h"})
	}
	for _, v := range []string{"create", "list", "revoke"} {
		out = append(out, []string{"token", v, "-h"})
	}
	for _, v := range []string{"list", "fetch", "verify"} {
		out = append(out, []string{"models", v, "-h"})
	}
	out = append(out, []string{"audit", "verify", "-h"}, []string{"camera", "probe", "-h"}, []string{"dev", "synth", "-h"}, []string{"dev", "demo", "-h"})
	for cmd, verbs := range map[string][]string{
		"evidence":   {"export", "verify", "pubkey"},
		"deadletter": {"list", "replay"},
		"gallery":    {"purge", "purges"},
		"nats":       {"init", "setup"},
	} {
		for _, v := range verbs {
			out = append(out, []string{cmd, v, "-h"})
		}
	}
	return out
}

func TestHelpListsEveryCommand(t *testing.T) {
	code, out, errOut := runCLI(t, nil, "help")
	if code != 0 || errOut != "" {
		t.Fatalf("facewatch help = exit %d, stderr %q; want 0 and nothing on stderr", code, errOut)
	}
	for _, c := range commands() {
		m := regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(c.name) + ` +(\S.*)$`).FindStringSubmatch(out)
		if m == nil || len(strings.TrimSpace(m[1])) < 10 {
			t.Errorf("facewatch help lacks a line for %q with its summary:\n%s", c.name, out)
		}
	}
}

var (
	flagLine = regexp.MustCompile(`^  -([a-z0-9-]+)(?: (.+))?$`)
	argName  = regexp.MustCompile(`^([A-Z][A-Z0-9_|]*|string|int|uint|float|duration)$`)
	// usageFlag is a --flag in a usage line, with what surrounds it.
	usageFlag = regexp.MustCompile(`(\[?)--([a-z0-9-]+)`)
)

func TestEveryHelp(t *testing.T) {
	for _, args := range helpInvocations() {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, out, errOut := runCLI(t, nil, args...)
			text := out + errOut
			if code != 0 {
				t.Fatalf("facewatch %v = exit %d; want 0:\n%s", args, code, text)
			}
			if !strings.HasPrefix(text, "usage: facewatch "+args[0]) {
				t.Fatalf("facewatch %v does not start with its usage line:\n%s", args, text)
			}
			// Flags and their text.
			type flagHelp struct{ arg, text string }
			flags := map[string]*flagHelp{}
			var cur *flagHelp
			var usage []string
			for _, l := range strings.Split(text, "\n") {
				if m := flagLine.FindStringSubmatch(l); m != nil {
					if flags[m[1]] != nil {
						t.Errorf("facewatch %v lists -%s twice", args, m[1])
					}
					cur = &flagHelp{arg: m[2]}
					flags[m[1]] = cur
					if m[2] != "" && !argName.MatchString(m[2]) {
						t.Errorf("facewatch %v: -%s takes %q, want an upper-case placeholder or a type name", args, m[1], m[2])
					}
					continue
				}
				if cur != nil && strings.HasPrefix(l, "    \t") {
					cur.text += strings.TrimSpace(l) + " "
					continue
				}
				if cur == nil {
					usage = append(usage, l)
				}
			}
			for name, f := range flags {
				if n := strings.Count(f.text, "(default"); n > 1 {
					t.Errorf("facewatch %v: -%s shows %d defaults: %q", args, name, n, f.text)
				}
				if strings.Contains(f.text, "`") {
					t.Errorf("facewatch %v: -%s text holds a back-quote: %q", args, name, f.text)
				}
			}
			// Required flags: outside brackets in the usage line of this
			// verb (or any line, for a command without verbs).
			shown := map[string]bool{} // flag -> shown bracketed somewhere
			required := map[string]bool{}
			if strings.Contains(text, "\nverbs:\n") {
				return // a verb list: each verb's -h is checked on its own
			}
			for _, l := range usage {
				if len(args) == 3 && !strings.Contains(l, " "+args[1]+" ") && !strings.HasSuffix(l, " "+args[1]) {
					continue // another verb's line
				}
				depth := 0
				for i := 0; i < len(l); i++ {
					switch l[i] {
					case '[':
						depth++
					case ']':
						depth--
					case '-':
						if strings.HasPrefix(l[i:], "--") && (i == 0 || l[i-1] == ' ' || l[i-1] == '[' || l[i-1] == '|') {
							m := usageFlag.FindStringSubmatch(l[i:])
							if depth == 0 {
								required[m[2]] = true
							} else {
								shown[m[2]] = true
							}
							i += len(m[0]) - 1
						}
					}
				}
			}
			for name := range required {
				f := flags[name]
				if f == nil {
					t.Errorf("facewatch %v: usage shows --%s, which is not a flag", args, name)
					continue
				}
				if !strings.Contains(f.text, "(required") {
					t.Errorf("facewatch %v: usage shows --%s as required but its text does not say so: %q", args, name, f.text)
				}
			}
			for name, f := range flags {
				if strings.Contains(f.text, "(required)") && !required[name] && shown[name] {
					t.Errorf("facewatch %v: -%s says (required) but usage shows it in brackets", args, name)
				}
			}
		})
	}
}
