package main

import (
	"strings"
	"testing"
)

// TestDraw draws two panels from bench.sh's TSV: one line per system and
// panel, its points at the figures given, and refuses a malformed line.
func TestDraw(t *testing.T) {
	in := "filesystem\tsystem\tprocesses\tbuys_per_second\n" +
		"ext4\tticket\t1\t3000\next4\tticket\t4\t8000\next4\tsqlite\t1\t7000\next4\tsqlite\t4\t9000\n" +
		"xfs\tticket\t1\t2500\nxfs\tticket\t4\t6000\n"
	panels, systems, err := read(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(panels) != 2 || strings.Join(systems, ",") != "ticket,sqlite" || len(panels["ext4"]["ticket"]) != 2 {
		t.Fatalf("read: %v, %v", panels, systems)
	}
	var b strings.Builder
	if err := draw(&b, "t", panels, systems); err != nil {
		t.Fatal(err)
	}
	svg := b.String()
	if n := strings.Count(svg, "<polyline"); n != 3 {
		t.Errorf("%d lines drawn, want 3 (ticket twice, sqlite once)", n)
	}
	if n := strings.Count(svg, "<circle"); n != 6 {
		t.Errorf("%d points drawn, want 6", n)
	}
	for _, want := range []string{">ext4<", ">xfs<", ">ticket<", ">sqlite<", ">10k<"} {
		if !strings.Contains(svg, want) {
			t.Errorf("the chart lacks %s", want)
		}
	}
	if _, _, err := read(strings.NewReader("h\next4\tticket\tfour\t1\n")); err == nil {
		t.Error("a line with a non-number was accepted")
	}
}
