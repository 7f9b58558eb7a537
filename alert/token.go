package alert

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/facewatch/facewatch/internal/audit"
)

// Role is what a token may do; each token has exactly one.
type Role string

// The roles (see routes for what each may call).
const (
	RoleAdmin        Role = "admin"        // users, cameras, configuration, audit
	RoleCurator      Role = "curator"      // watchlists and enrolment
	RoleOperator     Role = "operator"     // live alerts and review
	RoleInvestigator Role = "investigator" // history queries with a case reference
	RoleIntegrator   Role = "integrator"   // health and metrics only
)

// Roles returns every role (a new slice each call: the list that decides
// access is not a variable anyone can change).
func Roles() []Role {
	return []Role{RoleAdmin, RoleCurator, RoleOperator, RoleInvestigator, RoleIntegrator}
}

// ParseRole returns the role named s.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles() {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("role %q is not one of admin, curator, operator, investigator, integrator", s)
}

// tokenPrefix marks facewatch tokens so that a leaked one is recognisable
// (secret scanners) and a wrong credential is refused before any lookup.
const tokenPrefix = "fwt_"

// A token is the prefix and 32 random bytes, base64url without padding.
var tokenFormat = regexp.MustCompile(`^fwt_[A-Za-z0-9_-]{43}$`)

var tokenName = regexp.MustCompile(`^[\pL\pN ._@()-]{0,64}$`)

// MaxTokenTTL bounds a token's lifetime.
const MaxTokenTTL = 5 * 366 * 24 * time.Hour

// DefaultTokenTTL is how long a token is valid when its issuer names no
// lifetime (`facewatch token create` and POST /api/v1/tokens).
const DefaultTokenTTL = 90 * 24 * time.Hour

// TokenInfo describes a stored token; the secret itself is never stored.
type TokenInfo struct {
	ID string `json:"id"`
	// Person is who the token belongs to: the audit log records them, and
	// the second-reviewer rule compares persons, not tokens.
	Person  string    `json:"person"`
	Role    Role      `json:"role"`
	Name    string    `json:"name"` // a label ("ana's laptop")
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	Revoked bool      `json:"revoked"`
	// Scope limits what the token sees (see Scope).
	Scope Scope `json:"scope"`
}

// TokenSpec is what a token is issued for.
type TokenSpec struct {
	Role Role
	// Person is required: 1-64 letters, digits, spaces or ._@()-.
	Person string
	// Name is an optional label.
	Name string
	TTL  time.Duration
	// Scope limits what the token sees (see Scope); the zero Scope is the
	// whole site, which the CLI issues only for --scope all.
	Scope Scope
}

func hashToken(tok string) string {
	s := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(s[:])
}

// normPerson trims a person's name and collapses its inner spaces; persons
// compare without regard to case (samePerson).
func normPerson(p string) string { return strings.Join(strings.Fields(p), " ") }

// samePerson reports whether two recorded persons are the same person.
func samePerson(a, b string) bool { return strings.EqualFold(normPerson(a), normPerson(b)) }

// Local is a local command (the facewatch CLI) working on the alert
// database's files directly, as the OS user running it: its changes are
// audited with Actor (see internal/audit's local actor) and checkpointed
// when it is done.
type Local struct {
	DataDir string
	// AuditDir holds the audit keys and checkpoints ("" = the default).
	AuditDir string
	Actor    audit.Actor
	// Note is free text recorded with each entry (the CLI's --by: on
	// whose behalf; it never replaces Actor).
	Note string
	// JS, when set, also receives the audit checkpoint.
	JS jetstream.JetStream
}

// do opens the database and the audit log, runs fn, and checkpoints the
// log after it.
func (l Local) do(ctx context.Context, fn func(d *db, alog *audit.Log) error) error {
	keys, err := auditKeys(l.DataDir, l.AuditDir)
	if err != nil {
		return err
	}
	d, err := openDB(ctx, DBPath(l.DataDir))
	if err != nil {
		return err
	}
	defer d.Close()
	alog := audit.NewLog(AuditLogName, keys, "")
	if err := alog.Start(ctx, d.w, time.Now()); err != nil {
		return err
	}
	ferr := fn(d, alog)
	c, wrote, err := alog.Checkpoint(ctx, d.r, time.Now())
	if err != nil {
		return errors.Join(ferr, err)
	}
	if wrote && l.JS != nil {
		if err := audit.Publish(ctx, l.JS, c); err != nil {
			ferr = errors.Join(ferr, fmt.Errorf("the checkpoint file has it: %w", err))
		}
	}
	return ferr
}

