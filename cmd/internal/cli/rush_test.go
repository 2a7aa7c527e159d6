package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ticketd/ticket/store/lock"
)

// proc is a started ticket process. Its stdout and stderr are files, not
// pipes: a child it leaves behind must not keep the test waiting.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr *os.File
}

// start starts the ticket program in dir; t.Cleanup kills it by pid.
func start(t *testing.T, dir string, args ...string) *proc {
	t.Helper()
	return startEnv(t, dir, nil, args...)
}

// startEnv is start with env added to the process's environment.
func startEnv(t *testing.T, dir string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: ticketCmd(args...)}
	p.cmd.Dir = dir
	p.cmd.Env = append(p.cmd.Env, env...)
	var err error
	out := t.TempDir()
	if p.stdout, err = os.Create(filepath.Join(out, "stdout")); err != nil {
		t.Fatal(err)
	}
	if p.stderr, err = os.Create(filepath.Join(out, "stderr")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.stdout.Close(); p.stderr.Close() })
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start ticket %v: %v", args, err)
	}
	t.Cleanup(func() { _ = p.cmd.Process.Kill() }) // a pidfd: never another process (see killAtEnd)
	return p
}

// out returns what p wrote on stdout so far.
func (p *proc) out() string {
	b, _ := os.ReadFile(p.stdout.Name())
	return string(b)
}

// errs returns what p wrote on stderr so far.
func (p *proc) errs() string {
	b, _ := os.ReadFile(p.stderr.Name())
	return string(b)
}

// wait waits for p and returns its exit status.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	err := p.cmd.Wait()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("wait: %v", err)
	}
	return p.cmd.ProcessState.ExitCode()
}

// ticketRun runs the ticket program to its end.
func ticketRun(t *testing.T, dir string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	p := start(t, dir, args...)
	code = p.wait(t)
	return code, p.out(), p.errs()
}

// rushResult runs ticket rush --json and decodes its summary.
func rushResult(t *testing.T, dir string, args ...string) (int, rushSummary, string) {
	t.Helper()
	code, out, errOut := ticketRun(t, dir, append([]string{"rush", "--json"}, args...)...)
	var sum rushSummary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("ticket rush %v: exit %d, stdout %q is not the summary: %v\nstderr:\n%s", args, code, out, err, errOut)
	}
	return code, sum, errOut
}

func TestRushBooksBalance(t *testing.T) {
	for _, tc := range []struct {
		name           string
		buyers, count  int
		qty            int64
		wantGot, wantL int
	}{
		{fmt.Sprintf("%d buyers for %d tickets", size(24, 120), size(6, 30)), size(24, 120), size(6, 30), 1, size(6, 30), 0},
		{"as many buyers as tickets", 12, 12, 1, 12, 0},
		{"fewer buyers than tickets", 8, 20, 1, 8, 12},
		{"two tickets each", 15, 9, 2, 4, 1},
	} {
		for _, be := range backends {
			t.Run(be.name+"/"+tc.name, func(t *testing.T) { rushBalance(t, be.spec(t), tc.buyers, tc.count, tc.qty, tc.wantGot, tc.wantL) })
		}
	}
}

