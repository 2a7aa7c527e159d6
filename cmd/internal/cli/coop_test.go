//go:build linux

package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gofrs/flock"
	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/ticket"
)

// The cooperation tests: ticket's buyers share a sale with programs that
// follow the lock protocol without ticket (a Python script with fcntl, a
// flock + jq line of shell) and with what administrators do to the files
// (delete the lock file, truncate it with flock(1)'s 9> idiom, share it
// between sales, copy a sale, hard-link or move its ticket file). In
// every case: exactly the stock is sold, every buyer told it got a ticket
// has it (ticket's in the journal once, the others as tickets taken
// outside ticket), ticket verify passes, and no buyer crashes.

// participant is one buyer process of a cooperation test.
type participant struct {
	kind   string // ticket, python, python-sold, python-count-only, jq, shell
	name   string
	cmd    *exec.Cmd
	out    outcome
	killed bool // the test SIGKILLed it
}

// jqBuyer is a buyer in one line of shell, with flock(1) and jq: it takes
// one ticket under the lock if one is left (exit 0), else exits 3.
const jqBuyer = `exec flock "$1.lock" sh -c 'n=$(jq .count "$1") || exit 1; [ "$n" -ge 1 ] || exit 3; jq ".count -= 1" "$1" >"$1.jq.$$" && mv "$1.jq.$$" "$1"' sh "$1"`

// pythonBuyer is the path of the Python protocol buyer.
func pythonBuyer() string { return filepath.Join(moduleRoot, "scripts", "peers", "protocol_buyer.py") }

// newParticipant returns a buyer of kind for the sale at path, not yet
// started, held at gate (a file the test holds locked) if gate is not "".
func newParticipant(kind, name, path, gate string) *participant {
	p := &participant{kind: kind, name: name}
	var argv []string
	switch kind {
	case "ticket":
		p.cmd = ticketCmd("buy", "-f", path, "--buyer", name, "--json")
		if gate != "" {
			p.cmd.Env = append(p.cmd.Env, "TICKET_TEST_GATE="+gate)
		}
	case "python":
		argv = []string{python3(), pythonBuyer(), path}
	case "python-sold":
		argv = []string{python3(), pythonBuyer(), "--keep-sold", path}
	case "python-count-only":
		argv = []string{python3(), pythonBuyer(), "--count-only", path}
	case "python-no-lock":
		argv = []string{python3(), pythonBuyer(), "--no-lock", "--slow", "5", path}
	case "jq":
		argv = []string{"sh", "-c", jqBuyer, "sh", path}
	case "shell":
		argv = []string{"sh", filepath.Join(moduleRoot, "scripts", "peers", "flock_buyer.sh"), path}
	default:
		panic(kind)
	}
	if argv != nil {
		if gate != "" {
			argv = append([]string{"flock", "-s", gate}, argv...)
		}
		p.cmd = exec.Command(argv[0], argv[1:]...)
	}
	capture(p.cmd)
	return p
}

// pids returns the participants' process ids.
func pids(ps []*participant) []int {
	out := make([]int, len(ps))
	for i, p := range ps {
		out[i] = p.cmd.Process.Pid
	}
	return out
}

// foreign reports whether the participant buys without ticket.
func (p *participant) foreign() bool { return p.kind != "ticket" }

// won reports whether the participant was told it got a ticket.
func (p *participant) won() bool { return p.out.code == 0 && !p.killed }

// rushAll starts every participant held at a gate, waits until all of them
// are blocked on it, lets them go at once, SIGKILLs the ticket buyers
// listed in kill at random moments within the first 20 ms, and waits for
// all. Every process is killed by pid when the test ends, whatever
// happens.
func rushAll(t *testing.T, ps []*participant, gate string, kill map[int]bool) {
	t.Helper()
	g := flock.New(gate)
	if err := g.Lock(); err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.cmd.Process.Kill(); _ = p.cmd.Wait() })
	}
	waitBlocked(t, pids(ps), 60*time.Second, "reached the gate in 60s")
	if err := g.Unlock(); err != nil {
		t.Fatal(err)
	}
	for i := range kill {
		p := ps[i]
		go func() {
			time.Sleep(time.Duration(rand.IntN(20000)) * time.Microsecond)
			p.killed = true
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
		}()
	}
	for _, p := range ps {
		p.out = finish(t, p.cmd, p.cmd.Wait())
	}
	for _, p := range ps {
		p.killed = p.out.signal == syscall.SIGKILL
	}
}

