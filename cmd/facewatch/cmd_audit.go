package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/facewatch/facewatch/alert"
	"github.com/facewatch/facewatch/internal/audit"
	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/match"
)

func cmdAudit(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "audit verify", "audit verify [--config FILE]")
	cfgPath := fs.String("config", "", "config `FILE` of the service (its data_dir holds the audit log)")
	if len(args) > 0 && isHelp(args[0]) {
		fs.Usage()
		return flag.ErrHelp
	}
	if len(args) == 0 || args[0] != "verify" {
		return usageErrorf("want the subcommand verify")
	}
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	cfg, err := e.serviceConfig(*cfgPath)
	if err != nil {
		return err
	}
	keys, err := auditKeys(cfg)
	if err != nil {
		return err
	}
	// The stream's copy of the checkpoints, when there is one: a log and
	// checkpoint file cut together still disagree with it.
	streamed := map[string][]audit.Checkpoint{}
	done, js, err := connectJS(ctx, e, cfg, "facewatch-audit", natsbus.RoleAdmin)
	if err != nil {
		return fmt.Errorf("reading audit checkpoints from JetStream: %w", err)
	}
	if js != nil {
		defer done()
		for _, name := range []string{alert.AuditLogName, match.AuditLogName} {
			if streamed[name], err = audit.Fetch(ctx, js, name); err != nil {
				return err
			}
		}
	}
	var errs []error
	for _, l := range []struct {
		name, path string
		verify     func() (audit.Report, error)
	}{
		{alert.AuditLogName, alert.DBPath(cfg.DataDir), func() (audit.Report, error) {
			return alert.VerifyAudit(ctx, cfg.DataDir, auditDir(cfg), streamed[alert.AuditLogName])
		}},
		{match.AuditLogName, filepath.Join(cfg.DataDir, match.GalleryFile), func() (audit.Report, error) {
			return match.VerifyAudit(ctx, cfg.DataDir, keys, streamed[match.AuditLogName])
		}},
	} {
		if _, err := os.Stat(l.path); errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(e.stdout, "audit log %s: no database yet\n", l.name)
			continue
		}
		rep, err := l.verify()
		if err != nil {
			errs = append(errs, fmt.Errorf("audit log %s (%s): %d entries verified before the break: %w", l.name, l.path, rep.Entries, err))
			continue
		}
		fmt.Fprintf(e.stdout, "audit log %s ok: %d entries, chain intact (keyed from entry %d); head %d %s; %d checkpoints, the last covering entry %d; %d details expired\n",
			l.name, rep.Entries, rep.Era, rep.HeadSeq, rep.Head, rep.Checkpoints, rep.Checkpointed, rep.Expired)
	}
	return errors.Join(errs...)
}