// rushBalance runs one rush on the sale at spec and checks its books.
func rushBalance(t *testing.T, spec string, buyers, count int, qty int64, wantGot, wantL int) {
	tc := struct {
		buyers, count  int
		qty            int64
		wantGot, wantL int
	}{buyers, count, qty, wantGot, wantL}
	dir := t.TempDir()
	code, sum, errOut := rushResult(t, dir, "--store", spec, "--buyers", strconv.Itoa(tc.buyers), "--count", strconv.Itoa(tc.count), "--qty", strconv.FormatInt(tc.qty, 10))
	if code != exitOK {
		t.Fatalf("exit %d, want 0; problems %q\nstderr:\n%s", code, sum.Problems, errOut)
	}
	if sum.Got != tc.wantGot || sum.Left != int64(tc.wantL) || sum.SoldOut != tc.buyers-tc.wantGot || sum.Errors != 0 {
		t.Errorf("got %d, left %d, sold out %d, errors %d; want %d, %d, %d, 0", sum.Got, sum.Left, sum.SoldOut, sum.Errors, tc.wantGot, tc.wantL, tc.buyers-tc.wantGot)
	}
	if !sum.Balanced || sum.Oversold || len(sum.Problems) != 0 {
		t.Errorf("balanced %v, oversold %v, problems %q", sum.Balanced, sum.Oversold, sum.Problems)
	}
	// Every buyer reported exactly once, under its own name and pid.
	names, pids := map[string]bool{}, map[int]bool{}
	for _, r := range sum.Results {
		if names[r.Buyer] || pids[r.PID] {
			t.Errorf("buyer %s (pid %d) reported twice", r.Buyer, r.PID)
		}
		names[r.Buyer], pids[r.PID] = true, true
		if r.Seen == nil {
			t.Errorf("%s: no count seen before the lock", r.Buyer)
		}
	}
	for i := range tc.buyers {
		if !names[fmt.Sprintf("person%d", i)] {
			t.Errorf("person%d did not report", i)
		}
	}
	// The journal, checked apart from the rush: one sale per winner.
	if code, out, errOut := ticketRun(t, dir, "verify", "--store", spec); code != exitOK {
		t.Errorf("ticket verify: exit %d\n%s%s", code, out, errOut)
	}
	_, sales, _ := ticketRun(t, dir, "show", "--store", spec, "--sales", "--json")
	winners := map[string]bool{}
	for _, r := range sum.Results {
		if r.Outcome == "got" {
			winners[r.Buyer] = true
		}
	}
	var lines []string
	for _, l := range strings.Fields(sales) {
		if !strings.Contains(l, `"kind":`) { // sales only, not the init record
			lines = append(lines, l)
		}
	}
	if len(lines) != tc.wantGot {
		t.Errorf("journal holds %d sales, want %d", len(lines), tc.wantGot)
	}
	for _, l := range lines {
		var s struct{ Buyer string }
		if err := json.Unmarshal([]byte(l), &s); err != nil || !winners[s.Buyer] {
			t.Errorf("journal sale %s: not one of the winners (%v)", l, err)
		}
		delete(winners, s.Buyer)
	}
	t.Logf("%d buyers: started in %.1fms, all at the gate after %.1fms, left the gate within %.2fms; wall %.0fms, %.0f buys/s, %d heartbeats",
		tc.buyers, sum.StartSeconds*1e3, sum.ReadySeconds*1e3, sum.ReleaseSpread*1e3, sum.WallSeconds*1e3, sum.BuysPerSecond, sum.Heartbeats)
}

// TestRushUnlockedOversells is the negative control: without the lock,
// the same rush tells more buyers they got a ticket than there were. It is
// a race, so it runs until it shows, a bounded number of times.
func TestRushUnlockedOversells(t *testing.T) {
	const attempts = 10
	for i := 1; i <= attempts; i++ {
		dir := t.TempDir()
		code, sum, errOut := rushResult(t, dir, "-f", "u.json", "--unlocked", "--buyers", "40", "--count", "5")
		if !strings.Contains(errOut, "UNSAFE") {
			t.Errorf("no UNSAFE banner on stderr:\n%s", errOut)
		}
		if !sum.Unlocked {
			t.Errorf("summary does not say unlocked")
		}
		if sum.Oversold {
			if code != exitInvalid || sum.Balanced || sum.Got <= 5 {
				t.Errorf("oversold rush: exit %d, balanced %v, got %d; want exit 5, not balanced, more than 5", code, sum.Balanced, sum.Got)
			}
			t.Logf("attempt %d: %d buyers told they got one of 5 tickets, the file says %d left; problems %q", i, sum.Got, sum.Left, sum.Problems)
			return
		}
		t.Logf("attempt %d: no oversell (got %d, left %d, exit %d)", i, sum.Got, sum.Left, code)
	}
	t.Fatalf("%d unlocked rushes of 40 buyers for 5 tickets never oversold: the test cannot see what the lock prevents", attempts)
}

func TestRushRefuses(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := ticketRun(t, dir, "init", "-f", "t.json", "--count", "3"); code != 0 {
		t.Fatalf("init: exit %d: %s", code, errOut)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "t.json"))
	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"unlocked without -f", []string{"--unlocked", "--buyers", "3", "--count", "3"}, exitUsage},
		{"no --buyers", []string{"-f", "t.json"}, exitUsage},
		{"zero buyers", []string{"-f", "t.json", "--buyers", "0"}, exitUsage},
		{"force without count", []string{"-f", "t.json", "--buyers", "2", "--force"}, exitUsage},
		{"count over an existing sale", []string{"-f", "t.json", "--buyers", "2", "--count", "9"}, exitError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := ticketRun(t, dir, append([]string{"rush"}, tc.args...)...)
			if code != tc.want {
				t.Errorf("exit %d, want %d\nstderr: %s", code, tc.want, errOut)
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
			if !strings.HasPrefix(errOut, "ticket rush: error: ") || strings.Count(errOut, "\n") != 1 {
				t.Errorf("stderr %q, want one error line", errOut)
			}
		})
	}
	after, _ := os.ReadFile(filepath.Join(dir, "t.json"))
	if !bytes.Equal(before, after) {
		t.Errorf("t.json changed from %q to %q", before, after)
	}
	if _, err := os.Stat(filepath.Join(dir, "ticket.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a rush created the default ticket.json: %v", err)
	}
}

