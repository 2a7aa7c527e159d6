package store_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestLayers keeps the packages' layering: each knows only those below it.
// A program that buys only from files (package store) links no Redis
// client; the lock knows nothing of group commit, the file store or the
// semaphore; group commit knows nothing of the file store; the domain
// does no I/O of the store's.
func TestLayers(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}}: {{join .Deps " "}}`,
		"github.com/ticketd/ticket/ticket", "github.com/ticketd/ticket/store/lock",
		"github.com/ticketd/ticket/store/group", "github.com/ticketd/ticket/store").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	deps := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, list, _ := strings.Cut(line, ": ")
		deps[pkg] = strings.Fields(list)
	}
	const mod = "github.com/ticketd/ticket/"
	// The control: the list does show what is there.
	if !slices.Contains(deps[mod+"store"], mod+"store/group") || !slices.Contains(deps[mod+"store"], mod+"store/lock") {
		t.Fatalf("go list does not show store's own dependencies: %q", deps[mod+"store"])
	}
	for pkg, banned := range map[string][]string{
		mod + "ticket":      {mod + "store", "github.com/redis/go-redis/v9", "github.com/gofrs/flock"},
		mod + "store/lock":  {mod + "store", mod + "store/group", mod + "store/sem", mod + "store/redis"},
		mod + "store/group": {mod + "store", mod + "store/sem", mod + "store/redis"},
		mod + "store":       {mod + "store/redis", mod + "store/sem", "github.com/redis/go-redis/v9"},
	} {
		if deps[pkg] == nil {
			t.Fatalf("go list said nothing of %s:\n%s", pkg, out)
		}
		for _, b := range banned {
			if slices.Contains(deps[pkg], b) {
				t.Errorf("%s depends on %s", pkg, b)
			}
		}
	}
}
