package powercut

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestNotInTicket checks that the ticket command does not link this
// package or go-fuse: the file system is for tests only.
func TestNotInTicket(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/ticketd/ticket/cmd/ticket").Output()
	if err != nil {
		t.Fatalf("go list -deps ./cmd/ticket: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 || !slices.Contains(deps, "github.com/ticketd/ticket/store") {
		t.Fatalf("go list -deps ./cmd/ticket gave %d packages, without the store: %q", len(deps), deps)
	}
	for _, p := range deps {
		if strings.HasPrefix(p, "github.com/ticketd/ticket/store/powercut") || strings.HasPrefix(p, "github.com/hanwen/go-fuse") {
			t.Errorf("cmd/ticket depends on %s: the power-cut file system is for tests only", p)
		}
	}
}
