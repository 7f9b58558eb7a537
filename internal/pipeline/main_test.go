package pipeline

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine outlives them: every
// stage must stop when its context ends, and every bus, gallery and camera
// a test opens must be closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
