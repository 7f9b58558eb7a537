package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/facewatch/facewatch/camera"
)

// cmdCamera runs the camera stage; only `camera probe URL` is built so far.
func cmdCamera(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 && args[0] == "probe" {
		return cmdCameraProbe(ctx, e, args[1:])
	}
	return fmt.Errorf("%w (command camera; `facewatch camera probe URL` tests a source)", errNotBuilt)
}

// cmdCameraProbe connects to a source, reads a few frames and prints what
// an integrator needs to know first.
func cmdCameraProbe(ctx context.Context, e *env, args []string) error {
	const usage = "camera probe [--frames N] [--open-timeout D] [--read-timeout D] [--json] URL"
	fs := newFlagSet(e, "camera probe", usage)
	frames := fs.Int("frames", 50, "frames to read (the rate is measured on those not already buffered)")
	openTimeout := fs.Duration("open-timeout", 10*time.Second, "how long the open may take")
	readTimeout := fs.Duration("read-timeout", 5*time.Second, "how long one frame may take")
	asJSON := fs.Bool("json", false, "print one JSON object")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErrorf("want one URL, got %d arguments", fs.NArg())
	}
	if *frames < 1 {
		return usageErrorf("--frames %d must be at least 1", *frames)
	}
	res, err := camera.Probe(ctx, fs.Arg(0), camera.ProbeOptions{
		Frames: *frames, OpenTimeout: *openTimeout, ReadTimeout: *readTimeout,
	})
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(map[string]any{
			"url": res.URL, "codec": res.Codec, "width": res.Width, "height": res.Height,
			"fps": res.FPS, "measured_fps": res.MeasuredFPS, "frames": res.Frames,
			"open_ms": res.OpenTime.Milliseconds(), "first_frame_ms": res.FirstFrame.Milliseconds(),
		})
	}
	fmt.Fprintf(e.stdout, "url          %s\n", res.URL)
	fmt.Fprintf(e.stdout, "codec        %s\n", res.Codec)
	fmt.Fprintf(e.stdout, "resolution   %dx%d\n", res.Width, res.Height)
	fmt.Fprintf(e.stdout, "fps          %.2f announced, %.2f measured over %d frames\n", res.FPS, res.MeasuredFPS, res.Frames)
	fmt.Fprintf(e.stdout, "open         %v\n", res.OpenTime.Round(time.Millisecond))
	fmt.Fprintf(e.stdout, "first frame  %v\n", res.FirstFrame.Round(time.Millisecond))
	return nil
}