// children returns the pids whose parent is ppid, with their command lines.
func children(ppid int) map[int]string {
	kids := map[int]string{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if parent(pid) == ppid {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			kids[pid] = strings.ReplaceAll(string(cmdline), "\x00", " ")
		}
	}
	return kids
}

// parent returns pid's parent from /proc/PID/stat, or -1.
func parent(pid int) int {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(f) < 2 {
		return -1
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// alive reports whether pid runs: a zombie waiting for its new parent,
// init, to reap it counts as gone.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// TestHeartbeatDiesWithRush kills a running rush with SIGKILL and checks
// that its heartbeat child is gone within a second, with each mechanism
// alone and both; with neither, the child must survive, or the test
// could not tell.
func TestHeartbeatDiesWithRush(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("needs /proc to find the rush's children")
	}
	for _, tc := range []struct {
		guard    string
		survives bool
	}{
		{"both", false},
		{"pdeathsig", false},
		{"pipe", false},
		{"none", true}, // negative control
	} {
		t.Run(tc.guard, func(t *testing.T) {
			// Hold the lock so that the buyers, and so the rush, wait.
			dir, file, _ := heldSale(t)
			// A heartbeat an hour apart never writes during the test, so
			// that a broken stdout pipe cannot stop it either.
			rush := startEnv(t, dir, []string{guardEnv + "=" + tc.guard}, "rush", "-f", file, "--buyers", "2", "--every", "1h")
			var watch int
			var buyers []int
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) && (watch == 0 || len(buyers) < 2) {
				watch, buyers = 0, nil
				for pid, cmdline := range children(rush.cmd.Process.Pid) {
					switch {
					case strings.Contains(cmdline, " watch "):
						watch = pid
					case strings.Contains(cmdline, " buy "):
						buyers = append(buyers, pid)
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
			for _, pid := range append(buyers, watch) {
				killAtEnd(t, pid)
			}
			if watch == 0 || len(buyers) < 2 {
				t.Fatalf("found watch %d and buyers %v under the rush; stderr:\n%s", watch, buyers, rush.errs())
			}
			// The heartbeat child writes its first heartbeat at once, then
			// none for an hour. Kill the rush only once it has read that
			// one: under load the rush could otherwise die before the
			// child's first write, which would then find its stdout pipe
			// broken and die of SIGPIPE, guard or none.
			beat := fmt.Sprintf("heartbeat (pid %d)", watch)
			for deadline := time.Now().Add(10 * time.Second); !strings.Contains(rush.errs(), beat); time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("no heartbeat from %d reached the rush in 10s; stderr:\n%s", watch, rush.errs())
				}
			}
			if err := rush.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = rush.wait(t)
			killed := time.Now()
			for alive(watch) && time.Since(killed) < time.Second {
				time.Sleep(10 * time.Millisecond)
			}
			gone := !alive(watch)
			t.Logf("guard %s: heartbeat %d gone: %v after %v", tc.guard, watch, gone, time.Since(killed).Round(time.Millisecond))
			switch {
			case tc.survives && gone:
				t.Errorf("with no guard the heartbeat %d died anyway: the test cannot tell the guards work", watch)
			case !tc.survives && !gone:
				t.Errorf("heartbeat %d still runs a second after its rush was killed", watch)
			}
		})
	}
}

// TestHeartbeatEndsWithRush checks that a rush that ends normally leaves
// no heartbeat behind.
func TestHeartbeatEndsWithRush(t *testing.T) {
	dir := t.TempDir()
	code, sum, errOut := rushResult(t, dir, "-f", "t.json", "--buyers", "4", "--count", "2", "--every", "10ms")
	if code != 0 || sum.HeartbeatPID == 0 {
		t.Fatalf("exit %d, heartbeat pid %d\n%s", code, sum.HeartbeatPID, errOut)
	}
	if alive(sum.HeartbeatPID) {
		t.Errorf("heartbeat %d still runs after the rush", sum.HeartbeatPID)
	}
	if sum.Heartbeats < 1 || !strings.Contains(errOut, "heartbeat (pid "+strconv.Itoa(sum.HeartbeatPID)+")") {
		t.Errorf("%d heartbeats; stderr:\n%s", sum.Heartbeats, errOut)
	}
}

func TestWatch(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := ticketRun(t, dir, "init", "-f", "t.json", "--count", "2"); code != 0 {
		t.Fatalf("init: exit %d: %s", code, errOut)
	}
	w := start(t, dir, "watch", "-f", "t.json", "--every", "20ms")
	time.Sleep(100 * time.Millisecond)
	for _, b := range []string{"a", "b"} {
		if code, _, errOut := ticketRun(t, dir, "buy", "-f", "t.json", "--buyer", b); code != 0 {
			t.Fatalf("buy: exit %d: %s", code, errOut)
		}
	}
	done := make(chan int, 1)
	go func() { done <- w.wait(t) }()
	select {
	case code := <-done:
		out := w.out()
		if code != 0 || !strings.HasPrefix(out, "heartbeat: 2 left of 2\n") || !strings.HasSuffix(out, "heartbeat: 0 left of 2\n") {
			t.Errorf("exit %d, stdout:\n%s", code, out)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("watch did not stop when sold out")
	}

	t.Run("parent already gone", func(t *testing.T) {
		// Started by the test, not by pid 1: as if its rush had died
		// before the parent-death signal was armed.
		p := startEnv(t, dir, []string{"TICKET_CHILD=heartbeat:1"}, "watch", "-f", "t.json", "--every", "1h")
		code, out, errOut := p.wait(t), p.out(), p.errs()
		if code != 0 || out != "" || !strings.Contains(errOut, "parent 1 is gone") {
			t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
		}
	})

	t.Run("interrupted", func(t *testing.T) {
		if code, _, errOut := ticketRun(t, dir, "init", "-f", "u.json", "--count", "2"); code != 0 {
			t.Fatalf("init: exit %d: %s", code, errOut)
		}
		w := start(t, dir, "watch", "-f", "u.json", "--json", "--every", "1h")
		// The first heartbeat comes at once; once it is there, the
		// signal handler is installed.
		for deadline := time.Now().Add(10 * time.Second); w.out() == "" && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		_ = w.cmd.Process.Signal(syscall.SIGINT)
		if code := w.wait(t); code != exitSIGINT {
			t.Errorf("exit %d, want %d; stderr %q", code, exitSIGINT, w.errs())
		}
		var hb heartbeat
		if err := json.Unmarshal([]byte(w.out()), &hb); err != nil || hb.Left != 2 || hb.Total != 2 {
			t.Errorf("heartbeats %q: %+v, %v", w.out(), hb, err)
		}
	})
}

func TestBuyPeek(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := ticketRun(t, dir, "init", "-f", "t.json", "--count", "3"); code != 0 {
		t.Fatalf("init: exit %d: %s", code, errOut)
	}
	code, out, errOut := ticketRun(t, dir, "buy", "-f", "t.json", "--buyer", "person3", "--peek", "--json")
	var got struct {
		Seen   *int64
		Left   int64
		Bought bool
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || code != 0 || got.Seen == nil || *got.Seen != 3 || got.Left != 2 || !got.Bought {
		t.Errorf("exit %d, stdout %q (%v)", code, out, err)
	}
	if errOut != "person3 sees 3 left\n" {
		t.Errorf("stderr %q, want %q", errOut, "person3 sees 3 left\n")
	}
}

// needTools skips the test, saying how to install them, when commands
// the cooperation tests and the shell scripts need are missing.
func needTools(t *testing.T, names ...string) {
	t.Helper()
	packages := map[string]string{"python3": "python3", "jq": "jq", "flock": "util-linux", "bash": "bash"}
	var missing []string
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		var pkgs []string
		for _, m := range missing {
			pkgs = append(pkgs, packages[m])
		}
		t.Skipf("%s not installed (apt-get install %s; scripts/check.sh installs them when CI=true)", strings.Join(missing, ", "), strings.Join(pkgs, " "))
	}
}

// python3 is the Python interpreter itself, found once: a version manager's
// shim on PATH (pyenv's) costs a few hundred milliseconds per process,
// several times the buyer's own run.
var python3 = sync.OnceValue(func() string {
	out, err := exec.Command("python3", "-c", "import sys; print(sys.executable)").Output()
	if exe := strings.TrimSpace(string(out)); err == nil && filepath.IsAbs(exe) {
		return exe
	}
	return "python3"
})

// script runs a script of scripts/ with bash, the ticket program first on
// PATH. It runs in its own process group, which t.Cleanup kills, buyers
// and all.
func script(t *testing.T, env []string, name string, args ...string) (int, string) {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed: the scripts need it")
	}
	cmd := exec.Command(bash, append([]string{filepath.Join(moduleRoot, "scripts", name)}, args...)...)
	cmd.Dir = t.TempDir()
	path := []string{ticketDir(t), os.Getenv("PATH")}
	if filepath.IsAbs(python3()) { // the interpreter itself before any shim
		path = append([]string{filepath.Dir(python3())}, path...)
	}
	cmd.Env = append(os.Environ(), "PATH="+strings.Join(path, string(os.PathListSeparator)), "TICKET_BIN=")
	cmd.Env = append(cmd.Env, procEnv...)
	cmd.Env = append(cmd.Env, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	t.Cleanup(func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })
	err = cmd.Wait()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

func TestShellScripts(t *testing.T) {
	raceRounds := size(2, 6) // even: the last round is coop.sh's, the one before rush.sh's
	for _, tc := range []struct {
		name, script string
		args         []string
		code         int
		want         []string
	}{
		{"rush help", "rush.sh", []string{"-h"}, 0, []string{"Usage: scripts/rush.sh [-h] N COUNT"}},
		{"rush usage", "rush.sh", []string{"5"}, 2, []string{"Usage:"}},
		{"rush", "rush.sh", []string{"12", "5"}, 0, []string{"bought: 5  sold out: 7  errors: 0", "0 left of 5 (5 sold)", "ok: 5 sales"}},
		{"rush fewer buyers", "rush.sh", []string{"3", "5"}, 0, []string{"bought: 3  sold out: 0  errors: 0", "2 left of 5 (3 sold)"}},
		{"race help", "race.sh", []string{"-h"}, 0, []string{"Usage: scripts/race.sh [-h] [ROUNDS]"}},
		{"race", "race.sh", []string{strconv.Itoa(raceRounds)}, 0, []string{fmt.Sprintf("round %d (rush.sh): buyers:", raceRounds-1), fmt.Sprintf("round %d (", raceRounds), fmt.Sprintf("rounds run: %d, processes started:", raceRounds), "no violation"}},
		{"coop help", "coop.sh", []string{"-h"}, 0, []string{"Usage: scripts/coop.sh [-h] N COUNT"}},
		{"coop usage", "coop.sh", []string{"x", "1"}, 2, []string{"Usage:"}},
		{"coop", "coop.sh", []string{strconv.Itoa(size(12, 24)), strconv.Itoa(size(4, 8))}, 0, []string{fmt.Sprintf("buyers: %d  tickets: %d", size(12, 24), size(4, 8)), "errors: 0", "left: 0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "coop" {
				needTools(t, "python3", "jq", "flock")
			}
			code, out := script(t, nil, tc.script, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\n%s", code, tc.code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestScriptsSeeOversell is the scripts' negative control: with a ticket
// program whose buyers skip the lock, race.sh must stop at a violation
// that the race caused (an oversell or lost updates, not merely the
// journal that unlocked buyers do not write).
func TestShellScriptsSeeOversell(t *testing.T) {
	wrapper := filepath.Join(t.TempDir(), "ticket-unlocked")
	body := "#!/bin/sh\nif [ \"$1\" = buy ]; then shift; exec '" + os.Args[0] + "' buy --unsafe-no-lock \"$@\"; fi\nexec '" + os.Args[0] + "' \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	const attempts = 5
	for i := 1; i <= attempts; i++ {
		code, out := script(t, []string{"TICKET_BIN=" + wrapper}, "race.sh", "6")
		if code == 1 && (strings.Contains(out, "OVERSOLD") || strings.Contains(out, "lost updates")) {
			t.Logf("attempt %d: race.sh saw it:\n%s", i, out)
			return
		}
		t.Logf("attempt %d: exit %d\n%s", i, code, out)
	}
	t.Fatalf("race.sh with unlocked buyers never saw an oversell or lost update in %d attempts", attempts)
}

// TestHelp checks that -h shows the help and does nothing else: before it
// was handled, "ticket buy -h" bought a ticket.
func TestHelp(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := ticketRun(t, dir, "init", "--count", "1"); code != 0 {
		t.Fatalf("init: exit %d: %s", code, errOut)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "ticket.json"))
	for _, cmd := range []string{"buy", "rush", "watch"} {
		t.Run(cmd, func(t *testing.T) {
			code, out, errOut := ticketRun(t, dir, cmd, "-h")
			if code != 0 || !strings.HasPrefix(out, "Usage: ticket "+cmd+" ") || errOut != "" {
				t.Errorf("exit %d, stdout %.40q, stderr %q", code, out, errOut)
			}
		})
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "ticket.json")); !bytes.Equal(before, after) {
		t.Errorf("ticket.json changed from %q to %q", before, after)
	}
}

// TestRushInterrupted sends SIGTERM to a rush whose buyers wait for the
// lock: it passes the signal on, they stop with nothing changed, and the
// rush reports them, checks the books and exits 143.
func TestRushInterrupted(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("needs /proc to find the rush's children")
	}
	dir, file, unlock := heldSale(t)
	rush := start(t, dir, "rush", "-f", file, "--buyers", "3")
	var buyers []int
	for deadline := time.Now().Add(10 * time.Second); len(buyers) < 3 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		buyers = buyers[:0]
		for pid, cmdline := range children(rush.cmd.Process.Pid) {
			if strings.Contains(cmdline, " buy ") {
				buyers = append(buyers, pid)
			}
		}
	}
	for _, pid := range buyers {
		killAtEnd(t, pid)
	}
	if len(buyers) < 3 {
		t.Fatalf("found buyers %v", buyers)
	}
	// Signal only once all three wait in flock(2), past the gate and with
	// their signal handlers installed.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		w := lockWaiters()
		if w[buyers[0]] && w[buyers[1]] && w[buyers[2]] {
			break
		}
	}
	_ = rush.cmd.Process.Signal(syscall.SIGTERM)
	// The lock stays held until every buyer has stopped, so none can buy.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if !alive(buyers[0]) && !alive(buyers[1]) && !alive(buyers[2]) {
			break
		}
	}
	unlock()
	if code := rush.wait(t); code != exitSIGTERM {
		t.Errorf("exit %d, want %d", code, exitSIGTERM)
	}
	out := rush.out()
	for _, want := range []string{"got one:    0\n", "errors:     3\n", "left:       3\n", "books:      balance"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "error (exit 143): interrupted") != 3 {
		t.Errorf("want three buyers interrupted:\n%s", out)
	}
}

