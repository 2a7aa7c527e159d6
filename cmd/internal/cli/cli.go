package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"
	"github.com/ticketd/ticket/store/redis/redisspec"
)

// cli is what every subcommand shares: where output goes, the --json
// switch, and the signal that interrupted it.
type cli struct {
	stdout, stderr io.Writer
	name           string        // the subcommand
	json           bool          // --json: results as JSON objects on stdout
	wrote          bool          // a result is already on stdout
	signal         atomic.Int32  // exit status for the signal received, 0 if none
	interrupted    string        // what a signal interrupted, if not a wait for the lock
	extra          buyExtra      // buy --peek, and the gate of a rush's buyer: added to buy's JSON result
	sig            *signals      // the signal handler, once installed (see interruptible)
	parentGone     chan struct{} // a heartbeat child's parent is gone (see child.go); nil otherwise
}

func newCLI(stdout, stderr io.Writer) *cli {
	return &cli{stdout: stdout, stderr: stderr}
}

// shown wraps an error whose outcome is already on stdout (a sold-out
// buy, a failed verify): exit() gives its status without printing it again.
type shown struct{ error }

func (s shown) Unwrap() error { return s.error }

// exit prints err, if any, as one line on stderr (and, with --json, as a
// JSON object on stdout if no result was printed) and returns the exit status.
func (c *cli) exit(err error) int {
	if err == nil || errors.Is(err, errHelp) {
		return exitOK
	}
	code := exitCode(err, int(c.signal.Load()))
	var s shown
	if errors.As(err, &s) {
		return code
	}
	msg := err.Error()
	if code == exitSIGINT || code == exitSIGTERM || code == exitSIGHUP {
		msg = "interrupted while waiting for the lock; nothing was changed"
		if c.interrupted != "" {
			msg = c.interrupted
		}
	}
	fmt.Fprintf(c.stderr, "ticket %s: error: %s\n", c.name, msg)
	if c.json && !c.wrote {
		c.result(struct {
			Error    string `json:"error"`
			ExitCode int    `json:"exit_code"`
		}{msg, code})
	}
	return code
}

// result writes v to stdout as one JSON object on one line.
func (c *cli) result(v any) error {
	c.wrote = true
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = c.stdout.Write(append(b, '\n'))
	return err
}

// line writes one line of text to stdout.
func (c *cli) line(format string, args ...any) error {
	c.wrote = true
	_, err := fmt.Fprintf(c.stdout, format+"\n", args...)
	return err
}

// flagSet returns the flags of the subcommand, with -h, -f/--file and
// --store. The two name the same thing, the sale: --store takes any
// backend (a path, file:PATH, redis://...), -f is its older name for files.
// The default is $TICKET_STORE, else $TICKET_FILE, else ticket.json.
//
// synopsis (the usage line after "ticket NAME"), about and exits are the
// command's help, the one source of "ticket help NAME", "ticket NAME -h"
// and cmd/ticket/COMMANDS.md (see help).
func (c *cli) flagSet(synopsis, about string, exits ...exitNote) (*pflag.FlagSet, *string) {
	fs := c.plainFlagSet(synopsis, about, exits...)
	def := os.Getenv("TICKET_STORE")
	if def == "" {
		def = os.Getenv("TICKET_FILE")
	}
	if def == "" {
		def = "ticket.json"
	}
	file := fs.StringP("file", "f", def, "the ticket file `PATH` (the same as --store PATH)")
	fs.StringVar(file, "store", def, "the sale: `SPEC` is PATH, file:PATH or redis://HOST:PORT/DB?name=SALE (default $TICKET_STORE, else $TICKET_FILE, else ticket.json; a Redis password goes in $TICKET_REDIS_PASSWORD)")
	return fs, file
}

