// Package archtest holds tests of the module's own structure, run with the
// other tests: every package documented in one package comment, and the
// import rules between packages (no stage imports another). It reads
// `go list -json` and the sources; it has no code that other packages may
// import.
package archtest
