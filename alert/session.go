package alert

// Console sessions: the browser signs in by posting its token to /signin;
// the server answers with an HttpOnly cookie that page scripts cannot
// read. Cookie-authenticated requests that change state must carry the
// session's CSRF token in the X-CSRF-Token header; bearer-token clients
// send no cookie and are unaffected.
//
// CSRF: the page reads its CSRF token from a <meta name="csrf-token"> tag
// the server writes into the console, and sends it back in a header. The
// token is derived from the session token (SHA-256 with its own domain
// label), so it needs no server state, differs per session token, and
// does not reveal the session token. A cross-site page can neither read
// the console to learn it nor set a custom header without a CORS
// preflight this API never grants; the session cookie is SameSite=Strict
// too. Sign-in itself (which has no session yet) and every
// cookie-authenticated state change also refuse an Origin header naming
// another site (login CSRF: a forged sign-in into the attacker's token).

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// csrfHeader is the header a cookie-authenticated state change carries.
const csrfHeader = "X-CSRF-Token"

// maxSignInBody bounds a sign-in request body.
const maxSignInBody = 4 << 10

// publicRoute is an endpoint reached without a token: it is not in the
// route table (every route there is authenticated first) but is described
// in the OpenAPI document all the same.
type publicRoute struct {
	Method, Pattern, Summary string
}

// publicRoutes are the endpoints reached without a token.
func publicRoutes() []publicRoute {
	return []publicRoute{{"POST", "/signin", "console sign-in: exchange a token for an HttpOnly session cookie"}}
}

// csrfToken is the CSRF token of the session whose token is tok.
func csrfToken(tok string) string {
	sum := sha256.Sum256([]byte("facewatch console csrf v1\x00" + tok))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// csrfOK reports whether r carries the CSRF token of session tok.
func csrfOK(r *http.Request, tok string) bool {
	got := r.Header.Get(csrfHeader)
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(csrfToken(tok))) == 1
}

// sameOrigin reports whether r's Origin header, when present, names the
// site r was sent to. Browsers send Origin on every POST; a request
// without one is not from a browser page. "Origin: null" (a sandboxed
// frame, or a page whose referrer policy is no-referrer) is refused: a
// cross-site page can make its requests carry it. The API's own pages are
// served with Referrer-Policy: same-origin so that theirs carry the site.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	if o == "null" {
		return false
	}
	u, err := url.Parse(o)
	if err != nil {
		return false
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return u.Scheme == scheme && strings.EqualFold(u.Host, r.Host)
}

// sessionCookie is the console's session cookie holding tok; an empty tok
// clears it.
func sessionCookie(r *http.Request, tok string) *http.Cookie {
	c := &http.Cookie{Name: tokenCookie, Value: tok, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil}
	if tok == "" {
		c.MaxAge = -1
	}
	return c
}

// signInMessage is what the sign-in page says about a refused token.
func signInMessage(err error) string {
	switch {
	case errors.Is(err, errNoToken):
		return "Paste a token to sign in."
	case errors.Is(err, errMalformedToken):
		return "That is not a facewatch token (they start with fwt_). Check that it was copied whole."
	case errors.Is(err, errUnknownToken):
		return "That token is unknown or has been revoked. Ask an administrator for a new one."
	case errors.Is(err, errExpiredToken):
		return "That token has expired. Ask an administrator for a new one."
	}
	return "Signing in is unavailable right now; try again later."
}

// writeLogin writes the sign-in page with msg (plain text, may be empty).
func writeLogin(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; img-src data:; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	w.Header().Set("X-Frame-Options", "DENY")
	w.WriteHeader(code)
	w.Write([]byte(strings.Replace(string(loginHTML), "{{message}}", html.EscapeString(msg), 1)))
}

// signIn is POST /signin: the token comes as the form field token or as
// JSON {"token": …}. A form gets a redirect to the console (or the
// sign-in page again with the reason); JSON gets JSON.
func (s *Service) signIn(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "sign in with POST")
		return
	}
	ctype, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	isJSON := ctype == "application/json"
	fail := func(code int, msg string) {
		if isJSON {
			writeError(w, code, msg)
			return
		}
		writeLogin(w, code, msg)
	}
	if !sameOrigin(r) {
		fail(http.StatusForbidden, "Sign-in from another site is refused.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxSignInBody)
	var tok string
	switch ctype {
	case "application/json":
		var in struct {
			Token string `json:"token"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			fail(http.StatusBadRequest, "the body must be JSON {\"token\": \"fwt_…\"}")
			return
		}
		tok = in.Token
	case "application/x-www-form-urlencoded", "multipart/form-data":
		if err := r.ParseForm(); err != nil {
			fail(http.StatusBadRequest, "The sign-in form could not be read.")
			return
		}
		tok = r.PostForm.Get("token")
	default:
		fail(http.StatusUnsupportedMediaType, "send the token as a form field or as JSON")
		return
	}
	tok = strings.TrimSpace(tok)
	p, err := s.authenticate(r.Context(), tok)
	if err != nil {
		if errors.Is(err, errNoToken) || errors.Is(err, errMalformedToken) || errors.Is(err, errUnknownToken) || errors.Is(err, errExpiredToken) {
			s.m.authFailures.WithLabelValues(strings.TrimSuffix(strings.Fields(err.Error())[0], ":")).Inc()
			s.log.Info("sign-in refused", "remote", r.RemoteAddr, "reason", err.Error())
			fail(http.StatusUnauthorized, signInMessage(err))
			return
		}
		s.log.Error("signing in", "err", err)
		fail(http.StatusInternalServerError, signInMessage(err))
		return
	}
	if err := s.audit(r.Context(), p, "sign_in", "session", "", nil); err != nil {
		s.log.Error("audit append failed; sign-in refused", "err", err)
		fail(http.StatusInternalServerError, "Could not write the audit log; sign-in refused.")
		return
	}
	http.SetCookie(w, sessionCookie(r, tok))
	if isJSON {
		writeJSON(w, http.StatusOK, map[string]string{"name": p.Name, "person": p.Person, "role": string(p.Role), "scope": p.Scope.String()})
		return
	}
	http.Redirect(w, r, s.homePage(p.Role), http.StatusSeeOther)
}

// signOut is POST /signout: it clears the session cookie (audited). The
// token itself stays valid: revoking it is `facewatch token revoke`.
func (s *Service) signOut(w http.ResponseWriter, r *http.Request, p principal) {
	if !s.auditOr500(w, r, p, "sign_out", "session", "", nil) {
		return
	}
	http.SetCookie(w, sessionCookie(r, ""))
	writeJSON(w, http.StatusOK, map[string]string{"status": "signed out"})
}
