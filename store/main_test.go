package store

import (
	"fmt"
	"os"
	"testing"
)

// TestMain gives the tests, and the buyer processes they start, a private
// directory of their own for group commit's regions ($XDG_RUNTIME_DIR),
// removed at the end: the sales of a test run leave nothing behind in the
// user's.
func TestMain(m *testing.M) {
	if os.Getenv(roleEnv) != "" {
		os.Exit(m.Run()) // a child: init has already played its role
	}
	dir, err := os.MkdirTemp("", "ticket-test-runtime-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("XDG_RUNTIME_DIR", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
