//go:build !linux

package auth

// yielding runs f: outside Linux, a thread's priority cannot be set apart
// from its process's (see nice_linux.go).
func yielding(f func()) { f() }
