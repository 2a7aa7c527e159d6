package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ticketd/ticket/store/lock"
	"github.com/ticketd/ticket/store/sem"
)

// playRole is a COMMAND run by ticket sem in the tests.
//
//	singer  append "start NS SLOT PID" to $TEST_LOG, sleep $TEST_HOLD,
//	        append "end NS SLOT PID"
//	ready   print "ready PID" on stdout, then sleep a minute; with
//	        TEST_TRAP set, exit 10+N on signal N instead of dying of it
//	mark    create the file $TEST_MARK
func playRole(role string) int {
	switch role {
	case "singer":
		hold, err := time.ParseDuration(os.Getenv("TEST_HOLD"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		note := func(what string) error {
			f, err := os.OpenFile(os.Getenv("TEST_LOG"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(f, "%s %d %s %d\n", what, time.Now().UnixNano(), os.Getenv("TICKET_SEM_SLOT"), os.Getpid())
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			return err
		}
		if err := note("start"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		// Stay until TEST_FILL singers are inside at once, or every one of
		// TEST_SINGERS has started, or 20 s: on a loaded machine singers
		// that merely sleep may come and go without ever filling the
		// rooms, which would hide whether the bound lets them.
		if fill, _ := strconv.Atoi(os.Getenv("TEST_FILL")); fill > 0 {
			all, _ := strconv.Atoi(os.Getenv("TEST_SINGERS"))
			for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				data, _ := os.ReadFile(os.Getenv("TEST_LOG"))
				starts, ends := strings.Count(string(data), "start "), strings.Count(string(data), "end ")
				if starts-ends >= fill || starts >= all {
					break
				}
			}
		}
		time.Sleep(hold)
		if err := note("end"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	case "ready":
		sigs := make(chan os.Signal, 1)
		if os.Getenv("TEST_TRAP") != "" {
			signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
		}
		fmt.Printf("ready %d\n", os.Getpid())
		select {
		case s := <-sigs:
			return 10 + int(s.(syscall.Signal))
		case <-time.After(time.Minute):
			return 0
		}
	case "mark":
		if err := os.WriteFile(os.Getenv("TEST_MARK"), nil, 0o600); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	}
	fmt.Fprintln(os.Stderr, "unknown role", role)
	return 2
}

// semCmd returns a ticket sem process (not started) that runs the test
// binary in role, and kills it when the test ends.
func semCmd(t *testing.T, role string, env []string, args ...string) *exec.Cmd {
	t.Helper()
	args = append(append([]string{"sem"}, args...), "--", os.Args[0])
	cmd := ticketCmd(args...)
	cmd.Env = append(append(cmd.Env, testRoleEnv+"="+role), env...)
	t.Cleanup(func() {
		if cmd.Process != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd
}

// semTicketCmd returns a ticket process that is killed if it is still
// running when the test ends (or after a minute).
func semTicketCmd(t *testing.T, args ...string) *exec.Cmd {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	cmd := ticketCmdContext(ctx, args...)
	return cmd
}

// exitStatus returns the exit status of a process that ran: its code, or
// 128+N if signal N killed it.
func exitStatus(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("run: %v", err)
	}
	if ws := ee.Sys().(syscall.WaitStatus); ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ee.ExitCode()
}

func semDir(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "sem")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestSemKTV is the seed's case: 10 singers, 4 rooms. Each singer notes
// when it starts and ends, and stays until 4 are inside (or all have
// started), so that the rooms fill however loaded the machine; at no
// moment may more than 4 be inside, and no room may hold two. The control runs the same singers with 10 slots and
// must see more than 4 inside: the check can fail.
func TestSemKTV(t *testing.T) {
	const singers, rooms = 10, 4
	hold := 300 * time.Millisecond
	for _, tc := range []struct {
		name  string
		slots int
	}{
		{"4 rooms", rooms},
		{"control: 10 rooms", singers},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := semDir(t)
			log := filepath.Join(t.TempDir(), "log")
			var cmds []*exec.Cmd
			for range singers {
				cmd := semCmd(t, "singer", []string{"TEST_LOG=" + log, "TEST_HOLD=" + hold.String(), "TEST_FILL=" + strconv.Itoa(rooms), "TEST_SINGERS=" + strconv.Itoa(singers)},
					"--name", "ktv", "--slots", strconv.Itoa(tc.slots), "--dir", dir)
				cmd.Stderr = os.Stderr
				cmds = append(cmds, cmd)
			}
			begin := time.Now()
			for _, cmd := range cmds {
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
			}
			for i, cmd := range cmds {
				if err := cmd.Wait(); err != nil {
					t.Errorf("singer %d: %v", i, err)
				}
			}
			wall := time.Since(begin)
			most, gaps := checkKTV(t, log, singers)
			t.Logf("%d singers, %d slots: at most %d inside; wall %v for %d rounds of %v (overhead %v); room hand-offs (end of one singer to start of the next in that room): %s",
				singers, tc.slots, most, wall.Round(time.Millisecond), (singers+tc.slots-1)/tc.slots, hold,
				(wall - time.Duration((singers+tc.slots-1)/tc.slots)*hold).Round(time.Millisecond), gaps)
			if tc.slots == rooms {
				if most > rooms {
					t.Errorf("%d singers inside at once, want at most %d", most, rooms)
				}
				if most < rooms {
					t.Errorf("at most %d singers inside at once, want all %d rooms used at some point", most, rooms)
				}
			} else if most <= rooms {
				t.Errorf("control: at most %d inside without the 4-room bound; the check could not fail", most)
			}
		})
	}
}

// checkKTV reads the singers' log, checks that every singer started and
// ended once, that no room held two singers, and returns the most singers
// inside at once and the room hand-off times.
func checkKTV(t *testing.T, log string, singers int) (most int, gaps string) {
	t.Helper()
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	type event struct {
		start bool
		ns    int64
		room  string
		pid   string
	}
	var events []event
	for line := range strings.Lines(string(data)) {
		var what, room, pid string
		var ns int64
		if _, err := fmt.Sscanf(line, "%s %d %s %s", &what, &ns, &room, &pid); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		events = append(events, event{what == "start", ns, room, pid})
	}
	sort.SliceStable(events, func(i, j int) bool { return events[i].ns < events[j].ns })
	starts, ends := map[string]bool{}, map[string]bool{}
	inRoom := map[string]string{} // room -> pid inside
	lastEnd := map[string]int64{}
	var handoffs []time.Duration
	inside := 0
	for _, e := range events {
		if e.start {
			starts[e.pid] = true
			if other, busy := inRoom[e.room]; busy {
				t.Errorf("room %s: pid %s started while pid %s was inside", e.room, e.pid, other)
			}
			inRoom[e.room] = e.pid
			if end, ok := lastEnd[e.room]; ok {
				handoffs = append(handoffs, time.Duration(e.ns-end))
			}
			inside++
			most = max(most, inside)
			continue
		}
		ends[e.pid] = true
		delete(inRoom, e.room)
		lastEnd[e.room] = e.ns
		inside--
	}
	if len(starts) != singers || len(ends) != singers {
		t.Errorf("%d singers started and %d ended, want %d", len(starts), len(ends), singers)
	}
	sort.Slice(handoffs, func(i, j int) bool { return handoffs[i] < handoffs[j] })
	var parts []string
	for _, h := range handoffs {
		parts = append(parts, h.Round(100*time.Microsecond).String())
	}
	return most, "[" + strings.Join(parts, " ") + "]"
}

// holdAll takes every slot of the semaphore in this process, through the
// library, and frees them when the test ends.
func holdAll(t *testing.T, dir, name string, slots int) {
	t.Helper()
	s, err := sem.Open(dir, name, slots)
	if err != nil {
		t.Fatal(err)
	}
	for range slots {
		sl, err := s.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(sl.Release)
	}
}

func TestSemExitStatus(t *testing.T) {
	notExec := filepath.Join(t.TempDir(), "not-executable")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	openDir := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(openDir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(openDir, 0o777); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		args   []string // after "sem"; DIR is replaced by a fresh directory
		busy   bool     // all slots held by the test first
		want   int
		stderr string // a part of the message, if any
	}{
		{"exit 0", []string{"--name", "s", "--slots", "1", "--dir", "DIR", "--", "true"}, false, 0, ""},
		{"exit 3", []string{"--name", "s", "--slots", "1", "--dir", "DIR", "--", "sh", "-c", "exit 3"}, false, 3, ""},
		{"exit 42 without --", []string{"--name", "s", "--slots", "2", "--dir", "DIR", "sh", "-c", "exit 42"}, false, 42, ""},
		{"killed by SIGTERM", []string{"--name", "s", "--slots", "1", "--dir", "DIR", "--", "sh", "-c", "kill -TERM $$"}, false, 143, ""},
		{"killed by SIGKILL", []string{"--name", "s", "--slots", "1", "--dir", "DIR", "--", "sh", "-c", "kill -KILL $$"}, false, 137, ""},
		{"slot in env", []string{"--name", "s", "--slots", "1", "--dir", "DIR", "--", "sh", "-c", `test "$TICKET_SEM_SLOT:$TICKET_SEM_NAME" = 1:s`}, false, 0, ""},
		{"not found", []string{"--name", "s", "--slots", "1", "--dir", "DIR", "--", "no-such-command-xyz"}, false, 127, "command not found"},
		{"not found, path", []string{"--name", "s", "--slots", "1", "--dir", "DIR", "--", "/no/such/file"}, false, 127, "command not found"},
		{"not executable", []string{"--name", "s", "--slots", "1", "--dir", "DIR", "--", notExec}, false, 126, "cannot run"},
		{"nowait, all held", []string{"--name", "s", "--slots", "2", "--dir", "DIR", "--nowait", "--", "true"}, true, 4, "no slot free"},
		{"wait 200ms, all held", []string{"--name", "s", "--slots", "2", "--dir", "DIR", "--wait", "200ms", "--", "true"}, true, 4, "no slot free"},
		{"nowait, free", []string{"--name", "s", "--slots", "2", "--dir", "DIR", "--nowait", "--", "true"}, false, 0, ""},
		{"slots 0", []string{"--name", "s", "--slots", "0", "--dir", "DIR", "--", "true"}, false, 2, "--slots"},
		{"slots negative", []string{"--name", "s", "--slots", "-3", "--dir", "DIR", "--", "true"}, false, 2, "--slots"},
		{"slots not a number", []string{"--name", "s", "--slots", "four", "--dir", "DIR", "--", "true"}, false, 2, "--slots"},
		{"slots too many", []string{"--name", "s", "--slots", "1001", "--dir", "DIR", "--", "true"}, false, 2, "--slots"},
		{"slots fraction", []string{"--name", "s", "--slots", "1.5", "--dir", "DIR", "--", "true"}, false, 2, "--slots"},
		{"slots missing", []string{"--name", "s", "--dir", "DIR", "--", "true"}, false, 2, "--slots"},
		{"name missing", []string{"--slots", "1", "--dir", "DIR", "--", "true"}, false, 2, "--name"},
		{"name with slash", []string{"--name", "../x", "--slots", "1", "--dir", "DIR", "--", "true"}, false, 2, "--name"},
		{"name hidden", []string{"--name", ".x", "--slots", "1", "--dir", "DIR", "--", "true"}, false, 2, "--name"},
		{"command missing", []string{"--name", "s", "--slots", "1", "--dir", "DIR"}, false, 2, "COMMAND"},
		{"wait and nowait", []string{"--name", "s", "--slots", "1", "--dir", "DIR", "--wait", "1s", "--nowait", "--", "true"}, false, 2, "exclude"},
		{"help", []string{"-h"}, false, 0, ""},
		{"help after flags", []string{"--name", "s", "--help"}, false, 0, ""},
		{"unsafe dir", []string{"--name", "s", "--slots", "1", "--dir", openDir, "--", "true"}, false, 1, "writable by others"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := semDir(t)
			args := []string{"sem"}
			for _, a := range tc.args {
				if a == "DIR" {
					a = dir
				}
				args = append(args, a)
			}
			if tc.busy {
				holdAll(t, dir, "s", 2)
			}
			cmd := semTicketCmd(t, args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			got := exitStatus(t, cmd.Run())
			if got != tc.want {
				t.Errorf("ticket %s: exit %d, want %d (stderr %q)", strings.Join(args, " "), got, tc.want, stderr.String())
			}
			if tc.stderr != "" && !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("stderr %q, want it to mention %q", stderr.String(), tc.stderr)
			}
		})
	}
}

// startReady starts ticket sem running the "ready" role and returns once
// the role runs, with the role's pid.
func startReady(t *testing.T, env []string, args ...string) (*exec.Cmd, int) {
	t.Helper()
	cmd := semCmd(t, "ready", env, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("read ready line: %v", err)
	}
	var pid int
	if _, err := fmt.Sscanf(line, "ready %d", &pid); err != nil {
		t.Fatalf("ready line %q: %v", line, err)
	}
	killAtEnd(t, pid)
	return cmd, pid
}

// TestSemSignals sends signals to ticket sem while COMMAND runs: they
// reach COMMAND, and ticket sem exits with COMMAND's status.
func TestSemSignals(t *testing.T) {
	for _, tc := range []struct {
		name string
		sig  syscall.Signal
		trap bool
		want int
	}{
		{"SIGTERM kills", syscall.SIGTERM, false, 143},
		{"SIGINT kills", syscall.SIGINT, false, 130},
		{"SIGHUP kills", syscall.SIGHUP, false, 129},
		{"SIGTERM trapped", syscall.SIGTERM, true, 10 + 15},
		{"SIGINT trapped", syscall.SIGINT, true, 10 + 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var env []string
			if tc.trap {
				env = append(env, "TEST_TRAP=1")
			}
			cmd, _ := startReady(t, env, "--name", "s", "--slots", "1", "--dir", semDir(t))
			if err := cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			if got := exitStatus(t, cmd.Wait()); got != tc.want {
				t.Errorf("exit %d, want %d", got, tc.want)
			}
		})
	}
}

// waitNextInLine waits until a ticket sem process is next in line for the
// semaphore: it holds NAME.queue.
func waitNextInLine(t *testing.T, dir, name string) {
	t.Helper()
	queue := filepath.Join(dir, name+".queue")
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		unlock, ok, err := lock.TryLock(queue, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return
		}
		unlock()
	}
	t.Fatal("no ticket sem process waited in line")
}

// TestSemInterruptedWhileWaiting signals ticket sem while it waits for a
// slot: it exits 130, 143 or 129 and runs nothing.
func TestSemInterruptedWhileWaiting(t *testing.T) {
	for _, tc := range []struct {
		name string
		sig  syscall.Signal
		want int
	}{
		{"SIGINT", syscall.SIGINT, 130},
		{"SIGTERM", syscall.SIGTERM, 143},
		{"SIGHUP", syscall.SIGHUP, 129},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := semDir(t)
			holdAll(t, dir, "s", 1)
			mark := filepath.Join(t.TempDir(), "ran")
			cmd := semCmd(t, "mark", []string{"TEST_MARK=" + mark}, "--name", "s", "--slots", "1", "--dir", dir)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waitNextInLine(t, dir, "s")
			if err := cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			if got := exitStatus(t, cmd.Wait()); got != tc.want {
				t.Errorf("exit %d, want %d (stderr %q)", got, tc.want, stderr.String())
			}
			if _, err := os.Stat(mark); err == nil {
				t.Error("COMMAND ran after the interrupt")
			}
			if !strings.Contains(stderr.String(), "nothing was run") {
				t.Errorf("stderr %q, want it to say nothing was run", stderr.String())
			}
		})
	}
}

