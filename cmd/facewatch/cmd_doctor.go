package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
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
	"github.com/facewatch/facewatch/internal/dlib"
	"github.com/facewatch/facewatch/models"
)

// check is one doctor finding.
type check struct {
	name   string
	status string // ok, info, warn, FAIL
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
	// Informational: a CPU-only dlib is the supported default, not a fault.
	add("cuda", "info", "%s", dlib.CUDA())

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
	checks = append(checks, checkMQTTSink(cfg, dial)...)
	certs := []struct{ name, path string }{
		{"nats.tls.ca_file", cfg.NATS.TLS.CAFile},
		{"nats.tls.cert_file", cfg.NATS.TLS.CertFile},
		{"alert.tls.cert_file", cfg.Alert.TLS.CertFile},
		{"alert.sinks.mqtt.tls.ca_file", cfg.Alert.Sinks.MQTT.TLS.CAFile},
		{"alert.sinks.mqtt.tls.cert_file", cfg.Alert.Sinks.MQTT.TLS.CertFile},
	}
	for _, c := range cfg.Cameras {
		certs = append(certs, struct{ name, path string }{"camera " + c.ID + " ca", c.TLSCAFile})
	}
	for _, f := range certs {
		if f.path != "" {
			checks = append(checks, checkCertFile(f.name, f.path, time.Now())...)
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

// checkDataDir reports whether the data directory can be written (or, when
// it does not exist yet, created: its nearest existing parent is writable),
// and warns when little disk space is left. It creates nothing: a doctor
// run without --config must not leave a ./facewatch-data behind.
func checkDataDir(dir string) check {
	abs := absPath(dir)
	probe, note := abs, "writable"
	for {
		st, err := os.Stat(probe)
		if err == nil && st.IsDir() {
			break
		}
		if err == nil || !errors.Is(err, os.ErrNotExist) {
			return check{"data dir", "FAIL", fmt.Sprintf("cannot create %s: %s is not a directory", abs, probe)}
		}
		parent := filepath.Dir(probe)
		if parent == probe {
			return check{"data dir", "FAIL", fmt.Sprintf("cannot create %s: no existing parent", abs)}
		}
		probe, note = parent, "does not exist yet; can be created (its parent "+parent+" is writable)"
	}
	f, err := os.CreateTemp(probe, ".doctor-*")
	if err != nil {
		if probe != abs {
			return check{"data dir", "FAIL", fmt.Sprintf("cannot create %s: %s is not writable: %v", abs, probe, errors.Unwrap(err))}
		}
		return check{"data dir", "FAIL", fmt.Sprintf("%s is not writable: %v", abs, errors.Unwrap(err))}
	}
	f.Close()
	os.Remove(f.Name())
	var st syscall.Statfs_t
	if err := syscall.Statfs(probe, &st); err == nil {
		free := int64(st.Bavail) * int64(st.Bsize)
		if free < minFreeDisk {
			return check{"data dir", "warn", fmt.Sprintf("%s has only %d MiB free", abs, free>>20)}
		}
		return check{"data dir", "ok", fmt.Sprintf("%s %s, %d GiB free", abs, note, free>>30)}
	}
	return check{"data dir", "ok", abs + " " + note}
}

// certWarn is how long before expiry doctor starts warning.
const certWarn = 30 * 24 * time.Hour

// checkCertFile reports each certificate in a PEM file: who it is for,
// when it expires and how long is left. Expired or not yet valid is a
// failure; under certWarn left is a warning.
func checkCertFile(name, path string, now time.Time) []check {
	data, err := os.ReadFile(path)
	if err != nil {
		return []check{{name, "FAIL", fmt.Sprintf("cannot read %s: %v", path, errors.Unwrap(err))}}
	}
	var out []check
	for n := 0; ; n++ {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			if n == 0 {
				return []check{{name, "FAIL", path + " holds no PEM certificate"}}
			}
			return out
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			out = append(out, check{name, "FAIL", fmt.Sprintf("%s: certificate %d does not parse: %v", path, n+1, err)})
			continue
		}
		who := c.Subject.CommonName
		if who == "" {
			who = c.Subject.String()
		}
		left := c.NotAfter.Sub(now)
		switch {
		case now.Before(c.NotBefore):
			out = append(out, check{name, "FAIL", fmt.Sprintf("%q is not valid until %s", who, c.NotBefore.UTC().Format(time.RFC3339))})
		case left <= 0:
			out = append(out, check{name, "FAIL", fmt.Sprintf("%q expired %s ago, on %s", who, days(-left), c.NotAfter.UTC().Format(time.RFC3339))})
		case left < certWarn:
			out = append(out, check{name, "warn", fmt.Sprintf("%q expires in %s, on %s: renew it", who, days(left), c.NotAfter.UTC().Format(time.RFC3339))})
		default:
			out = append(out, check{name, "ok", fmt.Sprintf("%q valid for %s more, until %s", who, days(left), c.NotAfter.UTC().Format(time.RFC3339))})
		}
	}
}

// days writes a duration as days (or hours under two days).
func days(d time.Duration) string {
	if d < 48*time.Hour {
		return fmt.Sprintf("%.0f hours", d.Hours())
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}
