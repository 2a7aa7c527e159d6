package sem

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ticketd/ticket/store/internal/storetest"
	"github.com/ticketd/ticket/store/lock"
)

func TestMain(m *testing.M) {
	storetest.Main(m, map[string]func() int{"hold": holdRole, "loop": loopRole, "pingpong": pingpongRole})
}

// openRoleSemaphore opens the semaphore a child's environment names.
func openRoleSemaphore() *Semaphore {
	slots, _ := strconv.Atoi(os.Getenv("SEM_SLOTS"))
	sem, err := Open(os.Getenv("SEM_DIR"), os.Getenv("SEM_NAME"), slots)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	return sem
}

// holdRole takes a slot, says which, and holds it until killed.
func holdRole() int {
	sl, err := openRoleSemaphore().Acquire(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("slot %d\n", sl.Number())
	time.Sleep(time.Minute)
	return 0
}

// loopRole, for TestSemaphoreFairness: acquire, hold, release, again; then
// print how long each acquire waited.
func loopRole() int {
	sem := openRoleSemaphore()
	hold, _ := time.ParseDuration(os.Getenv("SEM_HOLD"))
	span, _ := time.ParseDuration(os.Getenv("SEM_FOR"))
	var waits []string
	for end := time.Now().Add(span); time.Now().Before(end); {
		t0 := time.Now()
		sl, err := sem.Acquire(context.Background())
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		waits = append(waits, strconv.FormatInt(int64(time.Since(t0)), 10))
		time.Sleep(hold)
		sl.Release()
	}
	fmt.Println(strings.Join(waits, " "))
	return 0
}

// pingpongRole, for BenchmarkSlotHandoff: obeys lines on stdin.
func pingpongRole() int {
	sem := openRoleSemaphore()
	in := bufio.NewScanner(os.Stdin)
	var sl *Slot
	for in.Scan() {
		switch in.Text() {
		case "acquire": // wait for a slot, then say when it came
			var err error
			if sl, err = sem.Acquire(context.Background()); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			fmt.Printf("%d\n", time.Now().UnixNano())
		case "release": // say when, then release
			fmt.Printf("%d\n", time.Now().UnixNano())
			sl.Release()
		}
	}
	return 0
}

// startSemRole starts a child copy of the test binary in role, with the
// semaphore given in its environment, and kills it when the test ends.
func startSemRole(tb testing.TB, role, dir, name string, slots int, env ...string) (*exec.Cmd, *bufio.Reader, func(string)) {
	tb.Helper()
	cmd := storetest.Child(tb, role, "", append([]string{"SEM_DIR=" + dir, "SEM_NAME=" + name, "SEM_SLOTS=" + strconv.Itoa(slots)}, env...)...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	storetest.StartChild(tb, cmd)
	send := func(line string) {
		if _, err := fmt.Fprintln(stdin, line); err != nil {
			tb.Fatalf("tell child %q: %v", line, err)
		}
	}
	return cmd, bufio.NewReader(stdout), send
}

func readLine(tb testing.TB, r *bufio.Reader) string {
	tb.Helper()
	line, err := r.ReadString('\n')
	if err != nil {
		tb.Fatalf("read from child: %v", err)
	}
	return strings.TrimSpace(line)
}

func privateTempDir(t testing.TB) string {
	dir := filepath.Join(t.TempDir(), "sem")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestCheckName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"ktv", true},
		{"KTV-rooms_2.v1+x@host", true},
		{strings.Repeat("a", 64), true},
		{"", false},
		{strings.Repeat("a", 65), false},
		{".hidden", false},
		{"-flag", false},
		{"a/b", false},
		{"..", false},
		{"a b", false},
		{"a*", false},
		{"é", false},
	} {
		t.Run(fmt.Sprintf("%q", tc.name), func(t *testing.T) {
			err := CheckName(tc.name)
			if got := err == nil; got != tc.ok {
				t.Errorf("CheckName(%q) = %v, want ok %v", tc.name, err, tc.ok)
			}
		})
	}
}

