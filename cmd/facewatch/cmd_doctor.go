package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/models"
)

// check is one doctor finding.
type check struct {
	name   string
	status string // ok, warn, FAIL
	detail string
}

// minFreeDisk is the free space under the data directory below which the
// doctor warns: alerts and the audit log must never meet a full disk.
const minFreeDisk = 1 << 30

func cmdDoctor(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "doctor", "doctor [--config FILE] [--model-dir DIR]")
	cfgPath := fs.String("config", "", "config file to check (without it, the defaults)")
	dirFlag := fs.String("model-dir", "", "model directory")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for each network check")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var checks []check
	add := func(name, status, format string, a ...any) {
		checks = append(checks, check{name, status, fmt.Sprintf(format, a...)})
	}
	cfg, err := e.loadConfig(*cfgPath)
	if err != nil {
		add("config", "FAIL", "%s", config.RedactError(err))
		cfg = config.Defaults()
	} else {
		add("config", "ok", "%d cameras, nats %s", len(cfg.Cameras), natsDesc(cfg.NATS))
	}

	dir, src, err := models.Locate(*dirFlag, cfg.ModelDir, e.getenv)
	if err != nil {
		add("models", "FAIL", "%v", err)
	} else if _, err := models.Verify(dir); err != nil {
		add("models", "FAIL", "%v (run `facewatch models fetch`)", err)
	} else {
		add("models", "ok", "all verified in %s (from %s)", dir, src)
	}

	checks = append(checks, checkDataDir(cfg.DataDir))

	dial := func(name, hostport string) {
		d := net.Dialer{Timeout: *timeout}
		c, err := d.DialContext(ctx, "tcp", hostport)
		if err != nil {
			add(name, "FAIL", "cannot connect to %s: %s", hostport, config.RedactError(err))
			return
		}
		c.Close()
		add(name, "ok", "%s reachable", hostport)
	}
	if cfg.NATS.URL != "" {
		for _, raw := range strings.Split(cfg.NATS.URL, ",") {
			u, err := url.Parse(strings.TrimSpace(raw))
			if err != nil {
				continue // validation already reported it
			}
			dial("nats", hostWithPort(u, "4222"))
		}
	}
	for _, c := range cfg.Cameras {
		name := "camera " + c.ID
		u, err := url.Parse(c.URL)
		if err != nil {
			continue
		}
		switch u.Scheme {
		case "rtsp":
			dial(name, hostWithPort(u, "554"))
		case "rtsps":
			dial(name, hostWithPort(u, "322"))
		case "http":
			dial(name, hostWithPort(u, "80"))
		case "https":
			dial(name, hostWithPort(u, "443"))
		default:
			p := strings.TrimPrefix(c.URL, "file://")
			if _, err := os.Stat(p); err != nil {
				add(name, "FAIL", "source file: %v", err)
			} else {
				add(name, "ok", "source file present")
			}
		}
	}
	if l, err := net.Listen("tcp", cfg.Alert.Listen); err != nil {
		add("alert api", "warn", "cannot listen on %s (in use by a running facewatch?): %v", cfg.Alert.Listen, err)
	} else {
		l.Close()
		add("alert api", "ok", "%s is free", cfg.Alert.Listen)
	}

	failed := 0
	for _, c := range checks {
		fmt.Fprintf(e.stdout, "%-4s  %-18s %s\n", c.status, c.name, c.detail)
		if c.status == "FAIL" {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d checks failed", failed, len(checks))
	}
	return nil
}

func hostWithPort(u *url.URL, def string) string {
	if u.Port() != "" {
		return u.Host[strings.LastIndex(u.Host, "@")+1:]
	}
	return net.JoinHostPort(u.Hostname(), def)
}

// checkDataDir reports whether the data directory can be created and
// written, and warns when little disk space is left.
func checkDataDir(dir string) check {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return check{"data dir", "FAIL", fmt.Sprintf("cannot create %s: %v", dir, errors.Unwrap(err))}
	}
	f, err := os.CreateTemp(dir, ".doctor-*")
	if err != nil {
		return check{"data dir", "FAIL", fmt.Sprintf("%s is not writable: %v", dir, errors.Unwrap(err))}
	}
	f.Close()
	os.Remove(f.Name())
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err == nil {
		free := int64(st.Bavail) * int64(st.Bsize)
		if free < minFreeDisk {
			return check{"data dir", "warn", fmt.Sprintf("%s has only %d MiB free", dir, free>>20)}
		}
		abs, _ := filepath.Abs(dir)
		return check{"data dir", "ok", fmt.Sprintf("%s writable, %d GiB free", abs, free>>30)}
	}
	return check{"data dir", "ok", dir + " writable"}
}
