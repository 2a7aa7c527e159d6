package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ticketd/ticket/store/redis/redistest"
)

// build builds the commands named (cmd/NAME) into dir.
func build(t *testing.T, dir string, names ...string) {
	t.Helper()
	for _, name := range names {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), "../"+name)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build ../%s: %v\n%s", name, err, out)
		}
	}
}

// run runs the program at path with args in dir and returns its combined
// output and exit status.
func run(t *testing.T, dir, path string, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), append([]string{"TICKET_STORE=", "TICKET_FILE="}, env...)...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// TestTicketLinksNoRedisClient: the ticket command, as built, initialises
// no package of the Redis client, and buys from a file; ticket-redis, as
// built, does link it.
func TestTicketLinksNoRedisClient(t *testing.T) {
	bin := t.TempDir()
	build(t, bin, "ticket", "ticket-redis")
	dir := t.TempDir()
	for _, args := range [][]string{{"init", "--count", "2"}, {"buy", "--buyer", "a"}} {
		out, code := run(t, dir, filepath.Join(bin, "ticket"), []string{"GODEBUG=inittrace=1"}, args...)
		if code != 0 {
			t.Fatalf("ticket %v: exit %d: %s", args, code, out)
		}
		inits := 0
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "init ") {
				inits++
			}
		}
		if strings.Contains(out, "go-redis") || inits == 0 {
			t.Fatalf("ticket %v initialised %d packages, some of the Redis client's:\n%s", args, inits, out)
		}
		t.Logf("ticket %v: %d package inits, none of the Redis client", args, inits)
	}
	out, _ := run(t, dir, filepath.Join(bin, "ticket-redis"), []string{"GODEBUG=inittrace=1"}, "--version")
	if !strings.Contains(out, "go-redis") {
		t.Fatalf("ticket-redis does not initialise the Redis client (the control):\n%s", out)
	}
}

// TestTicketRunsTicketRedis: ticket, given a Redis sale on its command
// line or in $TICKET_STORE, runs ticket-redis in its place, found beside
// it or on $PATH; without it, it says what to install (exit 1).
func TestTicketRunsTicketRedis(t *testing.T) {
	srv := redistest.Start(t)
	bin := t.TempDir()
	build(t, bin, "ticket", "ticket-redis")
	dir := t.TempDir()
	ticket := filepath.Join(bin, "ticket")
	spec := srv.URL("exec")
	if out, code := run(t, dir, ticket, nil, "init", "--count", "3", "--store", spec); code != 0 || !strings.Contains(out, "3 tickets") {
		t.Fatalf("ticket init --store %s: exit %d: %s", spec, code, out)
	}
	if out, code := run(t, dir, ticket, nil, "buy", "--buyer", "a", "--store="+spec); code != 0 || !strings.Contains(out, "a got 1 ticket (2 left)") {
		t.Fatalf("ticket buy --store=%s: exit %d: %s", spec, code, out)
	}
	if out, code := run(t, dir, ticket, []string{"TICKET_STORE=" + spec}, "show"); code != 0 || !strings.Contains(out, "2 left of 3") {
		t.Fatalf("TICKET_STORE=%s ticket show: exit %d: %s", spec, code, out)
	}
	// ticket alone, and ticket-redis only on $PATH.
	alone, onPath := t.TempDir(), t.TempDir()
	if err := os.Link(ticket, filepath.Join(alone, "ticket")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(bin, "ticket-redis"), filepath.Join(onPath, "ticket-redis")); err != nil {
		t.Fatal(err)
	}
	if out, code := run(t, dir, filepath.Join(alone, "ticket"), []string{"PATH=" + onPath}, "show", "--store", spec); code != 0 || !strings.Contains(out, "2 left of 3") {
		t.Fatalf("ticket with ticket-redis on $PATH: exit %d: %s", code, out)
	}
	out, code := run(t, dir, filepath.Join(alone, "ticket"), []string{"PATH=" + t.TempDir()}, "show", "--store", spec)
	if code != 1 || !strings.Contains(out, "needs the ticket-redis command") || !strings.Contains(out, "go install ./cmd/...") {
		t.Fatalf("ticket without ticket-redis: exit %d: %s", code, out)
	}
}
