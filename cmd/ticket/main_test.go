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

// ticketBin is the real ticket program, built once by TestMain, for the
// tests that run it as a process; moduleRoot is the directory of go.mod.
var ticketBin, moduleRoot string

// buildFlags are the go build flags for ticketBin (raceflag_test.go adds
// -race under go test -race, so that the program's goroutines are checked).
var buildFlags []string

// childEnv is added to the environment of every process the tests start.
// A -race build sleeps a second at exit unless told not to, which would
// pass for a process that lingers.
var childEnv = []string{"TICKET_FILE=", "TICKET_STORE=", "GORACE=atexit_sleep_ms=0"}

// asTicketEnv=1 makes the test binary the ticket command (see childMain):
// tests run it as a child process, as os/exec's own tests do, so that
// buyers are real processes that real signals kill, running exactly run.
const asTicketEnv = "TICKET_TEST_MAIN"

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
	if os.Getenv(asTicketEnv) == "1" {
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
	// Group commit's regions of the test run's sales go in a directory of
	// their own ($XDG_RUNTIME_DIR), removed at the end.
	runtime := filepath.Join(dir, "runtime")
	if err := os.Mkdir(runtime, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	os.Setenv("XDG_RUNTIME_DIR", runtime)
	moduleRoot = filepath.Dir(strings.TrimSpace(string(gomod)))
	ticketBin = filepath.Join(dir, "ticket")
	build := exec.Command("go", append(append([]string{"build"}, buildFlags...), "-o", ticketBin, "./cmd/ticket")...)
	build.Dir = moduleRoot
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build ./cmd/ticket: %v\n%s", err, out)
		return 1
	}
	return w.m.Run()
}
