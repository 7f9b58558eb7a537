package alert

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"time"
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

// TokenInfo describes a stored token; the secret itself is never stored.
type TokenInfo struct {
	ID      string    `json:"id"`
	Role    Role      `json:"role"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	Revoked bool      `json:"revoked"`
	// Scope limits what the token sees (see Scope).
	Scope Scope `json:"scope"`
}

func hashToken(tok string) string {
	s := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(s[:])
}

// CreateToken issues a site-wide token for role in the database at dbPath
// (see DBPath; it is created if missing), valid for ttl. The token is
// returned once and only its SHA-256 is stored.
func CreateToken(ctx context.Context, dbPath string, role Role, name string, ttl time.Duration) (string, error) {
	return CreateScopedToken(ctx, dbPath, role, name, ttl, Scope{})
}

// CreateScopedToken is CreateToken for a token limited to scope.
func CreateScopedToken(ctx context.Context, dbPath string, role Role, name string, ttl time.Duration, scope Scope) (string, error) {
	d, err := openDB(ctx, dbPath)
	if err != nil {
		return "", err
	}
	defer d.Close()
	tok, _, err := createToken(ctx, d.w, role, name, ttl, time.Now(), scope)
	return tok, err
}

// CreateToken issues a site-wide token in the service's own database (see
// the package-level CreateToken).
func (s *Service) CreateToken(ctx context.Context, role Role, name string, ttl time.Duration) (string, error) {
	return s.CreateScopedToken(ctx, role, name, ttl, Scope{})
}

// CreateScopedToken is CreateToken for a token limited to scope.
func (s *Service) CreateScopedToken(ctx context.Context, role Role, name string, ttl time.Duration, scope Scope) (string, error) {
	tok, _, err := createToken(ctx, s.db.w, role, name, ttl, s.now(), scope)
	return tok, err
}

func createToken(ctx context.Context, w *sql.DB, role Role, name string, ttl time.Duration, now time.Time, scope Scope) (string, TokenInfo, error) {
	if _, err := ParseRole(string(role)); err != nil {
		return "", TokenInfo{}, fmt.Errorf("creating token: %w", err)
	}
	// Round-trip the scope through its stored form: what is stored is what
	// authenticate will read.
	scope, err := ParseScope(scope.String())
	if err != nil {
		return "", TokenInfo{}, fmt.Errorf("creating token: %w", err)
	}
	if err := checkScopeForRole(role, scope); err != nil {
		return "", TokenInfo{}, fmt.Errorf("creating token: %w", err)
	}
	if !tokenName.MatchString(name) {
		return "", TokenInfo{}, fmt.Errorf("creating token: name %q must be at most 64 letters, digits, spaces or ._@()-", name)
	}
	if ttl <= 0 || ttl > MaxTokenTTL {
		return "", TokenInfo{}, fmt.Errorf("creating token: ttl %v is not in (0, %v]", ttl, MaxTokenTTL)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", TokenInfo{}, fmt.Errorf("creating token: %w", err)
	}
	tok := tokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	h := hashToken(tok)
	info := TokenInfo{ID: h[:12], Role: role, Name: name, Created: now.UTC(), Expires: now.Add(ttl).UTC(), Scope: scope}
	_, err = w.ExecContext(ctx, `INSERT INTO tokens (id, hash, role, name, created_ns, expires_ns, scope) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		info.ID, h, string(role), name, info.Created.UnixNano(), info.Expires.UnixNano(), scope.String())
	if err != nil {
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
	rows, err := d.r.QueryContext(ctx, `SELECT id, role, name, created_ns, expires_ns, revoked_ns, scope FROM tokens ORDER BY created_ns`)
	if err != nil {
		return nil, fmt.Errorf("listing tokens: %w", err)
	}
	defer rows.Close()
	var out []TokenInfo
	for rows.Next() {
		var t TokenInfo
		var role, scope string
		var c, e, r int64
		if err := rows.Scan(&t.ID, &role, &t.Name, &c, &e, &r, &scope); err != nil {
			return nil, fmt.Errorf("listing tokens: %w", err)
		}
		if t.Scope, err = ParseScope(scope); err != nil {
			return nil, fmt.Errorf("listing tokens: token %s: %w", t.ID, err)
		}
		t.Role, t.Created, t.Expires, t.Revoked = Role(role), time.Unix(0, c).UTC(), time.Unix(0, e).UTC(), r != 0
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevokeToken revokes the token with the given ID (as ListTokens shows
// it) in the database at dbPath.
func RevokeToken(ctx context.Context, dbPath, id string) error {
	d, err := openDB(ctx, dbPath)
	if err != nil {
		return err
	}
	defer d.Close()
	res, err := d.w.ExecContext(ctx, `UPDATE tokens SET revoked_ns = ? WHERE id = ? AND revoked_ns = 0`, time.Now().UnixNano(), id)
	if err != nil {
		return fmt.Errorf("revoking token %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("revoking token %q: no such active token", id)
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
	ID   string
	Name string
	Role Role
	// Scope is what the caller may see (see Scope).
	Scope Scope
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
	var role, scope string
	var exp, revoked int64
	err := s.db.r.QueryRowContext(ctx, `SELECT id, name, role, expires_ns, revoked_ns, scope FROM tokens WHERE hash = ?`, hashToken(tok)).
		Scan(&p.ID, &p.Name, &role, &exp, &revoked, &scope)
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
	p.Role = Role(role)
	// An unreadable scope fails closed: the request is refused (500).
	if p.Scope, err = ParseScope(scope); err != nil {
		return principal{}, fmt.Errorf("token %s: reading scope: %w", p.ID, err)
	}
	if err := checkScopeForRole(p.Role, p.Scope); err != nil {
		return principal{}, fmt.Errorf("token %s: %w", p.ID, err)
	}
	return p, nil
}
