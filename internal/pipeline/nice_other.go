//go:build !linux

package pipeline

// lowerThreadPriority does nothing where threads have no nice level of
// their own.
func lowerThreadPriority(int) {}
