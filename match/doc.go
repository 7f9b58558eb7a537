// Package match owns the watchlist gallery and the decision of who a face
// is: the SQLite gallery (watchlists, identities, enrolments, photos, with
// expiry and legal basis, purged after expiry or when a missing person is
// found, with a record of each purge), the in-memory exact-search Index
// kept in sync through gallery events on a JetStream stream, and the
// per-track decision with its reasons. It works on descriptors only: it
// must not import OpenCV, dlib or the detect and embed stages (enrolment
// from photos lives in internal/enroll, threshold evaluation in
// internal/eval), and it never raises alerts (that is the alert service's
// job).
package match
