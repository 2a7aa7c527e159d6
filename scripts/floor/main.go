//go:build linux

// Command floor is the physical floor that ticket bench is measured
// against: P processes loop "flock, read the count, write count-1 to a
// temporary file, fsync, rename, fsync the directory, unlock" until the
// count is 0, and nothing else: no JSON parser, no journal, no checks.
// With -design each buy is instead what ticket's design needs and no
// more: "flock, read the count, append a line to a journal and fdatasync
// it, write count-1 to a temporary file and rename it (no fsync), unlock".
//
//	go run ./scripts/floor -procs 4 -tickets 20000 [-design] [-no-sync] [-dir DIR]
//	go run ./scripts/floor -once -dir DIR   # one naive durable replace, then exit
//
// It prints "N buys/s". scripts/bench.sh runs it beside ticket bench; with
// -once it is the trivial program that one ticket buy process is
// measured against.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
	if string(data) != "0" {
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
	n, err := strconv.Atoi(string(data))
	if err != nil {
		return err
	}
	if n == 0 && !once {
		return errSoldOut
	}
	if design {
		j, err := os.OpenFile(filepath.Join(dir, "journal"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		line := fmt.Sprintf(`{"seq":%d,"buyer":"floor","qty":1,"left":%d,"pid":%d,"time":"%s"}`+"\n", n, n-1, os.Getpid(), time.Now().UTC().Format(time.RFC3339Nano))
		if _, err := j.WriteString(line); err != nil {
			return err
		}
		if sync {
			if err := unix.Fdatasync(int(j.Fd())); err != nil {
				return err
			}
		}
		if err := j.Close(); err != nil {
			return err
		}
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