// plainFlagSet is flagSet without -f and --store, for a command that
// works on no sale (sem).
func (c *cli) plainFlagSet(synopsis, about string, exits ...exitNote) *pflag.FlagSet {
	fs := pflag.NewFlagSet(c.name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	fs.BoolP("help", "h", false, "show this help")
	fs.Usage = func() {
		io.WriteString(c.stdout, help(c.name, synopsis, about, fs, exits))
	}
	return fs
}

// restArgs is what parse takes for a subcommand that runs a command of
// its own: every argument after its flags.
const restArgs = -1

// parse is the one flag parser of every subcommand: it parses args,
// turning -h into errHelp and mistakes into usage errors, and returns the
// arguments after the flags, of which the subcommand takes nargs: none,
// exactly that many, or restArgs. A subcommand on a sale (nargs 0) names
// it once, with -f or --store.
func (c *cli) parse(fs *pflag.FlagSet, args []string, nargs int) ([]string, error) {
	if err := fs.Parse(args); err != nil {
		// A mistake before --json on the line still gets a JSON answer.
		if j := fs.Lookup("json"); j != nil && slices.Contains(args, "--json") {
			c.json = true
		}
		if errors.Is(err, pflag.ErrHelp) {
			fs.Usage()
			return nil, errHelp
		}
		var bad *pflag.InvalidValueError
		if errors.As(err, &bad) && bad.GetFlag() != nil {
			// pflag's "invalid argument "x" for "--qty" flag: "x": ...".
			return nil, &usageError{fmt.Sprintf("--%s %v (see ticket %s -h)", bad.GetFlag().Name, errors.Unwrap(err), c.name)}
		}
		return nil, &usageError{fmt.Sprintf("%v (see ticket %s -h)", err, c.name)}
	}
	if f := fs.Lookup("file"); nargs == 0 && f != nil && f.Value.String() == "" {
		return nil, &usageError{"-f, --file: the path is empty"}
	}
	// -h is a flag of ours, so pflag does not answer it with ErrHelp.
	if help, _ := fs.GetBool("help"); help {
		fs.Usage()
		return nil, errHelp
	}
	switch {
	case nargs == 0 && fs.Changed("file") && fs.Changed("store"):
		return nil, &usageError{fmt.Sprintf("-f/--file and --store name the same sale: give one (see ticket %s -h)", c.name)}
	case nargs == 0 && fs.NArg() > 0:
		return nil, &usageError{fmt.Sprintf("unexpected argument %q (see ticket %s -h)", fs.Arg(0), c.name)}
	case nargs > 0 && fs.NArg() != nargs:
		return nil, &usageError{fmt.Sprintf("want %d arguments, got %d (see ticket %s -h)", nargs, fs.NArg(), c.name)}
	}
	return fs.Args(), nil
}

// waitFlags adds --wait and --nowait.
type waitFlags struct {
	wait   seconds
	nowait bool
}

func (w *waitFlags) add(fs *pflag.FlagSet, what string) {
	fs.Var(&w.wait, "wait", "give up after waiting this long for the "+what+" (250ms, 2s, 1.5); default: wait as long as it takes")
	fs.BoolVar(&w.nowait, "nowait", false, "give up at once if the "+what+" is held")
}

// waitContext returns the context of a command that waits for the lock
// (or a slot): cancelled by SIGINT, SIGTERM or SIGHUP (see interruptible)
// and bounded by --wait. --nowait is not a context: the command asks for
// one try (store.Options.NoWait). done releases it.
func (c *cli) waitContext(fs *pflag.FlagSet, w *waitFlags) (ctx context.Context, done func(), err error) {
	if w.nowait && fs.Changed("wait") {
		return nil, nil, &usageError{"--wait and --nowait exclude each other"}
	}
	ctx, stop := c.interruptible()
	if !fs.Changed("wait") {
		return ctx, stop, nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(w.wait))
	return ctx, func() { cancel(); stop() }, nil
}

// saleContext is waitContext for a command on the sale at spec, for
// which a Redis sale has no lock to wait for: there only a signal
// interrupts it, and interrupted then says what it interrupted.
func (c *cli) saleContext(fs *pflag.FlagSet, w *waitFlags, spec, interrupted string) (ctx context.Context, done func(), err error) {
	if !redisspec.IsURL(spec) {
		return c.waitContext(fs, w)
	}
	if w.nowait && fs.Changed("wait") {
		return nil, nil, &usageError{"--wait and --nowait exclude each other"}
	}
	c.interrupted = interrupted
	ctx, done = c.interruptible()
	return ctx, done, nil
}

// seconds is a duration flag that also takes a plain number of seconds,
// as flock(1) -w does. It takes exactly two forms, so that a value never
// means something else than what a person reads in it: decimal seconds
// ("2", "1.5") and Go durations ("250ms", "2s", "1h0m0s"). Anything else
// (1_0, 0x1p-2, 1e3, +2, .5, inf) is refused.
type seconds time.Duration

// The two forms seconds takes, either one possibly negative, which Set
// then refuses as negative: plain decimal seconds (-?[0-9]+(\.[0-9]+)?),
// and a Go duration, time.ParseDuration's units each after such a number
// (-?([0-9]+(\.[0-9]+)?(ns|us|µs|μs|ms|s|m|h))+). Matched by hand: a
// regular expression package costs every ticket process its start-up.
func plainSeconds(v string) bool {
	rest, ok := decimal(strings.TrimPrefix(v, "-"))
	return ok && rest == ""
}

func goDuration(v string) bool {
	rest := strings.TrimPrefix(v, "-")
	if rest == "" {
		return false
	}
	for rest != "" {
		var ok bool
		if rest, ok = decimal(rest); !ok {
			return false
		}
		unit := ""
		for _, u := range durationUnits {
			if strings.HasPrefix(rest, u) {
				unit = u
				break
			}
		}
		if unit == "" {
			return false
		}
		rest = rest[len(unit):]
	}
	return true
}

// durationUnits are time.ParseDuration's units, each before any unit it
// begins (ms before m).
var durationUnits = [...]string{"ns", "us", "µs", "μs", "ms", "s", "m", "h"}

// decimal takes a decimal number, digits with a fraction of digits or
// none, off the start of v, and reports whether there was one.
func decimal(v string) (rest string, ok bool) {
	digits := func(v string) int {
		i := 0
		for i < len(v) && v[i] >= '0' && v[i] <= '9' {
			i++
		}
		return i
	}
	n := digits(v)
	if n == 0 {
		return v, false
	}
	v = v[n:]
	if strings.HasPrefix(v, ".") {
		f := digits(v[1:])
		if f == 0 {
			return v, false
		}
		v = v[1+f:]
	}
	return v, true
}

func (s *seconds) String() string {
	if *s == 0 {
		return ""
	}
	return time.Duration(*s).String()
}

func (s *seconds) Set(v string) error {
	var d time.Duration
	switch {
	case plainSeconds(v):
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.Abs(f) > float64(math.MaxInt64)/float64(time.Second) {
			return fmt.Errorf("%q is too long (at most %v)", v, time.Duration(math.MaxInt64))
		}
		d = time.Duration(f * float64(time.Second))
	case goDuration(v):
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			return fmt.Errorf("%q is too long (at most %v)", v, time.Duration(math.MaxInt64))
		}
	default:
		return fmt.Errorf("%q is not a duration: want seconds (2, 1.5) or a Go duration (250ms, 2s, 1h0m0s)", v)
	}
	if d < 0 || strings.HasPrefix(v, "-") {
		return fmt.Errorf("%q is negative", v)
	}
	*s = seconds(d)
	return nil
}

