package cli

import (
	"regexp"
	"testing"
)

// TestSecondsForms: the hand-written matchers of the two duration forms
// accept exactly what the regular expressions they stand for accept.
func TestSecondsForms(t *testing.T) {
	plain := regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)
	gods := regexp.MustCompile(`^-?([0-9]+(\.[0-9]+)?(ns|us|µs|μs|ms|s|m|h))+$`)
	for _, v := range []string{"", "-", "2", "-2", "1.5", "1.", ".5", "1.5.2", "+2", "1_0", "0x10", "1e3", "inf",
		"250ms", "2s", "1h0m0s", "1m5s", "1ms5s", "1.5h", "1.h", "-3m", "3", "3mss", "3 s", "1µs", "1μs", "1us", "1ns",
		"1n", "1u", "h", "1hm", "10m10", "5s-", "--5s", "1.5.5s"} {
		if got, want := plainSeconds(v), plain.MatchString(v); got != want {
			t.Errorf("plainSeconds(%q) = %v, want %v", v, got, want)
		}
		if got, want := goDuration(v), gods.MatchString(v); got != want {
			t.Errorf("goDuration(%q) = %v, want %v", v, got, want)
		}
	}
}