// crashDump reports whether a buyer's stderr shows a Go crash or a fatal
// signal, which no everyday action on the files may cause.
func crashDump(s string) bool {
	for _, sign := range []string{"panic:", "fatal error:", "SIGBUS", "SIGSEGV", "goroutine "} {
		if strings.Contains(s, sign) {
			return true
		}
	}
	return false
}

// books settles the sale (ticket repair records what other programs
// changed) and checks it against what its buyers were told: ticket verify
// passes; the journal holds one sale for every ticket buyer told it got
// one, and none for one told it did not (a killed buyer may have one);
// the tickets taken outside ticket are exactly those the others were told
// they got; and tickets sold plus left is the stock. It returns the
// tickets sold.
func books(t *testing.T, path string, stock int64, ps []*participant) int64 {
	t.Helper()
	for _, p := range ps {
		if crashDump(p.out.stderr) {
			t.Fatalf("%s (%s) crashed: %s", p.name, p.kind, p.out.stderr)
		}
		if !p.killed && p.out.code != 0 && p.out.code != exitSoldOut {
			t.Fatalf("%s (%s): exit %d: %s%s", p.name, p.kind, p.out.code, p.out.stdout, p.out.stderr)
		}
	}
	if o := runCaptured(t, "repair", "-f", path); o.code != 0 {
		t.Fatalf("repair: %+v", o)
	}
	o := runCaptured(t, "verify", "-f", path, "--json")
	var v struct {
		Balanced bool   `json:"balanced"`
		Left     int64  `json:"left"`
		Total    int64  `json:"total"`
		Sales    int64  `json:"sales"`
		Outside  int64  `json:"outside"`
		Added    int64  `json:"added"`
		Pending  string `json:"pending"`
	}
	if err := json.Unmarshal([]byte(o.stdout), &v); err != nil || o.code != 0 || !v.Balanced || v.Pending != "" {
		t.Fatalf("verify after the buyers: exit %d, %s%s", o.code, o.stdout, o.stderr)
	}
	sales := map[string]int{}
	for r, err := range store.Open(path, store.Options{}).Sales() {
		if err != nil {
			t.Fatal(err)
		}
		if r.Kind == ticket.KindSale {
			sales[r.Buyer]++
		}
	}
	var foreignWon, ticketWon int64
	for _, p := range ps {
		n := sales[p.name]
		switch {
		case p.foreign() && p.won():
			foreignWon++
		case p.foreign():
		case n > 1:
			t.Errorf("%s has %d sales in the journal", p.name, n)
		case p.won() && n != 1:
			t.Errorf("%s was told it got a ticket but has %d sales in the journal", p.name, n)
		case !p.won() && !p.killed && n != 0:
			t.Errorf("%s was told it got none but has a sale in the journal", p.name)
		}
		if p.won() && !p.foreign() {
			ticketWon++
		}
		delete(sales, p.name)
	}
	for name := range sales {
		if name != "setup" {
			t.Errorf("the journal has a sale to %q, who never bought", name)
		}
	}
	if v.Outside != foreignWon {
		t.Errorf("%d tickets recorded as taken outside ticket, but %d buyers without ticket were told they got one", v.Outside, foreignWon)
	}
	sold := v.Total - v.Left
	if v.Total != stock+v.Added || sold > v.Total {
		t.Errorf("verify: %d left of %d, %d added; the stock was %d", v.Left, v.Total, v.Added, stock)
	}
	t.Logf("%d ticket buyers and %d others told they got one; journal: %d sales, %d taken outside ticket; %d left of %d", ticketWon, foreignWon, v.Sales, v.Outside, v.Left, v.Total)
	return sold
}

