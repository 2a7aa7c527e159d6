package files

import (
	"bytes"
	"os"
	"testing"
)

// TestBootID checks that BootID, read with raw calls, is what os.ReadFile
// and bytes.TrimSpace give.
func TestBootID(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		if got := BootID(); got != nil {
			t.Fatalf("no boot_id (%v), but BootID returned %q", err, got)
		}
		t.Skipf("no boot_id: %v", err)
	}
	if got, want := BootID(), bytes.TrimSpace(b); !bytes.Equal(got, want) || len(want) != 36 {
		t.Fatalf("BootID() = %q, os.ReadFile gives %q", got, want)
	}
}
