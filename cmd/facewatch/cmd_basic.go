package main

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"

	"gocv.io/x/gocv"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/dlib"
)

// version is set at link time (-ldflags "-X main.version=...").
var version = "dev"

func cmdVersion(_ context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "version", "version")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	rev := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				rev = " (" + s.Value[:12] + ")"
			}
		}
	}
	simd := strings.Join(dlib.SIMD(), " ")
	if simd == "" {
		simd = "none"
	}
	fmt.Fprintf(e.stdout, "facewatch %s%s\n", version, rev)
	fmt.Fprintf(e.stdout, "go        %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(e.stdout, "opencv    %s\n", gocv.OpenCVVersion())
	fmt.Fprintf(e.stdout, "dlib      %s\n", dlib.Version())
	fmt.Fprintf(e.stdout, "compiler  %s\n", dlib.Compiler())
	fmt.Fprintf(e.stdout, "simd      %s\n", simd)
	fmt.Fprintf(e.stdout, "cxxflags  %s -march=%s\n", dlib.CXXFlags, dlib.March())
	cpuState := "this CPU has them"
	if err := dlib.CheckCPU(); err != nil {
		cpuState = err.Error()
	}
	fmt.Fprintf(e.stdout, "needs     %s CPU: %s (%s)\n", dlib.March(), simd, cpuState)
	fmt.Fprintf(e.stdout, "cuda      %s\n", dlib.CUDA())
	return nil
}

func cmdCheckConfig(_ context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "check-config", "check-config FILE")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErrorf("want one config file, got %d arguments", fs.NArg())
	}
	cfg, err := e.loadConfig(fs.Arg(0))
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s: ok (%d cameras, nats %s, data %s)\n", fs.Arg(0), len(cfg.Cameras), natsDesc(cfg.NATS), cfg.DataDir)
	return nil
}

func natsDesc(n config.NATS) string {
	if n.URL == "" {
		return "embedded"
	}
	return config.Redact(n.URL)
}

func absDir(path string) (string, error) {
	a, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	return filepath.Dir(a), nil
}