// TestCoopOneAtATime has ticket and programs without it take turns on one
// sale, one process at a time, with ticket verify after each: a Python
// buyer, one that keeps "sold" in step too, one that writes back only
// "count", a flock + jq line, stock added and taken away by hand under the
// lock. Each change made outside ticket is recorded as such by the next
// ticket process, shown by show --sales, and the books balance after every
// step; nothing is refused, and repair sells nothing again.
func TestCoopOneAtATime(t *testing.T) {
	needTools(t, "python3", "jq", "flock")
	path := newTicketFile(t, "10")
	step := func(what string, cmd *exec.Cmd, want int) {
		t.Helper()
		o := finish(t, capture(cmd), cmd.Run())
		if o.code != want {
			t.Fatalf("%s: exit %d, want %d: %s%s", what, o.code, want, o.stdout, o.stderr)
		}
		if o := runCaptured(t, "verify", "-f", path); o.code != 0 {
			t.Fatalf("verify after %s: %+v", what, o)
		}
	}
	buy := func(name string) *exec.Cmd { return ticketCmd("buy", "-f", path, "--buyer", name) }
	py := func(args ...string) *exec.Cmd {
		return exec.Command(python3(), append(append([]string{pythonBuyer()}, args...), path)...)
	}
	step("ticket buy", buy("t1"), 0)
	step("python", py(), 0)
	step("python keeping sold", py("--keep-sold"), 0)
	step("ticket buy", buy("t2"), 0)
	step("flock + jq", exec.Command("sh", "-c", jqBuyer, "sh", path), 0)
	step("python writing count only", py("--count-only"), 0)
	step("ticket buy", buy("t3"), 0)
	step("stock added by hand", py("--add", "5"), 0)
	step("ticket buy", buy("t4"), 0)
	step("python taking 2", py("--qty", "2"), 0)
	step("ticket buy", buy("t5"), 0)
	// Changes made between two ticket processes are recorded as one, by
	// their sum: ticket sees only the count they left.
	o := runCaptured(t, "verify", "-f", path, "--json")
	for _, want := range []string{`"left":4`, `"total":15`, `"sold":5`, `"sales":5`, `"outside":6`, `"added":5`} {
		if !strings.Contains(o.stdout, want) {
			t.Fatalf("verify --json: %s; want %s", o.stdout, want)
		}
	}
	o = runCaptured(t, "show", "-f", path, "--sales")
	for _, want := range []string{`t1 bought 1`, `#2 \S+ 2 taken outside ticket \(7 left of 10\)`, `#6 \S+ 5 added outside ticket \(8 left of 15\)`, `t5 bought 1`} {
		if !regexp.MustCompile(want).MatchString(o.stdout) {
			t.Fatalf("show --sales:\n%s\nwant a line with %q", o.stdout, want)
		}
	}
	// repair on a sound sale changes nothing, and never raises the count.
	if o := runCaptured(t, "repair", "-f", path); o.code != 0 || !strings.Contains(o.stdout, "is sound") || !strings.Contains(o.stdout, "4 left of 15") {
		t.Fatalf("repair: %+v", o)
	}
}

