package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/facewatch/facewatch/detect"
	"github.com/facewatch/facewatch/internal/config"
)

// newFlagSet returns a flag set for a subcommand that writes its usage to
// stderr.
func newFlagSet(e *env, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet("facewatch "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: facewatch %s\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, allowing flags after positional arguments
// (`facewatch eval DIR --out x`); everything after "--" is positional. A
// flag error becomes a usage error.
func parseFlags(fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return usageErrorf("%v", err)
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	// Leave the positional arguments where fs.Args finds them.
	return fs.Parse(append([]string{"--"}, pos...))
}

// loadConfig reads the config file at path (or the defaults when path is
// empty) and makes its relative paths absolute against the file's
// directory.
func (e *env) loadConfig(path string) (config.Config, error) {
	if path == "" {
		cfg := config.Defaults()
		return cfg, cfg.Validate()
	}
	cfg, err := config.Load(path)
	if err != nil {
		return config.Config{}, err
	}
	// config cannot know the detector backends; detect checks the name.
	if err := detect.ValidateConfig(cfg.Detect); err != nil {
		return config.Config{}, fmt.Errorf("%s: detect.%w", path, err)
	}
	dir, _ := absDir(path)
	cfg.Resolve(dir)
	return cfg, nil
}

// serviceConfig loads the config of a command that works on an existing
// service's data directory (its tokens, audit log or gallery) and records
// the directory for realMain to name. This is the one place such commands
// open it. Without --config it refuses a data directory that does not
// exist instead of creating one: the default (./facewatch-data) is relative
// to the working directory, so a forgotten --config would otherwise create
// an empty service's data where nobody looks. With --config the file names
// its data_dir deliberately, and a first command (watchlist create before
// the first `facewatch run`) may create it.
func (e *env) serviceConfig(path string) (config.Config, error) {
	cfg, err := e.loadConfig(path)
	if err != nil {
		return config.Config{}, err
	}
	dir := absPath(cfg.DataDir)
	if path == "" {
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return config.Config{}, fmt.Errorf("data directory %s does not exist: give --config FILE, the config of the service whose data to use", dir)
		}
	}
	e.dataDir = dir
	return cfg, nil
}

// absPath is p made absolute for messages (p itself when that fails).
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// logger builds the process logger from the config and the global flag.
func (e *env) logger(cfg config.Config) *slog.Logger {
	level := cfg.LogLevel
	if e.logLevel != "" {
		level = e.logLevel
	}
	var lv slog.Level
	switch strings.ToLower(level) {
	case "debug":
		lv = slog.LevelDebug
	case "warn":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(e.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(e.stderr, opts))
}

// isHelp reports whether a verb position holds a request for help.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}
