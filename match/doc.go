// Package match owns the watchlist gallery and the decision of who a face
// is: the SQLite gallery (watchlists, identities, enrolments, with expiry
// and legal basis), enrolment with refusals, the in-memory exact-search
// Index kept in sync through gallery events on a JetStream stream, the
// per-track decision, and the error-rate evaluation that recommends
// thresholds. It never detects faces or computes descriptors itself: it
// consumes them through the small interfaces it declares (FaceFinder,
// ChipEmbedder), and it never raises alerts (that is the alert service's
// job).
package match
