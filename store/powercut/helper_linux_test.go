//go:build linux

package powercut

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The tests' child processes are this test binary run again with
// helperEnv set: it does the steps its arguments name, one an argument,
// in its working directory (the mount), then says "ready" and waits for
// its standard input to close (or for the power cut to kill it).
const helperEnv = "POWERCUT_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(helper(os.Args[1:]))
	}
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// helper runs the steps, each "op:arg[:arg...]":
//
//	create:P            open(P, O_CREAT|O_EXCL|O_WRONLY) and close
//	append:P:TEXT       open(P, O_APPEND|O_CREAT|O_WRONLY), write TEXT, close
//	pwrite:P:OFF:TEXT   write TEXT at OFF
//	truncate:P:N        truncate(P, N)
//	fallocate:P:OFF:N   fallocate(mode 0)
//	fsync:P, fdatasync:P, fsyncdir:P
//	rename:A:B, link:A:B, unlink:P, mkdir:P, chmod:P:OCTAL
//	flock:P             take flock(LOCK_EX), waiting; say "locked P"; keep it
//	tryflock:P          flock(LOCK_EX|LOCK_NB): say "locked P" (and keep it) or "busy P"
//
// It returns 1 at the first step that fails, saying why on stderr.
func helper(steps []string) int {
	out := bufio.NewWriter(os.Stdout)
	var held []*os.File
	for _, step := range steps {
		a := strings.SplitN(step, ":", 4)
		if err := helperStep(a, out, &held); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", step, err)
			return 1
		}
	}
	fmt.Fprintln(out, "ready")
	out.Flush()
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, f := range held {
		f.Close()
	}
	return 0
}

func helperStep(a []string, out *bufio.Writer, held *[]*os.File) error {
	arg := func(i int) string {
		if i < len(a) {
			return a[i]
		}
		return ""
	}
	num := func(i int) int64 {
		n, _ := strconv.ParseInt(arg(i), 10, 64)
		return n
	}
	withFile := func(flag int, f func(fd int) error) error {
		file, err := os.OpenFile(arg(1), flag, 0o644)
		if err != nil {
			return err
		}
		defer file.Close()
		if err := f(int(file.Fd())); err != nil {
			return err
		}
		return file.Close()
	}
	switch a[0] {
	case "create":
		return withFile(os.O_CREATE|os.O_EXCL|os.O_WRONLY, func(int) error { return nil })
	case "append":
		return withFile(os.O_APPEND|os.O_CREATE|os.O_WRONLY, func(fd int) error {
			_, err := unix.Write(fd, []byte(arg(2)))
			return err
		})
	case "pwrite":
		return withFile(os.O_WRONLY, func(fd int) error {
			_, err := unix.Pwrite(fd, []byte(arg(3)), num(2))
			return err
		})
	case "truncate":
		return os.Truncate(arg(1), num(2))
	case "fallocate":
		return withFile(os.O_WRONLY, func(fd int) error { return unix.Fallocate(fd, 0, num(2), num(3)) })
	case "fsync", "fsyncdir":
		return withFile(os.O_RDONLY, unix.Fsync)
	case "fdatasync":
		return withFile(os.O_RDONLY, unix.Fdatasync)
	case "rename":
		return os.Rename(arg(1), arg(2))
	case "link":
		return os.Link(arg(1), arg(2))
	case "unlink":
		return os.Remove(arg(1))
	case "mkdir":
		return os.Mkdir(arg(1), 0o755)
	case "chmod":
		mode, _ := strconv.ParseUint(arg(2), 8, 32)
		return os.Chmod(arg(1), os.FileMode(mode))
	case "flock", "tryflock":
		f, err := os.OpenFile(arg(1), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		how := unix.LOCK_EX
		if a[0] == "tryflock" {
			how |= unix.LOCK_NB
		}
		switch err := unix.Flock(int(f.Fd()), how); err {
		case nil:
			*held = append(*held, f)
			fmt.Fprintln(out, "locked", arg(1))
		case unix.EWOULDBLOCK:
			f.Close()
			fmt.Fprintln(out, "busy", arg(1))
		default:
			return err
		}
		return out.Flush()
	}
	return fmt.Errorf("unknown step")
}

// child is a helper process started on m.
type child struct {
	*Proc
	stdin io.WriteCloser
	lines *bufio.Scanner
}

// startChild starts a helper doing steps in the mount and waits until it
// is ready (or has failed); it fails the test if it cannot start.
func startChild(t *testing.T, m *Mount, steps ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], steps...)
	cmd.Dir = m.Dir()
	cmd.Env = append(os.Environ(), helperEnv+"=1", NoRaceExitDelay())
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p, err := m.Start(cmd)
	if err != nil {
		t.Fatalf("start helper: %v", err)
	}
	c := &child{Proc: p, stdin: stdin, lines: bufio.NewScanner(stdout)}
	return c
}

// line returns the child's next line of output ("" at its end).
func (c *child) line() string {
	if c.lines.Scan() {
		return c.lines.Text()
	}
	return ""
}

// run starts a helper, waits until it is ready and returns it, still
// running; it fails the test if the helper said anything else first.
func run(t *testing.T, m *Mount, steps ...string) *child {
	t.Helper()
	c := startChild(t, m, steps...)
	if l := c.line(); l != "ready" {
		t.Fatalf("helper %q: said %q, not ready (exit %d)\n%s", steps, l, c.ExitCode(), m.LogTail(20))
	}
	return c
}

// finish closes the child's standard input and waits for it to exit 0.
func (c *child) finish(t *testing.T) {
	t.Helper()
	c.stdin.Close()
	if code := c.ExitCode(); code != 0 {
		t.Fatalf("helper exited %d", code)
	}
}
