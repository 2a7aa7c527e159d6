package cli

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/ticket"
)

// outcome is how a ticket process ended.
type outcome struct {
	stdout, stderr string
	code           int            // exit status, -1 if killed by a signal
	signal         syscall.Signal // the signal that killed it, if any
}

// finish reads the outcome of a command that has been waited for.
func finish(t *testing.T, cmd *exec.Cmd, err error) outcome {
	t.Helper()
	o := outcome{code: 0}
	if b, ok := cmd.Stdout.(*bytes.Buffer); ok {
		o.stdout = b.String()
	}
	if b, ok := cmd.Stderr.(*bytes.Buffer); ok {
		o.stderr = b.String()
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		ws := ee.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			o.code, o.signal = -1, ws.Signal()
		} else {
			o.code = ws.ExitStatus()
		}
	default:
		t.Fatalf("%v: %v", cmd.Args, err)
	}
	return o
}

// capture makes cmd's stdout and stderr buffers that finish reads.
func capture(cmd *exec.Cmd) *exec.Cmd {
	cmd.Stdout, cmd.Stderr = &bytes.Buffer{}, &bytes.Buffer{}
	return cmd
}

func runCaptured(t *testing.T, args ...string) outcome {
	t.Helper()
	cmd := capture(ticketCmd(args...))
	return finish(t, cmd, cmd.Run())
}

// newTicketFile makes a sale of n tickets in a fresh directory.
func newTicketFile(t *testing.T, n string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tickets.json")
	if o := runCaptured(t, "init", "-f", path, "--count", n); o.code != 0 {
		t.Fatalf("init: %+v", o)
	}
	return path
}

// mustVerify runs ticket verify and fails the test unless it exits 0.
func mustVerify(t *testing.T, path string) {
	t.Helper()
	if o := runCaptured(t, "verify", "-f", path); o.code != 0 {
		t.Fatalf("verify exits %d: %s%s", o.code, o.stdout, o.stderr)
	}
}

// journal returns the sales in the journal by buyer.
func journal(t *testing.T, path string) map[string]ticket.Record {
	t.Helper()
	sales := map[string]ticket.Record{}
	for s, err := range store.Open(path, store.Options{}).Sales() {
		if err != nil {
			t.Fatalf("journal: %v", err)
		}
		if _, dup := sales[s.Buyer]; dup {
			t.Fatalf("journal: %s bought twice", s.Buyer)
		}
		sales[s.Buyer] = s
	}
	return sales
}

// TestReportFailedExit6: a buy whose sale is committed but whose report
// cannot be written (stdout is /dev/full, or a pipe nobody reads) exits 6,
// says so on stderr, and the sale is in the journal and the ticket file.
func TestReportFailedExit6(t *testing.T) {
	cases := []struct {
		name   string
		args   []string
		stdout func(t *testing.T) *os.File
	}{
		{"dev-full", nil, devFull},
		{"dev-full-json", []string{"--json"}, devFull},
		{"closed-pipe", nil, func(t *testing.T) *os.File {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			r.Close() // nobody reads: writing gets EPIPE (SIGPIPE is ignored)
			t.Cleanup(func() { w.Close() })
			return w
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := newTicketFile(t, "3")
			cmd := ticketCmd(append([]string{"buy", "-f", path, "--buyer", "alice"}, c.args...)...)
			cmd.Stdout = c.stdout(t)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			o := finish(t, cmd, cmd.Run())
			if o.code != exitUnconfirmed {
				t.Fatalf("exit %d, want %d (stderr: %s)", o.code, exitUnconfirmed, stderr.String())
			}
			if !strings.Contains(stderr.String(), "sale recorded, report failed (check ticket show --sales)") {
				t.Fatalf("stderr %q does not say the sale is recorded", stderr.String())
			}
			if s, ok := journal(t, path)["alice"]; !ok || s.Seq != 1 {
				t.Fatalf("journal: %v, want alice's sale #1", journal(t, path))
			}
			st, err := store.Open(path, store.Options{}).Read()
			if err != nil || st.Left() != 2 {
				t.Fatalf("ticket file: %v, %v; want 2 left", st, err)
			}
			mustVerify(t, path)
		})
	}
}

func devFull(t *testing.T) *os.File {
	f, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