// CreateToken issues a token (see TokenSpec) in the alert database, as
// the local actor l. The token is returned once and only its SHA-256 is
// stored; the issue is audited.
func CreateToken(ctx context.Context, l Local, spec TokenSpec) (tok string, info TokenInfo, err error) {
	err = l.do(ctx, func(d *db, alog *audit.Log) error {
		tok, info, err = createToken(ctx, d.w, alog, l.Actor, l.Note, spec, time.Now())
		return err
	})
	return tok, info, err
}

// CreateToken issues a token in the service's own database, audited as
// by (see the package-level CreateToken).
func (s *Service) CreateToken(ctx context.Context, by audit.Actor, spec TokenSpec) (string, TokenInfo, error) {
	return createToken(ctx, s.db.w, s.alog, by, "", spec, s.now())
}

func createToken(ctx context.Context, w *sql.DB, alog *audit.Log, by audit.Actor, note string, spec TokenSpec, now time.Time) (string, TokenInfo, error) {
	if _, err := ParseRole(string(spec.Role)); err != nil {
		return "", TokenInfo{}, fmt.Errorf("creating token: %w", err)
	}
	person := normPerson(spec.Person)
	if person == "" || !tokenName.MatchString(person) {
		return "", TokenInfo{}, fmt.Errorf("creating token: person %q must be 1-64 letters, digits, spaces or ._@()-", spec.Person)
	}
	if !tokenName.MatchString(spec.Name) {
		return "", TokenInfo{}, fmt.Errorf("creating token: name %q must be at most 64 letters, digits, spaces or ._@()-", spec.Name)
	}
	if spec.TTL <= 0 || spec.TTL > MaxTokenTTL {
		return "", TokenInfo{}, fmt.Errorf("creating token: ttl %v is not in (0, %v]", spec.TTL, MaxTokenTTL)
	}
	// Round-trip the scope through its stored form: what is stored is what
	// authenticate will read.
	scope, err := ParseScope(spec.Scope.String())
	if err != nil {
		return "", TokenInfo{}, fmt.Errorf("creating token: %w", err)
	}
	if err := checkScopeForRole(spec.Role, scope); err != nil {
		return "", TokenInfo{}, fmt.Errorf("creating token: %w", err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", TokenInfo{}, fmt.Errorf("creating token: %w", err)
	}
	tok := tokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	h := hashToken(tok)
	info := TokenInfo{ID: h[:12], Person: person, Role: spec.Role, Name: spec.Name, Created: now.UTC(), Expires: now.Add(spec.TTL).UTC(), Scope: scope}
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return "", TokenInfo{}, fmt.Errorf("storing token: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO tokens (id, hash, role, name, person, created_ns, expires_ns, scope) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		info.ID, h, string(spec.Role), spec.Name, person, info.Created.UnixNano(), info.Expires.UnixNano(), scope.String()); err != nil {
		return "", TokenInfo{}, fmt.Errorf("storing token: %w", err)
	}
	d, _ := json.Marshal(map[string]string{"person": person, "role": string(spec.Role), "name": spec.Name,
		"expires": info.Expires.Format(time.RFC3339), "scope": scope.String(), "note": note})
	if err := alog.Append(ctx, tx, &audit.Entry{Time: now, Actor: by.ID, ActorName: by.Name, Role: by.Role,
		Action: "token_create", Target: "token/" + info.ID, Detail: string(d)}); err != nil {
		return "", TokenInfo{}, err
	}
	if err := tx.Commit(); err != nil {
		return "", TokenInfo{}, fmt.Errorf("storing token: %w", err)
	}
	return tok, info, nil
}

// ListTokens lists the tokens in the database at dbPath.
func ListTokens(ctx context.Context, dbPath string) ([]TokenInfo, error) {
	d, err := openDB(ctx, dbPath)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return listTokens(ctx, d.r)
}

// listTokens lists the tokens, oldest first.
func listTokens(ctx context.Context, q queryer) ([]TokenInfo, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, person, role, name, created_ns, expires_ns, revoked_ns, scope FROM tokens ORDER BY created_ns`)
	if err != nil {
		return nil, fmt.Errorf("listing tokens: %w", err)
	}
	defer rows.Close()
	var out []TokenInfo
	for rows.Next() {
		var t TokenInfo
		var role string
		var c, e, r int64
		var scope string
		if err := rows.Scan(&t.ID, &t.Person, &role, &t.Name, &c, &e, &r, &scope); err != nil {
			return nil, fmt.Errorf("listing tokens: %w", err)
		}
		t.Role, t.Created, t.Expires, t.Revoked = Role(role), time.Unix(0, c).UTC(), time.Unix(0, e).UTC(), r != 0
		if t.Scope, err = ParseScope(scope); err != nil {
			return nil, fmt.Errorf("listing tokens: token %s: %w", t.ID, err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevokeToken revokes the token with the given ID (as ListTokens shows
// it), as the local actor l; the revocation is audited. A running
// service closes the token's live feeds within TokenRecheck.
func RevokeToken(ctx context.Context, l Local, id string) error {
	return l.do(ctx, func(d *db, alog *audit.Log) error {
		return revokeToken(ctx, d.w, alog, l.Actor, l.Note, id, time.Now())
	})
}

func revokeToken(ctx context.Context, w *sql.DB, alog *audit.Log, by audit.Actor, note, id string, now time.Time) error {
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("revoking token %s: %w", id, err)
	}
	defer tx.Rollback()
	var person, role string
	err = tx.QueryRowContext(ctx, `SELECT person, role FROM tokens WHERE id = ? AND revoked_ns = 0`, id).Scan(&person, &role)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("revoking token %q: %w", id, errNoSuchToken)
	}
	if err != nil {
		return fmt.Errorf("revoking token %s: %w", id, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE tokens SET revoked_ns = ? WHERE id = ?`, now.UnixNano(), id); err != nil {
		return fmt.Errorf("revoking token %s: %w", id, err)
	}
	d, _ := json.Marshal(map[string]string{"person": person, "role": role, "note": note})
	if err := alog.Append(ctx, tx, &audit.Entry{Time: now, Actor: by.ID, ActorName: by.Name, Role: by.Role,
		Action: "token_revoke", Target: "token/" + id, Detail: string(d)}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("revoking token %s: %w", id, err)
	}
	return nil
}

