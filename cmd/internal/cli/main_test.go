package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/gofrs/flock"
	"github.com/rogpeppe/go-internal/testscript"
	"github.com/ticketd/ticket/cmd/internal/cliredis"
)

// The one way these tests run the ticket command as a process: the test
// binary itself, started again with TICKET_TEST_MAIN=1 (see ticketCmd), as
// os/exec's own tests do, so that buyers are real processes that real
// signals kill, running exactly mainCode, and the test hooks of
// export_test.go can be set in them. Scripts of behaviour a user sees run
// it as "ticket" through testscript (TestScripts); shell scripts find it
// as "ticket" on their PATH (ticketDir).
const asTicketEnv = "TICKET_TEST_MAIN"

// moduleRoot is the directory of go.mod.
var moduleRoot, _ = filepath.Abs("../../..")

// procEnv is added to the environment of every process the tests start.
// A -race build sleeps a second at exit unless told not to, which would
// pass for a process that lingers.
var procEnv = []string{"TICKET_FILE=", "TICKET_STORE=", "GORACE=atexit_sleep_ms=0", asTicketEnv + "=1"}

// testRoleEnv makes the test binary play a small COMMAND for ticket sem
// instead of running the tests; see playRole.
const testRoleEnv = "TICKET_TEST_ROLE"

// TestMain lets the test binary play every part a test needs:
//   - the ticket command as a process, with TICKET_TEST_MAIN=1 (see
//     ticketMain), which is also how testscript runs "ticket";
//   - a small COMMAND run by ticket sem, with TICKET_TEST_ROLE (see playRole).
func TestMain(m *testing.M) {
	// The tests run the command line as ticket-redis does (see
	// cmd/ticket-redis), with Redis sales; TestTicketRunsTicketRedis runs
	// the two commands as built.
	OpenRedis = func(spec string) (RedisSale, error) {
		s, err := cliredis.Open(spec)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	if os.Getenv(asTicketEnv) == "1" || os.Getenv(childEnv) != "" {
		os.Exit(ticketMain()) // a ticket process, or a child of one (see child.go)
	}
	if role := os.Getenv(testRoleEnv); role != "" {
		os.Exit(playRole(role))
	}
	testscript.Main(withRuntimeDir{m}, map[string]func(){"ticket": func() { os.Exit(ticketMain()) }})
}

// withRuntimeDir runs the tests with a directory of their own for group
// commit's regions ($XDG_RUNTIME_DIR), removed at the end, so that the
// sales of a test run leave nothing behind in the user's.
type withRuntimeDir struct{ m *testing.M }

func (w withRuntimeDir) Run() int {
	dir, err := os.MkdirTemp("", "ticket-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	os.Setenv("XDG_RUNTIME_DIR", dir)
	return w.m.Run()
}

// ticketMain is the test binary acting as the ticket command, with the test
// hooks its environment asks for (see export_test.go). With
// TICKET_TEST_GATE set, it first waits for a shared lock on that file,
// which the test holds exclusively while it starts every buyer: releasing
// it lets them all run at the same moment.
func ticketMain() int {
	setHooks()
	// Not for the commands it runs (ticket sem's): the children it starts
	// itself are children of ticket (see child.go).
	os.Unsetenv(asTicketEnv)
	if gate := os.Getenv("TICKET_TEST_GATE"); gate != "" {
		g := flock.New(gate)
		if err := g.RLock(); err != nil {
			fmt.Fprintln(os.Stderr, "gate:", err)
			return 99
		}
		_ = g.Unlock()
	}
	return mainCode(os.Args[1:])
}

// longTests is TICKET_TEST_LONG=1, as .ci/run sets: the soaks and long
// loops run at their full size. Without it every test still runs, each
// guarantee exercised once, at a size that keeps go test ./... quick.
var longTests = os.Getenv("TICKET_TEST_LONG") == "1"

// size returns long under TICKET_TEST_LONG=1, quick otherwise.
func size[T any](quick, long T) T {
	if longTests {
		return long
	}
	return quick
}

// ticketCmd returns the ticket command with args as a process of its own.
func ticketCmd(args ...string) *exec.Cmd {
	return ticketCmdContext(context.Background(), args...)
}

// ticketCmdContext is ticketCmd killed when ctx is done.
func ticketCmdContext(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), procEnv...)
	return cmd
}

// ticketDir returns a directory holding "ticket", this test binary, for
// the PATH of the shell scripts the tests run; their environment needs
// procEnv too.
func ticketDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Symlink(os.Args[0], filepath.Join(dir, "ticket")); err != nil {
		t.Fatal(err)
	}
	return dir
}
