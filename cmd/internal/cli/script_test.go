package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/sys/unix"
)

// TestScripts runs the CLI scripts in testdata/script, one topic each.
func TestScripts(t *testing.T) {
	bad, err := filepath.Abs("../../../testdata/bad")
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir:                 "../../../testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			// Every script gets the bad inputs twice: bad/ to feed to
			// ticket, orig/ to prove they were left untouched.
			for _, dir := range []string{"bad", "orig"} {
				if err := copyDir(bad, filepath.Join(env.WorkDir, dir)); err != nil {
					return err
				}
			}
			env.Setenv("TICKET_FILE", "")
			env.Setenv("SCRIPTS", filepath.Join(moduleRoot, "scripts"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"status":   cmdStatus,
			"waitfile": cmdWaitFile,
			"bigfile":  cmdBigFile,
			"thisboot": cmdThisBoot,
		},
	})
}

// cmdStatus runs a command and checks its exit status:
//
//	status 3 ticket buy
func cmdStatus(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: status N command [args...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("status: %v", err)
	}
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		got = exitErr.ExitCode()
	case err != nil:
		ts.Fatalf("status: %v", err)
	}
	if got != want {
		ts.Fatalf("%s exited %d, want %d", strings.Join(args[1:], " "), got, want)
	}
}

// cmdWaitFile waits up to 10 s for a file to exist: a background command
// creates it to say it holds a lock.
func cmdWaitFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitfile FILE")
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(ts.MkAbs(args[0])); err == nil {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	ts.Fatalf("%s did not appear within 10s", args[0])
}

// cmdBigFile writes a ticket file of N bytes: valid JSON, too large.
func cmdBigFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: bigfile FILE BYTES")
	}
	n, err := strconv.Atoi(args[1])
	if err != nil {
		ts.Fatalf("bigfile: %v", err)
	}
	body := fmt.Sprintf(`{"count": 5, "pad": "%s"}`, strings.Repeat("x", max(n-23, 0)))
	if err := os.WriteFile(ts.MkAbs(args[0]), []byte(body), 0o644); err != nil {
		ts.Fatalf("bigfile: %v", err)
	}
}

func copyDir(from, to string) error {
	if err := os.MkdirAll(to, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		return err
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// TestBadInputScriptCoversEveryFile keeps testdata/script/bad_input.txtar
// in step with testdata/bad: every bad input is fed to the command.
func TestBadInputScriptCoversEveryFile(t *testing.T) {
	script, err := os.ReadFile("../../../testdata/script/bad_input.txtar")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("../../../testdata/bad/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad inputs: %v", err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		for _, cmd := range []string{"show", "buy", "verify"} {
			if !strings.Contains(string(script), "status 5 ticket "+cmd+" -f bad/"+name+"\n") {
				t.Errorf("bad_input.txtar does not run ticket %s on bad/%s", cmd, name)
			}
		}
		if !strings.Contains(string(script), "cmp bad/"+name+" orig/"+name+"\n") {
			t.Errorf("bad_input.txtar does not check that bad/%s is unchanged", name)
		}
	}
}

// cmdThisBoot marks a journal as written in this boot of the machine, as
// a ticket process marks it before it appends (without the mark, records
// beyond the ticket file are taken for ones written before a restart):
//
//	thisboot ticket.json.journal
func cmdThisBoot(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: thisboot JOURNAL")
	}
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		ts.Fatalf("thisboot: %v", err)
	}
	if err := unix.Setxattr(ts.MkAbs(args[0]), "user.ticket.boot", bytes.TrimSpace(boot), 0); err != nil {
		ts.Fatalf("thisboot: %v", err)
	}
}
