package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/facewatch/facewatch/alert"
	"github.com/facewatch/facewatch/internal/evidence"
)

// cmdEvidence runs `facewatch evidence export|verify|pubkey`: signed
// evidence bundles of alerts (alert.ExportEvidence) and their offline
// check (evidence.Verify).
func cmdEvidence(ctx context.Context, e *env, args []string) error {
	const usage = "evidence export --alert ID --case REF [--out FILE] [--by NOTE] [--config FILE]\n       facewatch evidence verify [--pubkey FILE] FILE\n       facewatch evidence pubkey [--out FILE] [--config FILE]"
	if len(args) == 0 {
		return usageErrorf("want a verb: export, verify or pubkey")
	}
	verb, args := args[0], args[1:]
	fs := newFlagSet(e, "evidence "+verb, usage)
	cfgPath := fs.String("config", "", "export, pubkey: config `FILE` of the service (its data_dir holds the alerts and the site key)")
	id := fs.Int64("alert", 0, "export: the alert's `ID` (required)")
	caseRef := fs.String("case", "", "export: case reference `REF` (required; audited)")
	out := fs.String("out", "", "export: the bundle `FILE` (evidence-alert-ID.json when not given); pubkey: the PEM file (stdout when not given)")
	by := fs.String("by", "", "export: a `NOTE` on whose behalf (recorded beside the OS user, never instead)")
	pubFile := fs.String("pubkey", "", "verify: the site's public key `FILE` (PEM from evidence pubkey); without it the bundle's own key is used, which proves only that it is intact")
	if isHelp(verb) {
		fs.Usage()
		return flag.ErrHelp
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch verb {
	case "export":
		if fs.NArg() != 0 || *id < 1 || *caseRef == "" {
			return usageErrorf("evidence export wants --alert ID and --case REF, and no arguments")
		}
		cfg, err := e.serviceConfig(*cfgPath)
		if err != nil {
			return err
		}
		actor, err := e.localActor()
		if err != nil {
			return err
		}
		l := alert.Local{DataDir: cfg.DataDir, AuditDir: auditDir(cfg), Actor: actor, Note: *by}
		b, err := alert.ExportEvidence(ctx, l, cfg.Alert, alertPhotoDir(cfg), *id, *caseRef)
		if err != nil {
			return err
		}
		path := *out
		if path == "" {
			path = "evidence-alert-" + strconv.FormatInt(*id, 10) + ".json"
		}
		// Never overwrite evidence; the bundle holds faces: owner only.
		if err := writeNew(path, b); err != nil {
			return fmt.Errorf("writing the bundle: %w", err)
		}
		r, err := evidence.Verify(b, nil)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "evidence bundle of alert %d for case %s written to %s (%d parts, signed with key %s)\n",
			*id, *caseRef, path, len(r.Manifest.Parts), r.KeyID)
		for _, o := range r.Manifest.Omitted {
			fmt.Fprintf(e.stdout, "omitted: %s: %s\n", o.Name, o.Reason)
		}
		return nil
	case "verify":
		if fs.NArg() != 1 {
			return usageErrorf("evidence verify wants one bundle file")
		}
		data, err := os.ReadFile(fs.Arg(0))
		if err != nil {
			return err
		}
		var trusted ed25519.PublicKey
		if *pubFile != "" {
			pem, err := os.ReadFile(*pubFile)
			if err != nil {
				return err
			}
			if trusted, err = evidence.ParsePublicKey(pem); err != nil {
				return fmt.Errorf("%s: %w", *pubFile, err)
			}
		}
		r, err := evidence.Verify(data, trusted)
		if err != nil {
			return fmt.Errorf("%s: %w", fs.Arg(0), err)
		}
		m := r.Manifest
		fmt.Fprintf(e.stdout, "bundle: %s, case %s, created %s by %s\n", m.Subject, m.Case, m.Created.Format("2006-01-02T15:04:05Z07:00"), m.ExportedBy)
		for _, p := range m.Parts {
			state := "ok"
			if _, good := r.Parts[p.Name]; !good {
				state = "ALTERED OR MISSING"
			}
			fmt.Fprintf(e.stdout, "part %-18s %-18s %8d bytes  sha256 %s  %s\n", p.Name, p.MediaType, p.Size, p.SHA256, state)
		}
		for _, o := range m.Omitted {
			fmt.Fprintf(e.stdout, "omitted: %s: %s\n", o.Name, o.Reason)
		}
		for _, p := range r.Problems {
			fmt.Fprintf(e.stdout, "PROBLEM: %s\n", p)
		}
		if !r.OK() {
			return fmt.Errorf("%s does not verify: %s", fs.Arg(0), strings.Join(r.Problems, "; "))
		}
		if r.Trusted {
			fmt.Fprintf(e.stdout, "verified: signature by key %s (the given key) and every part intact\n", r.KeyID)
		} else {
			fmt.Fprintf(e.stdout, "intact under the key the bundle carries (%s); check that key id against the site's published key (--pubkey)\n", r.KeyID)
		}
		return nil
	case "pubkey":
		if fs.NArg() != 0 {
			return usageErrorf("evidence pubkey takes no arguments")
		}
		cfg, err := e.serviceConfig(*cfgPath)
		if err != nil {
			return err
		}
		pub, err := alert.EvidencePublicKey(cfg.DataDir, cfg.Alert)
		if err != nil {
			return err
		}
		if *out == "" {
			_, err = e.stdout.Write(evidence.PublicKeyPEM(pub))
			return err
		}
		if err := os.WriteFile(*out, evidence.PublicKeyPEM(pub), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "public key %s written to %s\n", evidence.KeyID(pub), *out)
		return nil
	default:
		return usageErrorf("unknown verb %q: want export, verify or pubkey", verb)
	}
}

// writeNew writes b to a new file of mode 0600, refusing to replace one.
func writeNew(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.Write(b)
	serr := f.Sync()
	if err := errors.Join(werr, serr, f.Close()); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}
