package cli

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// signals is the one handler of SIGINT, SIGTERM and SIGHUP (a closed
// terminal, a dropped ssh session) of a command: see interruptible and
// forward. Once installed it stays: the command is about to exit, and
// restoring the default action would let a late signal kill a process
// whose sale is already made and reported, turning its exit 0 into a
// death by signal.
type signals struct {
	mu      sync.Mutex
	cancels []context.CancelFunc // the contexts the first signal cancels
	child   *os.Process          // once handed over, every signal goes to it
}

// interruptible returns a context that the first SIGINT, SIGTERM or SIGHUP
// cancels, noting the exit status the signal asks for (130, 143, 129).
// Only what waits on ctx (the lock, a slot, a Redis call) is interrupted:
// work done under the lock completes. stop releases the context.
func (c *cli) interruptible() (ctx context.Context, stop func()) {
	s := c.signals()
	ctx, cancel := context.WithCancel(context.Background())
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.signal.Load() != 0 {
		cancel()
	}
	s.cancels = append(s.cancels, cancel)
	return ctx, cancel
}

// forward hands the signals over to the process start starts: from then
// on each one is passed on to it. It starts nothing, and reports false,
// if a signal came first.
func (c *cli) forward(start func() (*os.Process, error)) (bool, error) {
	s := c.signals()
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.signal.Load() != 0 {
		return false, nil
	}
	p, err := start()
	s.child = p
	return true, err
}

// signals installs the handler, once.
func (c *cli) signals() *signals {
	if c.sig != nil {
		return c.sig
	}
	s := &signals{}
	c.sig = s
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		for sig := range ch {
			s.mu.Lock()
			switch {
			case s.child != nil:
				_ = s.child.Signal(sig)
			case c.signal.Load() == 0:
				c.signal.Store(int32(128 + sig.(syscall.Signal)))
				for _, cancel := range s.cancels {
					cancel()
				}
			}
			s.mu.Unlock()
		}
	}()
	return s
}
