//go:build linux

// Command floor is the physical floor that ticket bench is measured
// against: P processes loop "flock, read the count, write count-1 to a
// temporary file, fsync, rename, fsync the directory, unlock" until the
// count is 0, and nothing else: no JSON parser, no journal, no checks.
//
//	go run ./scripts/floor -procs 4 -tickets 20000 [-no-sync] [-dir DIR]
//
// It prints "N buys/s". scripts/bench.sh runs it beside ticket bench.
package main

import (
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
	worker := flag.Bool("worker", false, "internal: be one buyer")
	flag.Parse()
	if *worker {
		if err := buyAll(*dir, !*noSync); err != nil {
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

func buyAll(dir string, sync bool) error {
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	path, tmp := filepath.Join(dir, "count"), filepath.Join(dir, "count.tmp")
	for {
		if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		n, err := strconv.Atoi(string(data))
		if err != nil {
			return err
		}
		if n == 0 {
			return unix.Flock(int(lock.Fd()), unix.LOCK_UN)
		}
		f, err := os.Create(tmp)
		if err != nil {
			return err
		}
		if _, err := f.WriteString(strconv.Itoa(n - 1)); err != nil {
			return err
		}
		if sync {
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
		if sync {
			if err := d.Sync(); err != nil {
				return err
			}
		}
		if err := unix.Flock(int(lock.Fd()), unix.LOCK_UN); err != nil {
			return err
		}
	}
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}
