package natsbus

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine outlives them: every
// Bus and embedded server a test opens must be closed and waited for.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
