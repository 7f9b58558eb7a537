package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/facewatch/facewatch/alert"
	"github.com/facewatch/facewatch/internal/synthcam"
	"github.com/facewatch/facewatch/internal/testdata"
)

// demoRoles says in a few words what each role's token is for, in the
// order the demo prints them.
var demoRoles = []struct {
	role alert.Role
	what string
}{
	{alert.RoleOperator, "live alerts and review (the console)"},
	{alert.RoleInvestigator, "history queries with a case reference"},
	{alert.RoleCurator, "watchlists and enrolment"},
	{alert.RoleAdmin, "tokens, audit log, configuration"},
	{alert.RoleIntegrator, "health and metrics"},
}

// cmdDevDemo is the demo (scripts/demo.sh, make demo, the end of make
// setup): a synthetic RTSP camera (real face photos crossing a street
// scene: the enrolled person twice, four strangers), one watchlist with
// that person enrolled, a token for each role, and `facewatch run` over
// it, all in this process and under one temporary directory. With --loop
// the camera replays its clip and everything runs until interrupted
// (Ctrl-C, SIGTERM, or the terminal closing); without it the clip plays
// once and the demo ends when the enrolled person's alerts have arrived
// (the bounded run CI and non-interactive set-ups get). Either way the
// directory is removed before it returns, and it started no process.
func cmdDevDemo(ctx context.Context, e *env, args []string) (err error) {
	fs := newFlagSet(e, "dev demo", "dev demo [--loop] [--listen ADDR] [--for DURATION] [--data DIR]")
	loop := fs.Bool("loop", false, "replay the camera's clip and keep running until interrupted (Ctrl-C); without it the clip plays once and the demo ends by itself")
	listen := fs.String("listen", "127.0.0.1:0", "address of the API and console (port 0: a free one)")
	limit := fs.Duration("for", 2*time.Minute, "without --loop: stop after this long even if the clip's alerts have not all arrived")
	data := fs.String("data", "", "the shared data set (default $"+testdata.EnvShared+" or ../shared/data from the repository)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageErrorf("dev demo takes no arguments")
	}
	if !*loop && *limit <= 0 {
		return usageErrorf("--for must be positive")
	}
	// A closed terminal stops the demo as Ctrl-C does (main handles
	// SIGINT and SIGTERM), so that it still removes what it made.
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGHUP)
	defer stop()

	shared := *data
	if shared == "" {
		shared = testdata.SharedDir()
	}
	sc, err := synthcam.Johns(shared, 640, 360, 25)
	if err != nil {
		return err
	}
	scene := "a plain backdrop"
	if bg, err := testdata.FindOpenCV("vtest.avi"); err == nil {
		sc.Script.Background = bg
		scene = "a street scene (OpenCV's vtest.avi)"
	}

	work, err := os.MkdirTemp("", "facewatch-demo-")
	if err != nil {
		return fmt.Errorf("creating the demo's directory: %w", err)
	}
	defer func() {
		if ctx.Err() != nil {
			// Interrupted: whatever was under way (rendering the clip,
			// enrolling) failed because of that, and is not news.
			fmt.Fprintln(e.stdout, "demo: interrupted")
			err = nil
		}
		if rerr := os.RemoveAll(work); rerr != nil {
			err = errors.Join(err, fmt.Errorf("removing the demo's directory: %w", rerr))
			return
		}
		fmt.Fprintf(e.stdout, "demo: stopped; removed %s\n", work)
	}()
	fmt.Fprintf(e.stdout, "demo: working in %s (removed when the demo stops)\n", work)

	// The camera: 640x360 at 25 fps, sampled at 5 fps by facewatch. The
	// clip waits for its first reader so that facewatch sees it whole.
	camDir := filepath.Join(work, "camera")
	if err := os.Mkdir(camDir, 0o700); err != nil {
		return err
	}
	served, err := synthcam.Serve(ctx, sc.Script, camDir, synthcam.ServeOptions{Name: "demo", Loop: *loop, StartOnPlay: true})
	if err != nil {
		return err
	}
	defer served.Server.Close()
	want := len(served.Truth.Of(sc.Enrolled))
	again := "once"
	if *loop {
		again = fmt.Sprintf("every %v, until stopped", sc.Script.Duration)
	}
	fmt.Fprintf(e.stdout, "demo: synthetic camera %s: real face photos crossing %s, %s; the clip's truth:\n", served.URL, scene, again)
	for _, a := range served.Truth.Appearances {
		fmt.Fprintf(e.stdout, "demo:   %-16s %5.1fs..%5.1fs\n", a.Identity, a.Start.Seconds(), a.End.Seconds())
	}

	cfgPath := filepath.Join(work, "facewatch.yaml")
	cfgText := fmt.Sprintf("data_dir: %q\nlog_level: warn\ncameras:\n  - id: demo-cam\n    name: \"Synthetic street camera\"\n    url: %q\n    max_fps: 5\nalert:\n  listen: %q\n",
		filepath.Join(work, "data"), served.URL, *listen)
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		return fmt.Errorf("writing the demo's config: %w", err)
	}

	// The enrolled person, through the commands a curator would use.
	photos := filepath.Join(work, "enrol", sc.Enrolled)
	if err := os.MkdirAll(photos, 0o700); err != nil {
		return err
	}
	b, err := os.ReadFile(sc.EnrolPhoto)
	if err != nil {
		return fmt.Errorf("reading the photo to enrol: %w", err)
	}
	if err := os.WriteFile(filepath.Join(photos, filepath.Base(sc.EnrolPhoto)), b, 0o600); err != nil {
		return err
	}
	quiet := func(run func(context.Context, *env, []string) error, args ...string) (string, error) {
		var out, errb bytes.Buffer
		sub := &env{stdout: &out, stderr: &errb, getenv: e.getenv, logLevel: e.logLevel}
		if err := run(ctx, sub, args); err != nil {
			return "", fmt.Errorf("%s: %w (%s)", strings.Join(args[:min(2, len(args))], " "), err, strings.TrimSpace(errb.String()))
		}
		return out.String(), nil
	}
	if _, err := quiet(cmdWatchlist, "create", "--config", cfgPath, "--kind", "missing", "--owner", "demo", "--legal-basis", "demonstration", "--by", "demo", "demo"); err != nil {
		return err
	}
	out, err := quiet(cmdEnroll, "--config", cfgPath, "--list", "demo", "--by", "demo", filepath.Dir(photos))
	if err != nil {
		return err
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "enrolled ") {
			fmt.Fprintf(e.stdout, "demo: %s from %s\n", l, filepath.Base(sc.EnrolPhoto))
		}
	}
	tokens := make([]string, len(demoRoles))
	for i, r := range demoRoles {
		a := []string{"create", "--config", cfgPath, "--role", string(r.role), "--person", "Demo " + string(r.role), "--name", "demo", "--ttl", "24h"}
		if r.role == alert.RoleOperator || r.role == alert.RoleInvestigator || r.role == alert.RoleIntegrator {
			a = append(a, "--scope", "all")
		}
		out, err := quiet(cmdToken, a...)
		if err != nil {
			return err
		}
		tokens[i] = strings.TrimSpace(out)
	}

	// The service, printing each alert as it arrives; tap counts the
	// enrolled person's.
	tap := &alertTap{w: e.stdout, identity: sc.Enrolled, changed: make(chan struct{}, 1)}
	runEnv := &env{stdout: tap, stderr: e.stderr, getenv: e.getenv, logLevel: e.logLevel}
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	f := &stageFlags{config: cfgPath}
	if !*loop {
		f.duration = *limit
		go func() { // ends with runCtx
			select {
			case <-runCtx.Done():
				return
			case <-served.Path.Done():
			}
			// The last track ends a moment after the clip: wait for the
			// alerts the truth promises (bounded), then a little more
			// for anything further, which there should not be.
			give := time.NewTimer(30 * time.Second)
			defer give.Stop()
			for tap.count() < want {
				select {
				case <-tap.changed:
				case <-give.C:
					cancelRun()
					return
				case <-runCtx.Done():
					return
				}
			}
			select {
			case <-time.After(2 * time.Second):
			case <-runCtx.Done():
			}
			cancelRun()
		}()
	}
	err = runAll(runCtx, runEnv, f, func(_ int, _, apiURL string) {
		w := e.stdout
		fmt.Fprintf(w, "demo: console %s/console\n", apiURL)
		fmt.Fprintln(w, "demo: sign in there by pasting one of these tokens (the API takes them as \"Authorization: Bearer TOKEN\"):")
		for i, r := range demoRoles {
			fmt.Fprintf(w, "demo:   %-12s  %s  %s\n", r.role, tokens[i], r.what)
		}
		if *loop {
			fmt.Fprintf(w, "demo: running until Ctrl-C; %s crosses the camera %d times every %v, the strangers never give an alert\n", sc.Enrolled, want, sc.Script.Duration)
		} else {
			fmt.Fprintf(w, "demo: running until the clip ends (at most %v); expect %d alerts for %s and none for the strangers\n", *limit, want, sc.Enrolled)
		}
	})
	if ctx.Err() == nil && !*loop {
		fmt.Fprintf(e.stdout, "demo: %d alerts for %s (the clip has %d appearances), %d for anyone else\n", tap.count(), sc.Enrolled, want, tap.others())
	}
	return err
}
