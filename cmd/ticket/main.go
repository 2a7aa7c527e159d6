// Command ticket sells a fixed stock of tickets to many independent
// processes at once, safely: each buyer takes an flock(2) lock beside a
// JSON ticket file, re-reads it, takes its tickets and replaces the file
// atomically and durably. Run "ticket --help" for the subcommands, and see
// package cmd/internal/cli, the command line itself.
//
// ticket links no Redis client, so that a buyer process starts as fast as
// a small Go program: for a command line that names a Redis sale
// (--store redis://..., or $TICKET_STORE), it runs ticket-redis, the same
// command line with Redis, in its place (same process, arguments and
// environment), found beside this program or on $PATH. go install
// ./cmd/... installs both.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/ticketd/ticket/cmd/internal/cli"
)

func main() {
	args := os.Args[1:]
	if cli.NamesRedis(args, os.Getenv) {
		os.Exit(runRedis(args))
	}
	os.Exit(cli.Main(args))
}

// redisCommand is the program that serves Redis sales.
const redisCommand = "ticket-redis"

// runRedis replaces this process with ticket-redis running args; it
// returns only if it cannot, with the exit status.
func runRedis(args []string) int {
	path := ""
	if self, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(self), redisCommand); isProgram(p) {
			path = p
		}
	}
	if path == "" {
		if p, err := exec.LookPath(redisCommand); err == nil {
			path = p
		}
	}
	if path == "" {
		fmt.Fprintf(os.Stderr, "ticket: error: a Redis sale needs the %s command, found neither beside this program nor on $PATH: install both with go install ./cmd/... in ticket's source\n", redisCommand)
		return 1
	}
	err := syscall.Exec(path, append([]string{redisCommand}, args...), os.Environ())
	fmt.Fprintf(os.Stderr, "ticket: error: run %s: %v\n", path, err)
	return 1
}

// isProgram reports whether path is an executable regular file.
func isProgram(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}
