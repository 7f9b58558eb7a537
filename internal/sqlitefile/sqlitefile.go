// Package sqlitefile builds the connection strings facewatch opens its SQLite
// files with (mattn/go-sqlite3 "file:" URIs). It only formats strings; the
// packages that own each database open, migrate and use it.
package sqlitefile

import (
	"net/url"
	"strings"
)

// uriEscaper escapes the characters that would end or alter the path part of
// a SQLite URI filename: '%' (SQLite decodes %HH), '?' (the driver splits its
// parameters at the first one) and '#' (a fragment).
var uriEscaper = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")

// DSN returns the connection string for the database file at path with the
// driver parameters in params, so that any directory name works.
func DSN(path string, params url.Values) string {
	return "file:" + uriEscaper.Replace(path) + "?" + params.Encode()
}