// The reasons authentication fails; the API answers 401 with the text.
var (
	errNoToken        = errors.New("missing bearer token")
	errMalformedToken = errors.New("malformed bearer token")
	errUnknownToken   = errors.New("unknown or revoked token")
	errExpiredToken   = errors.New("expired token")
)

// principal is an authenticated caller.
type principal struct {
	ID      string
	Name    string
	Person  string
	Role    Role
	Expires time.Time
	// Scope is what the caller may see (see Scope).
	Scope Scope
}

// actor is how the audit log records p.
func (p principal) actor() audit.Actor {
	return audit.Actor{ID: p.ID, Name: p.Person, Role: string(p.Role)}
}

// TokenRecheck is how often an open live feed checks that its token is
// still valid: a revoked or expired token's feed ends within it.
const TokenRecheck = time.Second

// tokenValid reports whether p's token is still neither revoked nor
// expired (false on a database error too: the feed ends, the client
// reconnects and is authenticated afresh).
func (s *Service) tokenValid(ctx context.Context, p principal) bool {
	var exp, revoked int64
	err := s.db.r.QueryRowContext(ctx, `SELECT expires_ns, revoked_ns FROM tokens WHERE id = ?`, p.ID).Scan(&exp, &revoked)
	return err == nil && revoked == 0 && s.now().UnixNano() < exp
}

// authenticate checks a presented token against the store.
func (s *Service) authenticate(ctx context.Context, tok string) (principal, error) {
	if tok == "" {
		return principal{}, errNoToken
	}
	if !tokenFormat.MatchString(tok) {
		return principal{}, errMalformedToken
	}
	var p principal
	var role string
	var exp, revoked int64
	var scope string
	err := s.db.r.QueryRowContext(ctx, `SELECT id, name, person, role, expires_ns, revoked_ns, scope FROM tokens WHERE hash = ?`, hashToken(tok)).
		Scan(&p.ID, &p.Name, &p.Person, &role, &exp, &revoked, &scope)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return principal{}, errUnknownToken
	case err != nil:
		return principal{}, fmt.Errorf("looking up token: %w", err)
	case revoked != 0:
		return principal{}, errUnknownToken
	case s.now().UnixNano() >= exp:
		return principal{}, errExpiredToken
	}
	p.Role, p.Expires = Role(role), time.Unix(0, exp)
	// An unreadable scope fails closed: the request is refused (500).
	if p.Scope, err = ParseScope(scope); err != nil {
		return principal{}, fmt.Errorf("token %s: reading scope: %w", p.ID, err)
	}
	if err := checkScopeForRole(p.Role, p.Scope); err != nil {
		return principal{}, fmt.Errorf("token %s: %w", p.ID, err)
	}
	return p, nil
}
