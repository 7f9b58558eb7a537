package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine a command started is
// still running after them: every command must stop what it starts before
// it returns, whatever its exit path.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
