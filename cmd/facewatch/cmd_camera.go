package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/facewatch/facewatch/camera"
)

// cmdCamera runs the camera stage (cmdCameraStage, cmd_pipeline.go), or
// `camera probe URL` to test a source.
func cmdCamera(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 && args[0] == "probe" {
		return cmdCameraProbe(ctx, e, args[1:])
	}
	return cmdCameraStage(ctx, e, args)
}

// cmdCameraProbe connects to a source, reads a few frames and prints what
// an integrator needs to know first.
func cmdCameraProbe(ctx context.Context, e *env, args []string) error {
	const usage = "camera probe [--frames N] [--open-timeout D] [--read-timeout D] [--transport tcp|udp] [--tls-ca FILE] [--insecure-skip-verify] [--json] URL"
	fs := newFlagSet(e, "camera probe", usage)
	frames := fs.Int("frames", 50, "frames to read (the rate is measured on those not already buffered)")
	openTimeout := fs.Duration("open-timeout", 10*time.Second, "how long the open may take")
	readTimeout := fs.Duration("read-timeout", 5*time.Second, "how long one frame may take")
	transport := fs.String("transport", "tcp", "RTSP transport: tcp or udp")
	asJSON := fs.Bool("json", false, "print one JSON object")
	tlsCA := fs.String("tls-ca", "", "rtsps: certificates (PEM) trusted for the camera besides the system's")
	insecure := fs.Bool("insecure-skip-verify", false, "rtsps: do not verify the camera's certificate")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErrorf("want one URL, got %d arguments", fs.NArg())
	}
	if *transport != "tcp" && *transport != "udp" {
		return usageErrorf("--transport %q is not one of tcp, udp", *transport)
	}
	if *frames < 1 {
		return usageErrorf("--frames %d must be at least 1", *frames)
	}
	res, err := camera.Probe(ctx, fs.Arg(0), camera.ProbeOptions{
		Frames: *frames, OpenTimeout: *openTimeout, ReadTimeout: *readTimeout, Transport: *transport,
		TLS: camera.TLSVerify{CAFile: *tlsCA, InsecureSkipVerify: *insecure},
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
	if res.MeasuredFPS > 0 {
		fmt.Fprintf(e.stdout, "fps          %.2f announced, %.2f measured over %d frames\n", res.FPS, res.MeasuredFPS, res.Frames)
	} else {
		fmt.Fprintf(e.stdout, "fps          %.2f announced, not measured: all %d frames read were already buffered (read more with --frames)\n", res.FPS, res.Frames)
	}
	fmt.Fprintf(e.stdout, "open         %v\n", res.OpenTime.Round(time.Millisecond))
	fmt.Fprintf(e.stdout, "first frame  %v\n", res.FirstFrame.Round(time.Millisecond))
	return nil
}