func (s *seconds) Type() string { return "duration" }

// whole is a flag holding a whole number written in decimal digits only,
// from min to max: 010 is ten, and 0x10, 1_0, +5, 1e3 and 5.0 are refused,
// never read as another number than the one a person sees.
type whole struct {
	v        *int64
	min, max int64
}

// wholeFlag adds a whole-number flag to fs.
func wholeFlag(fs *pflag.FlagSet, name string, value, min, max int64, usage string) *int64 {
	v := new(int64)
	*v = value
	fs.Var(&whole{v, min, max}, name, usage)
	return v
}

func (w *whole) String() string {
	if w.v == nil {
		return "0"
	}
	return strconv.FormatInt(*w.v, 10)
}

func (w *whole) Set(s string) error {
	n, err := parseWhole(s, w.min, w.max)
	if err != nil {
		return err
	}
	*w.v = n
	return nil
}

func (w *whole) Type() string { return "N" }

// parseWhole reads a whole number from min to max written in decimal
// digits only (see whole).
func parseWhole(s string, min, max int64) (int64, error) {
	bad := s == ""
	for _, c := range s {
		bad = bad || c < '0' || c > '9'
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if bad || err != nil || n < min || n > max {
		return 0, fmt.Errorf("%q: want a whole number from %d to %d, in decimal digits", s, min, max)
	}
	return n, nil
}