// TestCoopRush has ticket buyers and buyers without ticket (Python, Python
// keeping "sold", flock + jq) all start at once on one sale, some of the
// ticket buyers killed with SIGKILL on the way, then checks the books
// (see books). The negative control mixes in Python buyers that skip the
// lock: in at least one attempt more buyers are told they got a ticket
// than there are tickets, or the books lose a sale.
func TestCoopRush(t *testing.T) {
	needTools(t, "python3", "jq", "flock")
	kinds := []string{"ticket", "ticket", "python", "ticket", "jq", "python-sold", "ticket", "python-count-only", "ticket", "shell"}
	round := func(t *testing.T, control bool, kill bool) (oversold bool) {
		stock, n := size(10, 30), size(16, 40) // more than the ticket buyers take: the others get some too
		path := newTicketFile(t, fmt.Sprint(stock))
		gate := filepath.Join(t.TempDir(), "gate")
		var ps []*participant
		killing := map[int]bool{}
		for i := range n {
			kind := kinds[i%len(kinds)]
			if control && i%4 == 1 {
				kind = "python-no-lock"
			}
			if kill && kind == "ticket" && i%3 == 0 {
				killing[i] = true
			}
			ps = append(ps, newParticipant(kind, fmt.Sprintf("b%d", i), path, gate))
		}
		rushAll(t, ps, gate, killing)
		won := 0
		for _, p := range ps {
			if p.won() {
				won++
			}
		}
		if control {
			// Buyers that skip the lock overwrite others' changes: more
			// buyers told they got one than there were tickets, or fewer
			// tickets gone than buyers told so.
			runCaptured(t, "repair", "-f", path)
			var v struct{ Left, Total int64 }
			_ = json.Unmarshal([]byte(runCaptured(t, "verify", "-f", path, "--json").stdout), &v)
			t.Logf("control: %d buyers told they got one of %d tickets; the books say %d sold", won, stock, v.Total-v.Left)
			return won > stock || int64(won) != v.Total-v.Left
		}
		if won > stock {
			t.Fatalf("%d buyers told they got one of %d tickets", won, stock)
		}
		if sold := books(t, path, int64(stock), ps); sold != int64(stock) {
			t.Fatalf("%d tickets sold of %d, with %d buyers", sold, stock, n)
		}
		return false
	}
	t.Run("all-at-once", func(t *testing.T) { round(t, false, false) })
	t.Run("with-kill-9", func(t *testing.T) { round(t, false, true) })
	t.Run("control-without-the-lock", func(t *testing.T) {
		for attempt := 1; attempt <= 5; attempt++ {
			if round(t, true, false) {
				t.Logf("attempt %d: buyers that skip the lock oversold or lost a sale", attempt)
				return
			}
		}
		t.Fatal("buyers skipping the lock never oversold in 5 attempts: the test cannot see an oversell")
	})
}

// tickets rushes n ticket buyers at path, held at a gate, while during()
// runs in the background until they are done; it returns them.
func ticketRush(t *testing.T, path string, n int, during func(stop <-chan struct{})) []*participant {
	t.Helper()
	gate := filepath.Join(t.TempDir(), "gate")
	ps := make([]*participant, n)
	for i := range ps {
		ps[i] = newParticipant("ticket", fmt.Sprintf("b%d", i), path, gate)
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() { during(stop); close(done) }()
	rushAll(t, ps, gate, nil)
	close(stop)
	<-done
	return ps
}

// TestCoopLockFileDeleted deletes PATH.lock again and again while 300
// ticket buyers rush for 100 tickets (75 for 25 by default), as an
// administrator removing a "stale" lock file would: exactly the stock
// wins, each sale once in the journal. (store's
// TestDeletedLockFileNeverSplits has the negative control.)
func TestCoopLockFileDeleted(t *testing.T) {
	stock, buyers := size(25, 100), size(75, 300)
	path := newTicketFile(t, strconv.Itoa(stock))
	deleted := 0
	ps := ticketRush(t, path, buyers, func(stop <-chan struct{}) {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if os.Remove(path+".lock") == nil {
				deleted++
			}
			time.Sleep(500 * time.Microsecond)
		}
	})
	t.Logf("the lock file was deleted %d times during the rush", deleted)
	if sold := books(t, path, int64(stock), ps); sold != int64(stock) {
		t.Fatalf("%d sold of %d", sold, stock)
	}
}