func TestOpenSemaphoreDir(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, dir string)
		wantErr string // "" for success
	}{
		{"missing is created 0700", func(t *testing.T, dir string) {}, ""},
		{"private dir", func(t *testing.T, dir string) { mkdir(t, dir, 0o700) }, ""},
		{"group writable", func(t *testing.T, dir string) { mkdir(t, dir, 0o770) }, "writable by others"},
		{"world writable", func(t *testing.T, dir string) { mkdir(t, dir, 0o1777) }, "writable by others"},
		{"symlink to a private dir", func(t *testing.T, dir string) {
			real := dir + ".real"
			mkdir(t, real, 0o700)
			if err := os.Symlink(real, dir); err != nil {
				t.Fatal(err)
			}
		}, "not a directory"},
		{"a file", func(t *testing.T, dir string) {
			if err := os.WriteFile(dir, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "not a directory"},
		{"another user's", func(t *testing.T, dir string) {
			if os.Geteuid() != 0 {
				t.Skip("needs root to chown")
			}
			mkdir(t, dir, 0o700)
			if err := os.Chown(dir, 4242, 4242); err != nil {
				t.Fatal(err)
			}
		}, "owned by uid 4242"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "sem")
			tc.prepare(t, dir)
			_, err := Open(dir, "s", 2)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("OpenSemaphore: %v", err)
				}
				fi, err := os.Lstat(dir)
				if err != nil {
					t.Fatal(err)
				}
				if got := fi.Mode().Perm(); got != 0o700 {
					t.Errorf("mode %v, want 0700", got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("OpenSemaphore: got %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func mkdir(t *testing.T, dir string, perm os.FileMode) {
	t.Helper()
	if err := os.Mkdir(dir, perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, perm); err != nil { // past the umask
		t.Fatal(err)
	}
}

func TestOpenSemaphoreSlots(t *testing.T) {
	for _, n := range []int{0, -1, MaxSlots + 1} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			if _, err := Open(privateTempDir(t), "s", n); err == nil {
				t.Errorf("OpenSemaphore with %d slots: got no error", n)
			}
		})
	}
}

func TestAcquireNowait(t *testing.T) {
	sem, err := Open(privateTempDir(t), "s", 2)
	if err != nil {
		t.Fatal(err)
	}
	nowait, cancel := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel()
	a, err := sem.Acquire(nowait)
	if err != nil {
		t.Fatal(err)
	}
	b, err := sem.Acquire(nowait)
	if err != nil {
		t.Fatal(err)
	}
	if a.Number() == b.Number() {
		t.Fatalf("two holders of slot %d", a.Number())
	}
	_, err = sem.Acquire(nowait)
	if !errors.Is(err, ErrNoSlot) || !errors.Is(err, lock.ErrLocked) {
		t.Fatalf("third Acquire: got %v, want ErrNoSlot wrapping lock.ErrLocked", err)
	}
	a.Release()
	a.Release() // twice is harmless
	c, err := sem.Acquire(nowait)
	if err != nil {
		t.Fatalf("Acquire after a Release: %v", err)
	}
	if c.Number() != a.Number() {
		t.Errorf("got slot %d, want the freed slot %d", c.Number(), a.Number())
	}
	b.Release()
	c.Release()
}

// TestAcquireGivesUp checks that a waiter whose deadline passes or whose
// context is cancelled holds no slot afterwards, although its goroutines
// are still blocked on the slot files.
func TestAcquireGivesUp(t *testing.T) {
	sem, err := Open(privateTempDir(t), "s", 2)
	if err != nil {
		t.Fatal(err)
	}
	var held []*Slot
	for range 2 {
		sl, err := sem.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, sl)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, err = sem.Acquire(ctx)
	cancel()
	if !errors.Is(err, ErrNoSlot) {
		t.Fatalf("Acquire past its deadline: got %v, want ErrNoSlot", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err = sem.Acquire(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Acquire: got %v, want context.Canceled", err)
	}
	for _, sl := range held {
		sl.Release()
	}
	// Both slots must come back: the waiters that gave up keep neither.
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	seen := map[int]bool{}
	for range 2 {
		sl, err := sem.Acquire(ctx)
		if err != nil {
			t.Fatalf("Acquire after the givers-up: %v", err)
		}
		seen[sl.Number()] = true
		defer sl.Release()
	}
	if len(seen) != 2 {
		t.Errorf("got slots %v, want both", seen)
	}
}

// TestSemaphoreBoundGoroutines runs more goroutines than slots through one
// semaphore: flock(2) locks belong to open files, so goroutines of one
// process exclude each other as processes do.
func TestSemaphoreBoundGoroutines(t *testing.T) {
	const slots, workers, rounds = 3, 8, 5
	sem, err := Open(privateTempDir(t), "s", slots)
	if err != nil {
		t.Fatal(err)
	}
	var inside, most atomic.Int32
	var mu sync.Mutex
	holder := map[int]bool{}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range rounds {
				sl, err := sem.Acquire(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if holder[sl.Number()] {
					t.Errorf("slot %d held twice", sl.Number())
				}
				holder[sl.Number()] = true
				mu.Unlock()
				n := inside.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				time.Sleep(2 * time.Millisecond)
				inside.Add(-1)
				mu.Lock()
				holder[sl.Number()] = false
				mu.Unlock()
				sl.Release()
			}
		})
	}
	wg.Wait()
	if m := most.Load(); m > slots {
		t.Errorf("%d inside at once, want at most %d", m, slots)
	}
	t.Logf("at most %d of %d workers inside %d slots", most.Load(), workers, slots)
}

// TestSlotHolderKilled kills a slot holder with SIGKILL: the kernel frees
// its slot and the waiter gets it. Until then the waiter waits.
func TestSlotHolderKilled(t *testing.T) {
	dir := privateTempDir(t)
	sem, err := Open(dir, "s", 1)
	if err != nil {
		t.Fatal(err)
	}
	holder, out, _ := startSemRole(t, "hold", dir, "s", 1)
	if got := readLine(t, out); got != "slot 1" {
		t.Fatalf("holder says %q, want slot 1", got)
	}
	states, err := sem.Status()
	if err != nil {
		t.Fatal(err)
	}
	if want := (SlotState{Number: 1, Held: true, PID: holder.Process.Pid, Running: true}); len(states) != 1 || states[0] != want {
		t.Fatalf("status %+v, want [%+v]", states, want)
	}
	type result struct {
		sl  *Slot
		err error
	}
	got := make(chan result, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() {
		sl, err := sem.Acquire(ctx)
		got <- result{sl, err}
	}()
	select {
	case r := <-got:
		t.Fatalf("waiter got slot %v (err %v) while the holder lives", r.sl, r.err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := holder.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil {
		t.Fatalf("waiter after SIGKILL of the holder: %v", r.err)
	}
	defer r.sl.Release()
	if r.sl.Number() != 1 {
		t.Errorf("got slot %d, want 1", r.sl.Number())
	}
	states, err = sem.Status()
	if err != nil {
		t.Fatal(err)
	}
	if want := (SlotState{Number: 1, Held: true, PID: os.Getpid(), Running: true}); states[0] != want {
		t.Errorf("status %+v, want %+v", states[0], want)
	}
}

func TestSemaphoreStatus(t *testing.T) {
	dir := privateTempDir(t)
	sem, err := Open(dir, "s", 3)
	if err != nil {
		t.Fatal(err)
	}
	sl, err := sem.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Slot 2 held by a process that left a pid that is gone: as after a
	// crash of the writer, with the lock passed on (here: held directly).
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	unlock, err := lock.Lock(context.Background(), sem.slotPath(2), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if err := os.WriteFile(sem.slotPath(2), []byte(strconv.Itoa(dead.Process.Pid)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A slot file beyond N, left by a user with more slots, held.
	unlock5, err := lock.Lock(context.Background(), filepath.Join(dir, "s.5.slot"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock5()
	states, err := sem.Status()
	if err != nil {
		t.Fatal(err)
	}
	want := []SlotState{
		{Number: 1, Held: true, PID: os.Getpid(), Running: true},
		{Number: 2, Held: true, PID: dead.Process.Pid},
		{Number: 3},
		{Number: 5, Held: true},
	}
	if fmt.Sprint(states) != fmt.Sprint(want) {
		t.Errorf("status %+v, want %+v", states, want)
	}
	sl.Release()
	states, err = sem.Status()
	if err != nil {
		t.Fatal(err)
	}
	if states[0] != (SlotState{Number: 1}) {
		t.Errorf("after Release: %+v, want slot 1 free with no pid", states[0])
	}
}

// TestSemaphoreFairness runs a steady stream of arrivals: processes that
// go back in line as soon as they release, more of them than slots. It
// logs how long each waited; it asserts only that every one got in.
func TestSemaphoreFairness(t *testing.T) {
	const procs, slots = 6, 2
	hold, span := 10*time.Millisecond, storetest.Size(time.Second, 3*time.Second)
	dir := privateTempDir(t)
	var outs []*bufio.Reader
	for range procs {
		_, out, _ := startSemRole(t, "loop", dir, "fair", slots, "SEM_HOLD="+hold.String(), "SEM_FOR="+span.String())
		outs = append(outs, out)
	}
	var all []time.Duration
	var counts []int
	for i, out := range outs {
		fields := strings.Fields(readLine(t, out))
		if len(fields) == 0 {
			t.Errorf("process %d never got a slot in %v", i, span)
		}
		counts = append(counts, len(fields))
		for _, f := range fields {
			ns, err := strconv.ParseInt(f, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, time.Duration(ns))
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	q := func(p float64) time.Duration { return all[int(p*float64(len(all)-1))].Round(100 * time.Microsecond) }
	t.Logf("%d processes, %d slots, hold %v, %v: acquisitions per process %v; wait p50 %v p90 %v p99 %v max %v (a fair FIFO would wait about %v)",
		procs, slots, hold, span, counts, q(0.5), q(0.9), q(0.99), q(1), time.Duration(procs-slots)*hold/slots)
}

// BenchmarkSlotHandoff measures the time from a holder's release of the
// last busy slot to a waiter in another process running with it: the
// holder takes a clock reading just before Release, the waiter just after
// Acquire returns. The two processes take turns, so both directions count.
// With slots=4, three slots stay held by this process and the waiter
// blocks on all four files.
func BenchmarkSlotHandoff(b *testing.B) {
	for _, slots := range []int{1, 4} {
		b.Run(fmt.Sprintf("slots=%d", slots), func(b *testing.B) {
			dir := privateTempDir(b)
			sem, err := Open(dir, "bench", slots)
			if err != nil {
				b.Fatal(err)
			}
			for range slots - 1 {
				sl, err := sem.Acquire(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				defer sl.Release()
			}
			mine, err := sem.Acquire(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			_, out, send := startSemRole(b, "pingpong", dir, "bench", slots)
			readTime := func() time.Time {
				ns, err := strconv.ParseInt(readLine(b, out), 10, 64)
				if err != nil {
					b.Fatal(err)
				}
				return time.Unix(0, ns)
			}
			settle := 5 * time.Millisecond // for the waiter to block in flock(2)
			var lat []time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i%2 == 0 { // the child waits, this process releases
					send("acquire")
					time.Sleep(settle)
					t0 := time.Now()
					mine.Release()
					lat = append(lat, readTime().Sub(t0))
					continue
				}
				type acquired struct {
					sl *Slot
					at time.Time
				}
				got := make(chan acquired, 1)
				go func() {
					sl, err := sem.Acquire(context.Background())
					if err != nil {
						b.Error(err)
					}
					got <- acquired{sl, time.Now()}
				}()
				time.Sleep(settle)
				send("release")
				t0 := readTime()
				a := <-got
				mine = a.sl
				lat = append(lat, a.at.Sub(t0))
			}
			b.StopTimer()
			mine.Release()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			var sum time.Duration
			for _, d := range lat {
				sum += d
			}
			b.ReportMetric(float64(sum.Microseconds())/float64(len(lat)), "µs-handoff-mean")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "µs-handoff-p50")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "µs-handoff-p99")
		})
	}
}
