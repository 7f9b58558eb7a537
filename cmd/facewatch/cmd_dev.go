package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/facewatch/facewatch/internal/synthcam"
	"github.com/facewatch/facewatch/internal/testdata"
)

// cmdDev holds developer tools: the synthetic camera and the demo.
func cmdDev(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprintln(e.stderr, "usage: facewatch dev synth|demo [flags]")
		fmt.Fprintln(e.stderr)
		fmt.Fprintln(e.stderr, "verbs:")
		fmt.Fprintln(e.stderr, "  synth  serve a synthetic RTSP camera with ground truth")
		fmt.Fprintln(e.stderr, "  demo   the demo: a synthetic camera, one person enrolled, a token per role and `facewatch run`, all removed when it stops")
		fmt.Fprintln(e.stderr)
		fmt.Fprintln(e.stderr, "Run `facewatch dev VERB -h` for a verb's flags.")
		return flag.ErrHelp
	}
	if len(args) == 0 {
		return usageErrorf("want a subcommand: synth or demo")
	}
	switch args[0] {
	case "synth":
		return cmdDevSynth(ctx, e, args[1:])
	case "demo":
		return cmdDevDemo(ctx, e, args[1:])
	}
	return usageErrorf("unknown subcommand %q: want synth or demo", args[0])
}

// cmdDevSynth renders the standard synthetic scenario (one person to enrol
// crossing twice, four strangers) and serves it over RTSP until the clip
// ends (or forever with --loop), printing the URL, the photo to enrol and
// the ground truth.
func cmdDevSynth(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "dev synth", "dev synth [--listen ADDR] [--path NAME] [--size WxH] [--fps N] [--loop] [--truth FILE] [--data DIR]")
	listen := fs.String("listen", "127.0.0.1:8554", "RTSP listen address")
	path := fs.String("path", "cam1", "stream path")
	size := fs.String("size", "640x360", "frame size")
	fps := fs.Int("fps", 5, "frames per second")
	loop := fs.Bool("loop", false, "replay the clip forever")
	wait := fs.Bool("wait", true, "hold the clip until the first reader plays, so it sees it from the start")
	truthFile := fs.String("truth", "", "write the ground truth (JSON) to this file")
	data := fs.String("data", "", "the shared data set (default $"+testdata.EnvShared+" or ../shared/data from the repository)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var w, h int
	if _, err := fmt.Sscanf(*size, "%dx%d", &w, &h); err != nil {
		return usageErrorf("--size: %q is not WxH", *size)
	}
	shared := *data
	if shared == "" {
		shared = testdata.SharedDir()
	}
	sc, err := synthcam.Johns(shared, w, h, *fps)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "facewatch-synth-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	served, err := synthcam.Serve(ctx, sc.Script, dir, synthcam.ServeOptions{Addr: *listen, Name: *path, Loop: *loop, StartOnPlay: *wait})
	if err != nil {
		return err
	}
	defer served.Server.Close()
	if *truthFile != "" {
		b, err := json.MarshalIndent(struct {
			URL        string         `json:"url"`
			Enrolled   string         `json:"enrolled"`
			EnrolPhoto string         `json:"enrol_photo"`
			Truth      synthcam.Truth `json:"truth"`
		}{served.URL, sc.Enrolled, sc.EnrolPhoto, served.Truth}, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*truthFile, b, 0o644); err != nil {
			return fmt.Errorf("writing ground truth: %w", err)
		}
	}
	fmt.Fprintf(e.stdout, "rtsp %s\n", served.URL)
	fmt.Fprintf(e.stdout, "enrol %s from %s\n", sc.Enrolled, filepath.Clean(sc.EnrolPhoto))
	for _, a := range served.Truth.Appearances {
		fmt.Fprintf(e.stdout, "truth %-16s %5.1fs..%5.1fs frames %d..%d\n", a.Identity, a.Start.Seconds(), a.End.Seconds(), a.FirstFrame, a.LastFrame)
	}
	select {
	case <-ctx.Done():
	case <-served.Path.Done():
		fmt.Fprintln(e.stdout, "clip finished")
	}
	return nil
}
