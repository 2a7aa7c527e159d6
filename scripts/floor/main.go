//go:build linux

// Command floor is the physical floor that ticket bench is measured
// against: P processes loop "flock, read the count, write count-1 to a
// temporary file, fsync, rename, fsync the directory, unlock" until the
// count is 0, and nothing else: no JSON parser, no journal, no checks.
// With -design each buy is instead what ticket's design needs and no
// more: "flock, read the count, write a line into the journal's space
// (grown 16 KiB at a time) and fdatasync it, write count-1 over the spare
// file and swap it with the count file (renameat2 RENAME_EXCHANGE, no
// fsync), unlock".
//
//	go run ./scripts/floor -procs 4 -tickets 20000 [-design] [-no-sync] [-dir DIR]
//	go run ./scripts/floor -once -dir DIR   # one naive durable replace, then exit
//
// It prints "N buys/s". scripts/bench.sh runs it beside ticket bench; with
// -once it is the trivial program that one ticket buy process is
// measured against.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	procs := flag.Int("procs", 4, "processes")
	tickets := flag.Int("tickets", 20000, "tickets to sell")
	noSync := flag.Bool("no-sync", false, "skip fsync")
	dir := flag.String("dir", "", "directory (default: a new one under the current directory)")
	design := flag.Bool("design", false, "each buy appends to a journal and fdatasyncs it, and replaces the count without fsync")
	once := flag.Bool("once", false, "make one naive durable replace in -dir (its count file must exist) and exit")
	worker := flag.Bool("worker", false, "internal: be one buyer")
	flag.Parse()
	if *once {
		check(buy(*dir, true, false, true))
		return
	}
	if *worker {
		if err := buyAll(*dir, !*noSync, *design); err != nil {
			fmt.Fprintln(os.Stderr, "floor:", err)
			os.Exit(1)
		}
		return
	}
	if *dir == "" {
		d, err := os.MkdirTemp(".", "floor-")
		check(err)
		defer os.RemoveAll(d)
		*dir = d
	}
	check(os.WriteFile(filepath.Join(*dir, "count"), []byte(strconv.Itoa(*tickets)), 0o644))
	self, err := os.Executable()
	check(err)
	cmds := make([]*exec.Cmd, *procs)
	start := time.Now()
	for i := range cmds {
		args := []string{"-worker", "-dir", *dir}
		if *noSync {
			args = append(args, "-no-sync")
		}
		if *design {
			args = append(args, "-design")
		}
		cmds[i] = exec.Command(self, args...)
		cmds[i].Stderr = os.Stderr
		check(cmds[i].Start())
	}
	for _, c := range cmds {
		check(c.Wait())
	}
	wall := time.Since(start)
	data, err := os.ReadFile(filepath.Join(*dir, "count"))
	check(err)
	if strings.TrimSpace(string(data)) != "0" {
		check(fmt.Errorf("count ended at %q, want 0", data))
	}
	fmt.Printf("%.0f buys/s\n", float64(*tickets)/wall.Seconds())
}

// buyAll buys until the count is 0.
func buyAll(dir string, sync, design bool) error {
	for {
		if err := buy(dir, sync, design, false); err != nil {
			if errors.Is(err, errSoldOut) {
				return nil
			}
			return err
		}
	}
}

var errSoldOut = errors.New("sold out")

// buy makes one buy under the lock: see the package doc. It opens its
// files anew each time, as a process that buys once would.
func buy(dir string, sync, design, once bool) error {
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return err
	}
	path, tmp := filepath.Join(dir, "count"), filepath.Join(dir, "count.tmp")
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return err
	}
	if n == 0 && !once {
		return errSoldOut
	}
	if design {
		return designBuy(dir, path, n, sync)
	}
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(strconv.Itoa(n - 1)); err != nil {
		return err
	}
	if sync && !design {
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if sync && !design {
		d, err := os.Open(dir)
		if err != nil {
			return err
		}
		defer d.Close()
		if err := d.Sync(); err != nil {
			return err
		}
	}
	return nil
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

// designBuy is the rest of a -design buy, the lock held and the count n
// read: the journal line written where the last one ended (the journal is
// grown 16 KiB at a time with spaces, and a line ends in a newline), then
// the count written over the spare and swapped in.
func designBuy(dir, path string, n int, sync bool) error {
	j, err := os.OpenFile(filepath.Join(dir, "journal"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer j.Close()
	info, err := j.Stat()
	if err != nil {
		return err
	}
	// Where the content ends: the tickets sold so far times the line's
	// length would do as well, but a floor should not be cleverer than
	// ticket, which finds it from the end of the file.
	tail := make([]byte, min(info.Size(), 20480))
	if _, err := j.ReadAt(tail, info.Size()-int64(len(tail))); err != nil {
		return err
	}
	end := info.Size() - int64(len(tail)) + int64(bytes.LastIndexByte(tail, '\n')+1)
	line := fmt.Sprintf(`{"seq":%d,"buyer":"floor","qty":1,"left":%d,"pid":%d,"time":"%s"}`+"\n", n, n-1, os.Getpid(), time.Now().UTC().Format(time.RFC3339Nano))
	data := []byte(line)
	if end+int64(len(data)) > info.Size() {
		data = append(data, bytes.Repeat([]byte(" "), 16384)...)
	}
	if _, err := j.WriteAt(data, end); err != nil {
		return err
	}
	if sync {
		if err := unix.Fdatasync(int(j.Fd())); err != nil {
			return err
		}
	}
	// The count written over the spare in place, as ticket does (a
	// truncation first would free its block and allocate it again).
	spare := path + ".spare"
	f, err := os.OpenFile(spare, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	count := []byte(fmt.Sprintf("%-20d", n-1)) // one length for every count
	if _, err := f.WriteAt(count, 0); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := unix.Renameat2(unix.AT_FDCWD, spare, unix.AT_FDCWD, path, unix.RENAME_EXCHANGE); err != nil {
		return os.Rename(spare, path)
	}
	return nil
}
