// Command facewatch is the one binary of the facewatch pipeline: it runs
// every stage in one process (`facewatch run`) or one stage per process, and
// carries the tools integrators, curators and investigators use (models,
// check-config, faces, watchlist, gallery, enroll, eval, token, audit,
// evidence). It parses flags, loads the configuration and wires packages
// together; the work itself lives in the top-level packages.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/dlib"
)

// command is one subcommand of the binary.
type command struct {
	name    string
	summary string
	// run executes the command; a usageError makes main print the command's
	// usage and exit 2.
	run func(ctx context.Context, e *env, args []string) error
}

// commands is the dispatch table. Each entry's implementation lives in a
// file named after the area it belongs to.
func commands() []command {
	return []command{
		{"version", "print versions of facewatch, Go, OpenCV, dlib and the SIMD in use", cmdVersion},
		{"check-config", "validate a config file and exit", cmdCheckConfig},
		{"models", "list, fetch or verify the dlib model files", cmdModels},
		{"doctor", "check config, models, data directory, NATS and cameras, and say what is wrong", cmdDoctor},
		{"nats", "`nats init` writes a site's nats-server config and role credentials; `nats setup` creates the streams", cmdNATS},
		{"run", "run every stage in one process with an embedded NATS server", cmdRun},
		{"camera", "run the camera stage, or `camera probe URL` to test a source", cmdCamera},
		{"detect", "run the detect+embed stage against a NATS server", cmdDetectStage},
		{"match", "run the match stage against a NATS server", cmdMatchStage},
		{"alert", "run the alert service (history, API, console)", cmdAlertStage},
		{"faces", "find faces in image files and print one JSON line per face", cmdFaces},
		{"watchlist", "create, list, show, expire or delete watchlists; mark a missing person found", cmdWatchlist},
		{"gallery", "purge expired watchlists and identities; list the purge records", cmdGallery},
		{"enroll", "enrol identities from photos into a watchlist", cmdEnroll},
		{"identify", "identify the faces in photos against a watchlist", cmdIdentify},
		{"eval", "measure error rates on a labelled set and recommend thresholds", cmdEval},
		{"token", "create or revoke API tokens", cmdToken},
		{"audit", "verify the hash-chained audit log", cmdAudit},
		{"evidence", "export a signed evidence bundle of an alert, verify one offline, print the site's public key", cmdEvidence},
		{"deadletter", "list refused messages and their reasons, or replay a kept one", cmdDeadLetter},
		{"dev", "developer tools: `dev synth` serves a synthetic RTSP camera with ground truth; `dev demo` runs the demo", cmdDev},
	}
}

// env is what every command gets from main: its streams, the environment
// and a way to build a logger. Tests construct their own.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// logLevel, when set by the global flag, overrides the config's.
	logLevel string
	// dataDir is the data directory a command opened (serviceConfig),
	// which realMain names after the command: a note on stderr on
	// success, the end of the error line on failure.
	dataDir string
}

// errUsage marks an error caused by wrong arguments; main exits 2.
var errUsage = errors.New("usage")

func usageErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsage}, args...)...)
}

func main() {
	// Before anything runs C++ code compiled for a CPU level: one clear
	// line instead of SIGILL in the middle of a detection.
	if err := dlib.CheckCPU(); err != nil {
		fmt.Fprintln(os.Stderr, "facewatch:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := realMain(ctx, os.Args[1:], &env{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv})
	stop()
	os.Exit(code)
}

// realMain dispatches args and returns the exit status: 0 on success, 1 on
// failure, 2 on a usage error.
func realMain(ctx context.Context, args []string, e *env) int {
	fs := flag.NewFlagSet("facewatch", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.StringVar(&e.logLevel, "log-level", "", "override the config's log level (debug, info, warn, error)")
	fs.Usage = func() { printUsage(e.stderr) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	rest := fs.Args()
	if len(rest) == 0 {
		printUsage(e.stderr)
		return 2
	}
	name := rest[0]
	if name == "help" || name == "-h" || name == "--help" {
		printUsage(e.stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		err := c.run(ctx, e, rest[1:])
		switch {
		case err == nil:
			if e.dataDir != "" {
				fmt.Fprintf(e.stderr, "facewatch %s: data directory %s\n", name, e.dataDir)
			}
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			fmt.Fprintf(e.stderr, "facewatch %s: %v\n", name, err)
			return 2
		default:
			msg := config.RedactError(err)
			if e.dataDir != "" && !strings.Contains(msg, e.dataDir) {
				msg += " (data directory " + e.dataDir + ")"
			}
			fmt.Fprintf(e.stderr, "facewatch %s: %s\n", name, msg)
			return 1
		}
	}
	fmt.Fprintf(e.stderr, "facewatch: unknown command %q (see `facewatch help`)\n", name)
	return 2
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: facewatch [--log-level LEVEL] COMMAND [ARGS]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	cs := commands()
	width := 0
	for _, c := range cs {
		width = max(width, len(c.name))
	}
	for _, c := range cs {
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run `facewatch COMMAND -h` for a command's flags.")
}
