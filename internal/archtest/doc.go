// Package archtest holds tests of the module's own structure, run with the
// other tests: every package documented in one package comment, the import
// rules between packages (no stage imports another), and the package
// drawing of the README and docs/design.md kept true to the import graph,
// and the command's files kept small.
// It reads `go list -json` and the sources; it has no code that other
// packages may import.
package archtest
