package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"github.com/spf13/pflag"
	"github.com/ticketd/ticket/store/sem"
)

func runSem(c *cli, args []string) error {
	fs := c.plainFlagSet("--name NAME --slots N [--wait D | --nowait] [--dir DIR] -- COMMAND [ARGS...]\n       ticket sem --status --name NAME [--slots N] [--dir DIR] [--json]", `
Run COMMAND holding one of N slots of the semaphore NAME, so that at most N
commands run at once across unrelated processes (N singers, N rooms).
A slot is an flock(2) lock on DIR/NAME.K.slot: if ticket sem dies, even by
SIGKILL, the kernel frees its slot and kills COMMAND. Waiters line up on
DIR/NAME.queue; the next in line takes the first slot that frees.

COMMAND gets TICKET_SEM_SLOT=K (1..N) and TICKET_SEM_NAME=NAME in its
environment. SIGINT, SIGTERM and SIGHUP are passed on to it. Every user of
NAME must give the same --slots. DIR is --dir, else $XDG_RUNTIME_DIR/ticket-sem,
else ticket-sem-UID in the temporary directory; it is created 0700 and
refused if it is a symlink, not yours, or writable by others.

With --status, print each slot: free, or held by a pid.

Once COMMAND runs, ticket sem exits with COMMAND's status (128+N if signal N
killed it); the statuses below are its own.`,
		exitNote{exitError, ""},
		exitNote{exitUsage, ""},
		exitNote{exitLocked, "no slot was free within --wait (or at once, with --nowait); COMMAND was not run"},
		exitNote{exitCannotRun, ""},
		exitNote{exitNotFound, ""},
		exitNote{exitSIGHUP, "interrupted while waiting for a slot; COMMAND was not run"},
		exitNote{exitSIGINT, "interrupted while waiting for a slot; COMMAND was not run"},
		exitNote{exitSIGTERM, "interrupted while waiting for a slot; COMMAND was not run"})
	name := fs.String("name", "", "the semaphore's `NAME` (required): letters, digits, . _ - + @")
	slots := wholeFlag(fs, "slots", 0, 0, math.MaxInt64, "the number of slots (required, except with --status)")
	dir := fs.String("dir", "", "the slot files go in `DIR` (default $XDG_RUNTIME_DIR/ticket-sem)")
	var wait waitFlags
	wait.add(fs, "slot")
	status := fs.Bool("status", false, "show which slots are held, and by which pid")
	fs.BoolVar(&c.json, "json", false, "with --status, print one JSON object")
	fs.SetInterspersed(false) // COMMAND's own flags are not ours
	command, err := c.parse(fs, args, restArgs)
	if err != nil {
		return err
	}
	if !fs.Changed("name") {
		return &usageError{"--name NAME is required (see ticket sem -h)"}
	}
	if err := sem.CheckName(*name); err != nil {
		return &usageError{"--name: " + err.Error()}
	}
	n := 1
	switch {
	case fs.Changed("slots"):
		if *slots < 1 || *slots > sem.MaxSlots {
			return &usageError{fmt.Sprintf("--slots %d: want 1 to %d", *slots, sem.MaxSlots)}
		}
		n = int(*slots)
	case !*status:
		return &usageError{"--slots N is required (see ticket sem -h)"}
	}
	if *status {
		if len(command) > 0 {
			return &usageError{"--status takes no COMMAND"}
		}
		s, err := sem.Open(*dir, *name, n)
		if err != nil {
			return err
		}
		return c.semStatus(s)
	}
	if len(command) == 0 {
		return &usageError{"COMMAND is missing: ticket sem --name NAME --slots N -- COMMAND [ARGS...]"}
	}
	if c.json {
		return &usageError{"--json goes with --status"}
	}
	cmd := exec.Command(command[0], command[1:]...)
	if cmd.Err != nil { // found out before waiting for a slot
		return startFailed(command[0], cmd.Err)
	}
	s, err := sem.Open(*dir, *name, n)
	if err != nil {
		return err
	}
	return c.semRun(s, cmd, &wait, fs)
}

// semRun waits for a slot, runs cmd holding it and returns cmd's exit
// status as an error (nil for 0). While it waits, a signal cancels the
// wait; once COMMAND runs, signals are passed on to it.
func (c *cli) semRun(s *sem.Semaphore, cmd *exec.Cmd, wait *waitFlags, fs *pflag.FlagSet) error {
	c.interrupted = "interrupted while waiting for a slot; nothing was run"
	ctx, done, err := c.waitContext(fs, wait)
	if err != nil {
		return err
	}
	defer done()
	var slot *sem.Slot
	if wait.nowait {
		slot, err = s.TryAcquire()
	} else {
		slot, err = s.Acquire(ctx)
	}
	if errors.Is(err, context.Canceled) && c.signal.Load() != 0 {
		return fmt.Errorf("%s: %w", c.interrupted, err)
	}
	if err != nil {
		return err
	}
	defer slot.Release()

	cmd.Env = append(os.Environ(),
		"TICKET_SEM_SLOT="+strconv.Itoa(slot.Number()),
		"TICKET_SEM_NAME="+s.Name())
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, c.stdout, c.stderr
	// If ticket sem dies, even by SIGKILL, the kernel frees the slot and
	// kills COMMAND, so that it does not run on outside the semaphore.
	started, err := c.forward(func() (*os.Process, error) {
		_, err := startTied(cmd)
		return cmd.Process, err
	})
	if !started { // a signal came as the slot was taken
		return fmt.Errorf("%s: %w", c.interrupted, context.Canceled)
	}
	if err != nil {
		return startFailed(cmd.Args[0], err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee):
		ws, ok := ee.Sys().(syscall.WaitStatus)
		if ok && ws.Signaled() {
			return shown{childExit(128 + int(ws.Signal()))}
		}
		return shown{childExit(ee.ExitCode())}
	}
	return fmt.Errorf("%s: %w", cmd.Args[0], err)
}

// startFailed is the error for a COMMAND that could not be started: 127
// if it does not exist, 126 otherwise, as in the shell.
func startFailed(name string, err error) error {
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		return &startError{exitNotFound, fmt.Errorf("%s: command not found", name)}
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return &startError{exitCannotRun, fmt.Errorf("%s: cannot run: %w", name, err)}
}

// semStatus prints the state of every slot.
func (c *cli) semStatus(s *sem.Semaphore) error {
	states, err := s.Status()
	if err != nil {
		return err
	}
	if c.json {
		type slotJSON struct {
			Slot    int  `json:"slot"`
			Held    bool `json:"held"`
			PID     int  `json:"pid,omitempty"`
			Running bool `json:"running,omitempty"`
		}
		out := struct {
			Name  string     `json:"name"`
			Dir   string     `json:"dir"`
			Held  int        `json:"held"`
			Slots []slotJSON `json:"slots"`
		}{Name: s.Name(), Dir: s.Dir(), Slots: []slotJSON{}}
		for _, st := range states {
			if st.Held {
				out.Held++
			}
			out.Slots = append(out.Slots, slotJSON{st.Number, st.Held, st.PID, st.Running})
		}
		return c.result(out)
	}
	for _, st := range states {
		var err error
		switch {
		case !st.Held:
			err = c.line("%s slot %d: free", s.Name(), st.Number)
		case st.PID == 0:
			err = c.line("%s slot %d: held, pid unknown", s.Name(), st.Number)
		case !st.Running:
			err = c.line("%s slot %d: held, pid %d (not running)", s.Name(), st.Number, st.PID)
		default:
			err = c.line("%s slot %d: held by pid %d", s.Name(), st.Number, st.PID)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
