package store

import (
	"bytes"
	"strings"
	"testing"
)

// TestPadStart: padStart keeps what bytes.TrimRight(b, " ") keeps.
func TestPadStart(t *testing.T) {
	for _, s := range []string{"", " ", "        ", "x", "x ", "x        ", "{\"seq\":1}\n" + strings.Repeat(" ", 16384), "ab       c", strings.Repeat(" ", 17) + "\n" + strings.Repeat(" ", 9)} {
		if got, want := padStart([]byte(s)), len(bytes.TrimRight([]byte(s), " ")); got != want {
			t.Errorf("padStart(%q) = %d, want %d", s, got, want)
		}
	}
}
