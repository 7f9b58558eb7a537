package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/facewatch/facewatch/alert"
	"github.com/facewatch/facewatch/internal/natsbus"
)

func cmdToken(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usageErrorf("want a subcommand: create, list or revoke (see `facewatch token -h`)")
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet(e, "token "+sub, "token create --role ROLE --person NAME --scope SCOPE [--name LABEL] [--ttl DURATION] [--config FILE]\n"+
		"       facewatch token list [--config FILE]\n       facewatch token revoke ID [--config FILE]")
	cfgPath := fs.String("config", "", "config `FILE` of the service (its data_dir holds the tokens)")
	role := fs.String("role", "", "create: the token's `ROLE`: admin, curator, operator, investigator or integrator (required)")
	person := fs.String("person", "", "create: the `PERSON` the token belongs to (required; the audit log and the second-reviewer rule go by person)")
	name := fs.String("name", "", "create: a `LABEL` for the token (\"ana's laptop\")")
	ttl := fs.Duration("ttl", alert.DefaultTokenTTL, "create: how long the token is valid")
	by := fs.String("by", "", "a `NOTE` for the audit log (on whose behalf); the OS user is recorded whatever it says")
	scopeFlag := fs.String("scope", "", "create: what the token sees, a `SCOPE`: group:NAME,watchlist:NAME,... (camera groups of alert.camera_groups and watchlists), or all for the whole site (required for operator, investigator and integrator tokens)")
	if isHelp(sub) {
		fs.Usage()
		return flag.ErrHelp
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch sub {
	case "create":
		if fs.NArg() != 0 {
			return usageErrorf("token create takes no arguments")
		}
		if *role == "" {
			return usageErrorf("--role is required: admin, curator, operator, investigator or integrator")
		}
		if _, err := alert.ParseRole(*role); err != nil {
			return usageErrorf("--role: %v", err)
		}
	case "list":
	case "revoke":
		if fs.NArg() != 1 {
			return usageErrorf("token revoke takes one token ID (see token list)")
		}
	default:
		return usageErrorf("unknown subcommand %q: want create, list or revoke", sub)
	}
	cfg, err := e.serviceConfig(*cfgPath)
	if err != nil {
		return err
	}
	db := alert.DBPath(cfg.DataDir)
	// A token is only of use in the database the service reads. Without
	// --config that must be one a service has opened already: a token
	// written anywhere else is refused by the running service with no
	// hint why (the issue this guards). With --config the file says where,
	// and a first token may come before the service's first start.
	if *cfgPath == "" {
		if _, err := os.Stat(db); err != nil {
			return fmt.Errorf("no alert database %s: give --config FILE, the config of the service whose tokens these are", absPath(db))
		}
	}
	local := func() (alert.Local, func(), error) {
		actor, err := e.localActor()
		if err != nil {
			return alert.Local{}, nil, err
		}
		l := alert.Local{DataDir: cfg.DataDir, AuditDir: auditDir(cfg), Actor: actor, Note: *by}
		done, js, err := connectJS(ctx, e, cfg, "facewatch-token", natsbus.RoleAdmin)
		if err != nil {
			return alert.Local{}, nil, err
		}
		if js == nil {
			return l, done, nil
		}
		if err := natsbus.EnsureStreams(ctx, js, natsbus.TopologyOf(cfg)); err != nil {
			done()
			return alert.Local{}, nil, err
		}
		l.JS = js
		return l, done, nil
	}
	switch sub {
	case "create":
		r, _ := alert.ParseRole(*role) // checked above
		if strings.TrimSpace(*person) == "" {
			return usageErrorf("--person NAME is required: a token belongs to a person")
		}
		sc, err := tokenScope(r, *scopeFlag, cfg.Alert.CameraGroups)
		if err != nil {
			return err
		}
		l, done, err := local()
		if err != nil {
			return err
		}
		defer done()
		tok, info, err := alert.CreateToken(ctx, l, alert.TokenSpec{Role: r, Person: *person, Name: *name, TTL: *ttl, Scope: sc})
		if err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, tok)
		fmt.Fprintf(e.stderr, "token %s for %s as %s (scope %s) valid until %s, stored in %s; it is shown only this once\n", info.ID, info.Person, r, info.Scope, info.Expires.Format(time.RFC3339), absPath(db))
		return nil
	case "list":
		toks, err := alert.ListTokens(ctx, db)
		if err != nil {
			return err
		}
		for _, t := range toks {
			state := "active"
			if t.Revoked {
				state = "revoked"
			} else if time.Now().After(t.Expires) {
				state = "expired"
			}
			fmt.Fprintf(e.stdout, "%s  %-12s  %-8s  expires %s  scope %s  %s  %s\n", t.ID, t.Role, state, t.Expires.Format(time.RFC3339), t.Scope, t.Person, t.Name)
		}
		return nil
	default: // revoke
		l, done, err := local()
		if err != nil {
			return err
		}
		defer done()
		if err := alert.RevokeToken(ctx, l, fs.Arg(0)); err != nil {
			return err
		}
		id := fs.Arg(0)
		toks, err := alert.ListTokens(ctx, db)
		if err != nil {
			return err
		}
		for _, t := range toks {
			if t.ID == id {
				fmt.Fprintf(e.stdout, "token %s revoked (role %s, person %q, name %q, created %s)\n", t.ID, t.Role, t.Person, t.Name, t.Created.Format(time.RFC3339))
				return nil
			}
		}
		fmt.Fprintf(e.stdout, "token %s revoked\n", id)
		return nil
	}
}

// tokenScope reads token create's --scope for role: required (site-wide
// only as "all") for the roles a scope applies to, and every group it
// names must be one the configuration declares.
func tokenScope(r alert.Role, flag string, groups map[string][]string) (alert.Scope, error) {
	if flag == "" {
		if r != alert.RoleOperator && r != alert.RoleInvestigator && r != alert.RoleIntegrator {
			return alert.Scope{}, nil // admin and curator tokens are site-wide
		}
		return alert.Scope{}, usageErrorf("--scope: %s tokens need a scope: camera groups and/or watchlists (group:NAME,watchlist:NAME), or all for the whole site", r)
	}
	sc, err := alert.ParseScope(flag)
	if err != nil {
		return alert.Scope{}, usageErrorf("--scope: %v", err)
	}
	for _, g := range sc.Groups {
		if _, ok := groups[g]; !ok {
			return alert.Scope{}, usageErrorf("--scope: camera group %q is not declared in alert.camera_groups", g)
		}
	}
	return sc, nil
}