// TestCoopTruncatingHolder takes the lock the way flock(1)'s manual shows,
// ( flock 9; ... ) 9>PATH.lock, which truncates the lock file, again and
// again while 200 ticket buyers rush for 100 tickets (50 for 25 by
// default): no buyer crashes or fails, and exactly the stock wins.
func TestCoopTruncatingHolder(t *testing.T) {
	needTools(t, "flock", "bash")
	stock, buyers := size(25, 100), size(50, 200)
	path := newTicketFile(t, strconv.Itoa(stock))
	holds := 0
	ps := ticketRush(t, path, buyers, func(stop <-chan struct{}) {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if exec.Command("bash", "-c", `( flock 9; sleep 0.002 ) 9>"$1"`, "bash", path+".lock").Run() == nil {
				holds++
			}
		}
	})
	t.Logf("the lock was taken %d times with 9>PATH.lock during the rush", holds)
	if holds == 0 {
		t.Fatal("the truncating holder never ran")
	}
	if sold := books(t, path, int64(stock), ps); sold != int64(stock) {
		t.Fatalf("%d sold of %d", sold, stock)
	}
}

// TestCoopSharedLockFile gives two sales one lock file, as a symbolic link
// or a hard link (a.json.lock and b.json.lock naming one file), and rushes
// buyers at both at once: each sale sells its own tickets to its own
// buyers, each buyer's result names its own file, and each journal holds
// only its own sale's buyers.
func TestCoopSharedLockFile(t *testing.T) {
	for _, how := range []string{"symlink", "hardlink"} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir()
			a, b := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
			for _, p := range []string{a, b} {
				if o := runCaptured(t, "init", "-f", p, "--count", "10"); o.code != 0 {
					t.Fatalf("init: %+v", o)
				}
			}
			shared := filepath.Join(dir, "shared.lock")
			if err := os.WriteFile(shared, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{a, b} {
				os.Remove(p + ".lock")
				var err error
				if how == "symlink" {
					err = os.Symlink(shared, p+".lock")
				} else {
					err = os.Link(shared, p+".lock")
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			gate := filepath.Join(dir, "gate")
			var pa, pb, all []*participant
			for i := range 20 {
				pa = append(pa, newParticipant("ticket", fmt.Sprintf("a%d", i), a, gate))
				pb = append(pb, newParticipant("ticket", fmt.Sprintf("b%d", i), b, gate))
				all = append(all, pa[i], pb[i])
			}
			rushAll(t, all, gate, nil)
			for _, p := range all {
				var r struct {
					File string `json:"file"`
				}
				_ = json.Unmarshal([]byte(p.out.stdout), &r)
				if want := map[byte]string{'a': a, 'b': b}[p.name[0]]; r.File != want {
					t.Fatalf("%s: result names %q, want %q: %s", p.name, r.File, want, p.out.stdout)
				}
			}
			if sold := books(t, a, 10, pa); sold != 10 {
				t.Fatalf("a: %d sold of 10", sold)
			}
			if sold := books(t, b, 10, pb); sold != 10 {
				t.Fatalf("b: %d sold of 10", sold)
			}
		})
	}
}

// TestCoopCopyMidRush copies a sale with cp -a while buyers wait for its
// lock (a flock(1) holder keeps them waiting), then lets them go: the
// copy is a sale of its own, its next buy records only its own buyer, and
// none of the original's buyers lands in its journal.
func TestCoopCopyMidRush(t *testing.T) {
	needTools(t, "flock")
	dir := t.TempDir()
	orig := filepath.Join(dir, "sale")
	if err := os.Mkdir(orig, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(orig, "t.json")
	if o := runCaptured(t, "init", "-f", path, "--count", "20"); o.code != 0 {
		t.Fatalf("init: %+v", o)
	}
	if o := runCaptured(t, "buy", "-f", path, "--buyer", "setup"); o.code != 0 {
		t.Fatalf("buy: %+v", o)
	}
	// -o: sleep does not inherit the lock, so killing flock(1) releases it.
	holder := exec.Command("flock", "-o", path+".lock", "sleep", "60")
	holder.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-holder.Process.Pid, syscall.SIGKILL); _ = holder.Wait() })
	var ps []*participant
	for i := range 8 {
		p := newParticipant("ticket", fmt.Sprintf("w%d", i), path, "")
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.cmd.Process.Kill(); _ = p.cmd.Wait() })
		ps = append(ps, p)
	}
	waitBlocked(t, pids(ps), 30*time.Second, "waiting after 30s")
	backup := filepath.Join(dir, "backup")
	if out, err := exec.Command("cp", "-a", orig, backup).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v: %s", err, out)
	}
	_ = syscall.Kill(-holder.Process.Pid, syscall.SIGKILL)
	for _, p := range ps {
		p.out = finish(t, p.cmd, p.cmd.Wait())
	}
	copied := filepath.Join(backup, "t.json")
	if o := runCaptured(t, "buy", "-f", copied, "--buyer", "late"); o.code != 0 {
		t.Fatalf("buy from the copy: %+v", o)
	}
	var names []string
	for r, err := range store.Open(copied, store.Options{}).Sales() {
		if err != nil {
			t.Fatal(err)
		}
		if r.Kind == ticket.KindSale {
			names = append(names, r.Buyer)
		}
	}
	if strings.Join(names, " ") != "setup late" {
		t.Fatalf("the copy's journal holds sales to %q, want setup then late", names)
	}
	if o := runCaptured(t, "verify", "-f", copied); o.code != 0 {
		t.Fatalf("verify the copy: %+v", o)
	}
	if sold := books(t, path, 20, ps); sold != 9 {
		t.Fatalf("the original sold %d, want the setup sale and 8", sold)
	}
}

