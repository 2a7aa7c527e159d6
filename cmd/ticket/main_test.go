package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// ticketBin is the ticket binary, built once by TestMain, for the tests
// that run it as a real process.
var ticketBin string

// testRoleEnv makes the test binary play a small COMMAND for ticket sem
// instead of running the tests; see playRole.
const testRoleEnv = "TICKET_TEST_ROLE"

// TestMain lets the test binary play every part a test needs:
//   - the ticket command in testscript scripts ("ticket" in testdata/script);
//   - the ticket command as an independent buyer process, with
//     TICKET_TEST_MAIN=1 (see childMain);
//   - a small COMMAND run by ticket sem, with TICKET_TEST_ROLE (see playRole).
//
// Before the tests run it builds the real binary into ticketBin.
func TestMain(m *testing.M) {
	if os.Getenv("TICKET_TEST_MAIN") == "1" {
		os.Exit(childMain())
	}
	if role := os.Getenv(testRoleEnv); role != "" {
		os.Exit(playRole(role))
	}
	testscript.Main(withBinary{m}, map[string]func(){
		"ticket": func() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

// withBinary builds the ticket binary before running the tests.
type withBinary struct{ m *testing.M }

func (w withBinary) Run() int {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "go env GOMOD:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "ticket-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ticketBin = filepath.Join(dir, "ticket")
	build := exec.Command("go", "build", "-o", ticketBin, "./cmd/ticket")
	build.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "go build:", err)
		return 1
	}
	return w.m.Run()
}