// TestSemHolderKilled kills the ticket sem that holds the only slot with
// SIGKILL: the kernel frees the slot, COMMAND is killed with it (it would
// otherwise run on outside the semaphore), and the waiting ticket sem runs.
func TestSemHolderKilled(t *testing.T) {
	dir := semDir(t)
	holder, job := startReady(t, nil, "--name", "s", "--slots", "1", "--dir", dir)
	mark := filepath.Join(t.TempDir(), "ran")
	waiter := semCmd(t, "mark", []string{"TEST_MARK=" + mark}, "--name", "s", "--slots", "1", "--dir", dir)
	waiter.Stderr = os.Stderr
	if err := waiter.Start(); err != nil {
		t.Fatal(err)
	}
	waitNextInLine(t, dir, "s")
	if _, err := os.Stat(mark); err == nil {
		t.Fatal("the waiter ran while the holder held the only slot")
	}
	out, err := semTicketCmd(t, "sem", "--status", "--name", "s", "--dir", dir).Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("s slot 1: held by pid %d\n", holder.Process.Pid); string(out) != want {
		t.Errorf("status %q, want %q", out, want)
	}
	if err := holder.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = holder.Wait()
	if got := exitStatus(t, waiter.Wait()); got != 0 {
		t.Fatalf("waiter: exit %d, want 0", got)
	}
	if _, err := os.Stat(mark); err != nil {
		t.Errorf("the waiter did not run COMMAND: %v", err)
	}
	// The holder's COMMAND got SIGKILL when the holder died.
	for deadline := time.Now().Add(10 * time.Second); alive(job); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the killed holder's COMMAND (pid %d) still runs", job)
		}
	}
}