// TestCoopHardLinkRefused: a ticket file with a second name would become
// two sales (each buy replaces the name it was given), so it is refused,
// untouched, with a message that says why; after the second name is
// removed, buying goes on.
func TestCoopHardLinkRefused(t *testing.T) {
	path := newTicketFile(t, "5")
	other := filepath.Join(filepath.Dir(path), "other.json")
	if err := os.Link(path, other); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	for _, p := range []string{path, other} {
		o := runCaptured(t, "buy", "-f", p)
		if o.code != exitInvalid || !strings.Contains(o.stderr, "2 names (hard links)") {
			t.Fatalf("buy -f %s: %+v; want exit 5 naming the hard links", p, o)
		}
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatalf("the refused file changed: %s -> %s", before, after)
	}
	if err := os.Remove(other); err != nil {
		t.Fatal(err)
	}
	if o := runCaptured(t, "buy", "-f", path); o.code != 0 {
		t.Fatalf("buy after removing the second name: %+v", o)
	}
}

// TestCoopMovedTicketFile moves a ticket file away from a journal that
// holds its sales: buy refuses (exit 5) and says to put it back or repair
// it, init without --force refuses to start the sale again, and repair
// rebuilds it from the journal, so that no ticket is sold twice.
func TestCoopMovedTicketFile(t *testing.T) {
	path := newTicketFile(t, "3")
	if o := runCaptured(t, "buy", "-f", path, "--buyer", "first"); o.code != 0 {
		t.Fatalf("buy: %+v", o)
	}
	if err := os.Rename(path, path+".moved"); err != nil {
		t.Fatal(err)
	}
	if o := runCaptured(t, "buy", "-f", path); o.code != exitInvalid || !strings.Contains(o.stderr, "ticket repair") {
		t.Fatalf("buy with the ticket file moved: %+v; want exit 5 saying how to rebuild it", o)
	}
	if o := runCaptured(t, "init", "-f", path, "--count", "3"); o.code != exitError || !strings.Contains(o.stderr, "the sale exists") {
		t.Fatalf("init over a moved ticket file: %+v; want a refusal", o)
	}
	if o := runCaptured(t, "repair", "-f", path); o.code != 0 || !strings.Contains(o.stdout, "2 left of 3") {
		t.Fatalf("repair: %+v", o)
	}
	for i := range 3 {
		o := runCaptured(t, "buy", "-f", path)
		if want := []int{0, 0, exitSoldOut}[i]; o.code != want {
			t.Fatalf("buy %d after repair: exit %d, want %d", i+1, o.code, want)
		}
	}
	if o := runCaptured(t, "verify", "-f", path); o.code != 0 || !strings.Contains(o.stdout, "3 sales") {
		t.Fatalf("verify: %+v", o)
	}
}
