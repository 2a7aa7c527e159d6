// Package cli is the ticket command line, which sells a fixed stock of
// tickets to many independent processes at once, safely: each buyer takes
// an flock(2) lock beside a JSON ticket file, re-reads it, takes its
// tickets and replaces the file atomically and durably. Run "ticket
// --help" for the subcommands. Two commands run it: ticket, which buys
// from files and links no Redis client, and ticket-redis, the same with
// Redis sales (see OpenRedis); ticket runs ticket-redis for a command
// line that names a Redis sale.
//
// The command line is thin: the sale is package store's (or store/redis's), the
// buy rule package ticket's. Here are the flags (one parser, parse), the
// help (help.go: each command gives its usage line, description and exit
// statuses once, to flagSet; "ticket help NAME", "ticket NAME -h" and
// cmd/ticket/COMMANDS.md print that text), the output, the exit statuses
// (exit.go: the one table, exitStatuses, and exitCode, the one place that
// maps errors to them), the hints that complete the library's errors with
// what to type next (hint.go), and the demonstrations that start processes.
//
// # Children of this program
//
// ticket rush and ticket bench start this program again as their buyers,
// and rush starts ticket watch as its heartbeat: its children. What makes
// a process a child is internal, never a flag or a command a user sees:
// the environment variable TICKET_CHILD, whose value is the part it plays
// (see runChild):
//
//	gated               wait at the gate, then run the command line: rush's
//	                    buyers are "ticket buy ..." commands
//	booker              wait at the gate, then be a booking rush's buyer:
//	                    "ticket hold", and "ticket confirm" of that hold
//	                    when the first argument is "confirm" (see
//	                    bookerChild)
//	bench               wait at the gate, then be a bench worker: the
//	                    arguments are the ticket file, the buyer's name,
//	                    "sync" or "nosync", and "buy" or "hold=D"
//	heartbeat:PID       run the command line (ticket watch) for the rush
//	                    PID, and stop at once if it is not the parent
//	heartbeat:PID:pipe  also stop when stdin, a pipe from the rush, reaches
//	                    end of file (the rush closed it or died)
//
// The gate (see gate) is a pipe on every gated child's stdin, and a second
// pipe on its descriptor 3: a child writes one byte to fd 3 and closes it
// to say it is at the gate, then reads stdin until end of file, which comes
// to all of them at once when the launcher closes its end. A heartbeat
// child, and the COMMAND of ticket sem, are also killed by the kernel if
// their parent dies, even by SIGKILL (startTied).
package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// Main runs the command line args (without the program's name) and
// returns the exit status. A child of this program (see child.go) plays
// its part instead.
func Main(args []string) int { return mainCode(args) }

// mainCode is Main: a child of this program (see
// child.go) plays its part; anything else runs the command line.
func mainCode(args []string) int {
	if role := os.Getenv(childEnv); role != "" {
		return runChild(role, args)
	}
	return run(args, os.Stdout, os.Stderr)
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(c *cli, args []string) error
}

// commands lists the subcommands in the order --help shows them.
var commands []command

func init() {
	commands = []command{
		{"init", "create a ticket file with N tickets", runInit},
		{"show", "print the tickets left, total and sold (and, with --sales, every sale)", runShow},
		{"buy", "buy tickets under the lock: exactly as many succeed as there are tickets", runBuy},
		{"hold", "hold tickets for a while and print the hold's id", runHold},
		{"confirm", "turn a hold into a sale", runConfirm},
		{"release", "give a hold's tickets back at once", runRelease},
		{"return", "give back tickets of a committed sale", runReturn},
		{"restock", "add tickets to the sale, take some out, or change its limit", runRestock},
		{"verify", "check that the ticket file and the sales journal balance", runVerify},
		{"repair", "rebuild a ticket file damaged by a power cut from the sales journal", runRepair},
		{"rush", "start N buyer processes at once and check that none oversold", runRush},
		{"watch", "print a heartbeat with the tickets left until they are sold out", runWatch},
		{"sem", "run a command holding one of N slots: at most N run at once", runSem},
		{"bench", "measure buys per second with P buyer processes on this disk", runBench},
		{"copy", "copy a sale between backends: a file into Redis, Redis into a file", runCopy},
	}
}

// run is the whole program: it returns the exit status instead of exiting,
// so that tests can call it in-process.
func run(args []string, stdout, stderr io.Writer) int {
	return newCLI(stdout, stderr).run(args)
}

// run runs the command line args.
func (c *cli) run(args []string) int {
	stderr, stdout := c.stderr, c.stdout
	if len(args) == 0 {
		c.usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "--help":
		c.usage(stdout)
		return exitOK
	case "help":
		switch {
		case len(args) == 1:
			c.usage(stdout)
			return exitOK
		case len(args) > 2:
			fmt.Fprintln(stderr, "ticket help: error: want one command: ticket help COMMAND")
			return exitUsage
		}
		if cmd := lookup(args[1]); cmd != nil {
			c.name = cmd.name
			return c.exit(cmd.run(c, []string{"-h"}))
		}
		fmt.Fprintf(stderr, "ticket help: error: unknown command %q (run ticket --help for the list)\n", args[1])
		return exitUsage
	case "--version", "version":
		fmt.Fprintln(stdout, "ticket", version())
		return exitOK
	}
	if cmd := lookup(args[0]); cmd != nil {
		c.name = cmd.name
		return c.exit(cmd.run(c, args[1:]))
	}
	if strings.HasPrefix(args[0], "-") {
		fmt.Fprintf(stderr, "ticket: error: %s: flags go after the command%s\n", args[0], reordered(args))
		return exitUsage
	}
	fmt.Fprintf(stderr, "ticket: error: unknown command %q (run ticket --help for the list)\n", args[0])
	return exitUsage
}

// lookup returns the command called name, or nil.
func lookup(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

// reordered is, for a command line with flags before the command, the
// same line with the command first, as a hint: ", as in: ticket buy -f x";
// "" if no command is on the line.
func reordered(args []string) string {
	for i, a := range args {
		if lookup(a) == nil {
			continue
		}
		words := append(append([]string{"ticket", a}, args[:i]...), args[i+1:]...)
		for j := 2; j < len(words); j++ {
			words[j] = shellQuote(words[j])
		}
		return ", as in: " + strings.Join(words, " ")
	}
	return ": ticket COMMAND [flags] (run ticket --help for the commands)"
}

func (c *cli) usage(w io.Writer) {
	var b strings.Builder
	b.WriteString(`ticket sells a fixed stock of tickets to many processes at once, safely.

Usage:
  ticket COMMAND [flags]
  ticket help COMMAND     the command's help (the same as ticket COMMAND -h)
  ticket --version        print the version

Commands:
`)
	for _, cmd := range commands {
		fmt.Fprintf(&b, "  %-8s %s\n", cmd.name, cmd.summary)
	}
	b.WriteString(`
Flags go after the command. Commands on a sale take -f, --file PATH or
--store SPEC (PATH, file:PATH or redis://HOST:PORT/DB?name=SALE; default
$TICKET_STORE, else $TICKET_FILE, else ticket.json). A Redis password goes
in $TICKET_REDIS_PASSWORD (or the URL: redis://:PASSWORD@...); ticket never
prints it, and the commands it prints to run next need it there. The lock
is PATH.lock: hold it from a shell with flock PATH.lock COMMAND and buyers
wait (COMMAND itself must not be a ticket command that takes the lock).

Exit status, for every command (each command's help says which it uses;
sem exits with COMMAND's status):
`)
	b.WriteString(exitTable())
	io.WriteString(w, b.String())
}