// TestRushSellsWhatIsLeft runs a rush without --count on a sale already
// under way: it sells what is left, and checks only its own sales.
func TestRushSellsWhatIsLeft(t *testing.T) {
	dir := t.TempDir()
	code, first, errOut := rushResult(t, dir, "-f", "t.json", "--count", "10", "--buyers", "4")
	if code != 0 || first.Got != 4 || first.Left != 6 {
		t.Fatalf("first rush: exit %d, got %d, left %d\n%s", code, first.Got, first.Left, errOut)
	}
	code, second, errOut := rushResult(t, dir, "-f", "t.json", "--buyers", "8")
	if code != 0 || second.Tickets != 6 || second.Got != 6 || second.SoldOut != 2 || second.Left != 0 || !second.Balanced {
		t.Errorf("second rush: exit %d, tickets %d, got %d, sold out %d, left %d, problems %q\n%s", code, second.Tickets, second.Got, second.SoldOut, second.Left, second.Problems, errOut)
	}
	if second.Verify != "ok, 10 sales" {
		t.Errorf("verify %q, want %q", second.Verify, "ok, 10 sales")
	}
}

// heldSale creates a sale of 3 tickets in a new directory and holds its
// lock, so that buyers, and so a rush, wait: until unlock, or at the
// latest the end of the test.
func heldSale(t *testing.T) (dir, file string, unlock func()) {
	t.Helper()
	dir = t.TempDir()
	file = filepath.Join(dir, "t.json")
	if code, _, errOut := ticketRun(t, dir, "init", "-f", file, "--count", "3"); code != 0 {
		t.Fatalf("init: exit %d: %s", code, errOut)
	}
	unlock, err := lock.Lock(context.Background(), file+".lock", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unlock) // releasing twice is harmless
	return dir, file, unlock
}
