package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/store/redis/redisspec"
	"github.com/ticketd/ticket/ticket"
)

// The exit statuses, the same for every subcommand. exitStatuses below is
// their one table: the main help, each command's help and README.md show
// it (TestReadmeExitTable keeps README.md's copy in step).
const (
	exitOK          = 0   // done
	exitError       = 1   // any other error: I/O, permissions, a missing file
	exitUsage       = 2   // bad flags or arguments
	exitSoldOut     = 3   // fewer tickets left than asked for
	exitLocked      = 4   // the lock (or a slot) was not acquired in time
	exitInvalid     = 5   // the ticket file or journal is invalid; left untouched
	exitUnconfirmed = 6   // the sale is recorded but was not confirmed or reported
	exitUnreachable = 7   // the backend (Redis) could not be reached, timed out or refused the credentials
	exitLimit       = 8   // the buyer's per-buyer limit would be passed
	exitLapsed      = 9   // the hold lapsed or was released
	exitCannotRun   = 126 // ticket sem: COMMAND was found but could not be run
	exitNotFound    = 127 // ticket sem: COMMAND was not found
	exitSIGHUP      = 129 // hung up (SIGHUP: the terminal closed) before anything changed
	exitSIGINT      = 130 // interrupted by SIGINT before anything changed
	exitSIGTERM     = 143 // terminated by SIGTERM before anything changed
)

// exitStatuses is the table of exit statuses, in order: each one's
// short name, and what it means for every command.
var exitStatuses = []struct {
	code       int
	name, text string
}{
	{exitOK, "done", "the command did what it was asked"},
	{exitError, "error", "any other error: I/O, permissions, a missing file"},
	{exitUsage, "usage", "bad flags or arguments"},
	{exitSoldOut, "sold out", "fewer tickets left than asked for; nothing bought"},
	{exitLocked, "not acquired", "the lock (or a slot) was not acquired in time"},
	{exitInvalid, "invalid", "the ticket file or journal is invalid, and was left untouched"},
	{exitUnconfirmed, "unconfirmed", "the sale is recorded, but was not confirmed durable or not reported"},
	{exitUnreachable, "unreachable", "the backend (Redis) could not be reached, timed out or refused the credentials"},
	{exitLimit, "limit", "the buyer's per-buyer limit would be passed; nothing bought or held"},
	{exitLapsed, "lapsed", "the hold lapsed or was released; its tickets are back in stock"},
	{exitCannotRun, "cannot run", "sem: COMMAND was found but could not be run"},
	{exitNotFound, "not found", "sem: COMMAND was not found"},
	{exitSIGHUP, "hung up", "SIGHUP (the terminal closed) while waiting; nothing was changed"},
	{exitSIGINT, "interrupted", "SIGINT (Ctrl-C) while waiting; nothing was changed"},
	{exitSIGTERM, "terminated", "SIGTERM while waiting; nothing was changed"},
}

// exitEntry is code's row of exitStatuses; it panics on a code the table
// lacks, which TestEveryHelp would catch.
func exitEntry(code int) (name, text string) {
	for _, e := range exitStatuses {
		if e.code == code {
			return e.name, e.text
		}
	}
	panic(fmt.Sprintf("exit status %d is not in exitStatuses", code))
}

// exitNote is one exit status in a command's help: the code, whose meaning
// comes from exitStatuses, and what it means for that command, if more.
type exitNote struct {
	code   int
	detail string
}

// exitLines renders exits as a command's help shows them.
func exitLines(exits []exitNote) string {
	var b strings.Builder
	for _, e := range exits {
		name, text := exitEntry(e.code)
		if e.detail != "" {
			text = e.detail
		}
		fmt.Fprintf(&b, "  %-3d  %s: %s\n", e.code, name, text)
	}
	return b.String()
}

// exitTable renders the whole table of exit statuses as the main help
// shows it.
func exitTable() string {
	notes := make([]exitNote, len(exitStatuses))
	for i, e := range exitStatuses {
		notes[i] = exitNote{code: e.code}
	}
	return exitLines(notes)
}

// exitTableMarkdown renders the table of exit statuses as README.md shows it.
func exitTableMarkdown() string {
	var b strings.Builder
	b.WriteString("| Status | Name | Meaning |\n|---|---|---|\n")
	for _, e := range exitStatuses {
		fmt.Fprintf(&b, "| %d | %s | %s |\n", e.code, e.name, e.text)
	}
	return b.String()
}

// signalExits are the statuses of a command interrupted by a signal.
var signalExits = []exitNote{{exitSIGHUP, ""}, {exitSIGINT, ""}, {exitSIGTERM, ""}}

// errHelp is returned after -h printed the help: exit 0.
var errHelp = errors.New("help shown")

// errRushFailed is a rush whose books balance but where some buyer failed
// for another reason than a sold-out stock (exit 1).
var errRushFailed = errors.New("some buyers failed")

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// reportError is a sale that was committed but could not be reported.
type reportError struct{ err error }

func (e *reportError) Error() string {
	return "sale recorded, report failed (check ticket show --sales): " + e.err.Error()
}

func (e *reportError) Unwrap() error { return e.err }

// childExit is the exit status of the COMMAND that ticket sem ran (128+N
// if a signal N killed it): ticket sem exits with it.
type childExit int

func (e childExit) Error() string { return fmt.Sprintf("command exited with status %d", int(e)) }

// startError is a COMMAND that ticket sem could not start: exit 127 if it
// was not found, 126 if it could not be run.
type startError struct {
	code int
	err  error
}

func (e *startError) Error() string { return e.err.Error() }

func (e *startError) Unwrap() error { return e.err }

// exitCode maps an error to the exit status scripts branch on. It is the
// only place that knows the mapping.
func exitCode(err error, interrupted int) int {
	var usage *usageError
	var mismatch *redisspec.RequestMismatchError
	var report *reportError
	var child childExit
	var start *startError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &child):
		return int(child)
	case errors.As(err, &start):
		return start.code
	case errors.As(err, &usage), errors.As(err, &mismatch),
		errors.Is(err, ticket.ErrQuantity), errors.Is(err, ticket.ErrBuyer), errors.Is(err, redisspec.ErrRequestID),
		errors.Is(err, store.ErrDuration):
		return exitUsage
	case errors.As(err, &report), errors.Is(err, store.ErrUnconfirmed):
		return exitUnconfirmed
	case errors.Is(err, store.ErrUnreachable):
		return exitUnreachable
	case errors.Is(err, context.Canceled) && interrupted != 0:
		return interrupted
	case errors.Is(err, ticket.ErrSoldOut):
		return exitSoldOut
	case errors.Is(err, ticket.ErrLimit):
		return exitLimit
	case errors.Is(err, ticket.ErrHoldLapsed):
		return exitLapsed
	case errors.Is(err, store.ErrLocked):
		return exitLocked
	case errors.Is(err, ticket.ErrInvalid):
		return exitInvalid
	}
	return exitError
}