func TestSemStatus(t *testing.T) {
	dir := semDir(t)
	holder, _ := startReady(t, nil, "--name", "s", "--slots", "2", "--dir", dir)
	out, err := semTicketCmd(t, "sem", "--status", "--name", "s", "--slots", "3", "--dir", dir).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("s slot 1: held by pid %d\ns slot 2: free\ns slot 3: free\n", holder.Process.Pid)
	if string(out) != want {
		t.Errorf("status:\n%s\nwant:\n%s", out, want)
	}
	out, err = semTicketCmd(t, "sem", "--status", "--name", "s", "--dir", dir, "--json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Held  int `json:"held"`
		Slots []struct {
			Slot    int  `json:"slot"`
			Held    bool `json:"held"`
			PID     int  `json:"pid"`
			Running bool `json:"running"`
		} `json:"slots"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("status --json %q: %v", out, err)
	}
	if got.Held != 1 || len(got.Slots) != 1 || got.Slots[0].PID != holder.Process.Pid || !got.Slots[0].Running {
		t.Errorf("status --json: %s", out)
	}
}

// TestSemWaiterCPU measures the CPU time a ticket sem waiting for a slot
// uses (utime+stime from /proc/PID/stat), for the README. It asserts only
// that the waiter waits.
func TestSemWaiterCPU(t *testing.T) {
	dir := semDir(t)
	holdAll(t, dir, "s", 4)
	first := semCmd(t, "mark", []string{"TEST_MARK=" + filepath.Join(t.TempDir(), "a")}, "--name", "s", "--slots", "4", "--dir", dir)
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	waitNextInLine(t, dir, "s")
	second := semCmd(t, "mark", []string{"TEST_MARK=" + filepath.Join(t.TempDir(), "b")}, "--name", "s", "--slots", "4", "--dir", dir)
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // both settle into their wait
	span := size(500*time.Millisecond, 3*time.Second)
	a0, b0 := cpuTicks(t, first.Process.Pid), cpuTicks(t, second.Process.Pid)
	time.Sleep(span)
	a1, b1 := cpuTicks(t, first.Process.Pid), cpuTicks(t, second.Process.Pid)
	t.Logf("CPU used while waiting %v (clock ticks of 10ms, utime+stime): next in line (4 slot waiters, %s threads) %d, behind it (queue waiter, %s threads) %d",
		span, procStatus(t, first.Process.Pid, "Threads"), a1-a0, procStatus(t, second.Process.Pid, "Threads"), b1-b0)
	for _, p := range []*os.Process{first.Process, second.Process} {
		if err := p.Signal(syscall.Signal(0)); err != nil {
			t.Errorf("pid %d stopped waiting: %v", p.Pid, err)
		}
	}
}

// cpuTicks returns utime+stime of pid in clock ticks.
func cpuTicks(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// fields[0] is field 3 (state); utime and stime are fields 14 and 15.
	ut, err1 := strconv.ParseInt(fields[11], 10, 64)
	st, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("parse /proc/%d/stat: %q", pid, s)
	}
	return ut + st
}

// procStatus returns a field of /proc/PID/status.
func procStatus(t *testing.T, pid int, field string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}
