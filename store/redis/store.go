// Package redis keeps a ticket sale in a Redis server, for buyers on many
// machines: Store implements store.Backend there. A buy takes no lock: one
// Lua script checks the request id, takes the tickets and appends the sale
// to a stream in one atomic step; see Store for its keys and Durability
// for what the server promises. Errors reaching the server wrap
// store.ErrUnreachable.
//
// A program that buys only from ticket files imports package store alone,
// and links no Redis client.
package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/store/internal/files"
	"github.com/ticketd/ticket/store/redis/redisspec"
	"github.com/ticketd/ticket/ticket"
)

// MaxCount is the most tickets a Redis sale holds: the server's Lua
// scripts count in double-precision numbers, exact up to 2^53-1.
const MaxCount = 1<<53 - 1

// RequestTTL is how long a Redis sale remembers at least a request id and
// its sale: a buy retried with the same id within this time gets the
// original outcome instead of buying again. Later buys forget the ids of
// older sales a few at a time.
const RequestTTL = 24 * time.Hour

// PasswordEnv names the environment variable that gives the Redis password
// when the URL has none, so that it need not appear in URLs that ticket
// prints.
const PasswordEnv = redisspec.PasswordEnv

// Test switches: each turns one protection off, for the negative control
// of the test that shows it. Only the package's tests set them.
var (
	testRequestTTL     time.Duration // the request TTL, when set (RequestTTL otherwise)
	testRequestsExpire bool          // give the requests hash a TTL, as request keys once had
	testSkipACLCheck   bool          // let the buy script write without checking the ACL first
	testSkipRoleCheck  bool          // let the scripts write on a replica
	testPage           int           // the journal's page size, when set
	testNoLimitCheck   bool          // let buys and holds pass the per-buyer limit
)

// pageSize is how many journal entries one command reads or writes: small
// enough that no command holds the server (and every buyer) for long.
func pageSize() int {
	if testPage > 0 {
		return testPage
	}
	return 1000
}

// Store is one ticket sale kept in a Redis server, for buyers on many
// machines. For a sale NAME its keys are (the braces keep them in one
// cluster slot):
//
//	ticket:{NAME}            hash: total, left, version, gen (held, limit once used)
//	ticket:{NAME}:journal    stream: one entry per committed record (a sale, or a booking record)
//	ticket:{NAME}:requests   hash: request id -> the request it answered (no TTL)
//	ticket:{NAME}:holds      hash: open hold id -> qty, expiry, buyer
//	ticket:{NAME}:expiry     sorted set: open hold ids by expiry (ms, the server's clock)
//	ticket:{NAME}:holdings   hash: with a limit, buyer -> tickets bought and not returned plus held
//	ticket:{NAME}:closed     hash: closed hold id -> the record that closed it
//	ticket:{NAME}:returned   hash: sale number -> tickets returned of it
//	ticket:{NAME}:journal:YYYYMMDDTHHMMSS.NNNNNNNNNZ  a journal kept by Init or Restore with store.Replace
//	ticket:{NAME}:damaged:YYYYMMDDTHHMMSS.NNNNNNNNNZ  a damaged state kept by Repair
//
// None has a TTL. A buy is one Lua script run by the server (EVALSHA, EVAL
// when the server does not have it cached): it checks the server (a
// primary, an eviction policy that cannot drop the sale's keys), the
// request id, and the stock, and appends the sale to the stream, in one
// atomic step.
type Store struct {
	spec   string
	name   string
	addr   string
	client *goredis.Client

	waitReplicas  int           // acknowledge a sale only once this many replicas have it
	waitTimeout   time.Duration // how long to wait for them
	allowEviction bool          // accept an allkeys-* maxmemory-policy

	progress func(what string, done, total int64)
}

// Redis URL parameters of ticket's own (the others are go-redis's).
const (
	// ParamWaitReplicas: acknowledge a sale only once this many replicas
	// have it (WAIT); a buy is refused, nothing bought, while fewer are
	// online.
	ParamWaitReplicas = "wait_replicas"
	// ParamWaitTimeout: how long a buy waits for the replicas (default 2s);
	// a sale they did not confirm in time is reported unconfirmed.
	ParamWaitTimeout = "wait_timeout"
	// ParamAllowEviction=yes accepts a server whose maxmemory-policy may
	// evict any key (allkeys-*), which is otherwise refused: it can drop
	// the sale's request ids (a retry then buys twice), its state or its
	// journal.
	ParamAllowEviction = "allow_eviction"
)

// Open returns the sale named by a URL of the form
//
//	redis://[[USER]:PASSWORD@]HOST:PORT/DB?name=SALE[&wait_replicas=N&wait_timeout=2s&allow_eviction=yes][&dial_timeout=5s&read_timeout=5s...]
//
// (rediss:// for TLS). name defaults to "ticket": 1 to 100 letters,
// digits, '.', '_', ':' or '-'. wait_replicas, wait_timeout and
// allow_eviction are ticket's own (see ParamWaitReplicas and the others);
// the other query parameters are go-redis's. The password may also come
// from the environment variable TICKET_REDIS_PASSWORD. It does not
// connect: the first method that needs the server does.
func Open(spec string) (*Store, error) {
	quietOnce.Do(func() { goredis.SetLogger(quiet{}) })
	u, err := url.Parse(spec)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the whole URL, password and all, is in ue.URL
		}
		return nil, fmt.Errorf("redis url: %w", err)
	}
	if u.Fragment != "" || strings.HasSuffix(spec, "#") {
		return nil, fmt.Errorf("redis url %s: '#' begins a URL fragment, which would be dropped from the sale's name: write it as %%23 (names allow letters, digits, '.', '_', ':' and '-')", redisspec.Redact(u))
	}
	q := u.Query()
	name := q.Get("name")
	switch {
	case len(q["name"]) > 1:
		return nil, fmt.Errorf("redis url %s: name is given %d times", redisspec.Redact(u), len(q["name"]))
	case q.Has("name") && name == "":
		return nil, fmt.Errorf("redis url %s: name is empty", redisspec.Redact(u))
	case name == "":
		name = "ticket"
	}
	if err := checkSaleName(name); err != nil {
		return nil, fmt.Errorf("redis url %s: %w", redisspec.Redact(u), err)
	}
	r := &Store{spec: spec, name: name, waitTimeout: 2 * time.Second}
	for _, p := range []string{ParamWaitReplicas, ParamWaitTimeout, ParamAllowEviction} {
		if len(q[p]) > 1 {
			return nil, fmt.Errorf("redis url %s: %s is given %d times", redisspec.Redact(u), p, len(q[p]))
		}
	}
	if v := q.Get(ParamWaitReplicas); q.Has(ParamWaitReplicas) {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 100 {
			return nil, fmt.Errorf("redis url %s: %s=%q: want a number of replicas from 0 to 100", redisspec.Redact(u), ParamWaitReplicas, v)
		}
		r.waitReplicas = n
	}
	if v := q.Get(ParamWaitTimeout); q.Has(ParamWaitTimeout) {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Millisecond {
			return nil, fmt.Errorf("redis url %s: %s=%q: want a duration of at least 1ms, such as 500ms or 2s", redisspec.Redact(u), ParamWaitTimeout, v)
		}
		r.waitTimeout = d
	}
	if v := q.Get(ParamAllowEviction); q.Has(ParamAllowEviction) {
		switch v {
		case "yes", "true", "1":
			r.allowEviction = true
		case "no", "false", "0":
		default:
			return nil, fmt.Errorf("redis url %s: %s=%q: want yes or no", redisspec.Redact(u), ParamAllowEviction, v)
		}
	}
	for _, p := range []string{"name", ParamWaitReplicas, ParamWaitTimeout, ParamAllowEviction} {
		q.Del(p)
	}
	u.RawQuery = q.Encode()
	o, err := goredis.ParseURL(u.String())
	if err != nil {
		return nil, fmt.Errorf("redis url %s: %w", redisspec.Redact(u), err)
	}
	if o.Password == "" {
		o.Password = os.Getenv(PasswordEnv)
	}
	// A buy sent once has an unknown outcome if its reply is lost: the
	// caller retries with the same request id, not the client blindly.
	o.MaxRetries = -1
	// One dial per connection: dial_timeout bounds it, as the URL says
	// (go-redis would try five times).
	o.DialerRetries = 1
	o.DisableIdentity = true
	o.PoolSize = 4
	// A failure to dial (TCP or the TLS handshake) is known to have sent
	// nothing: mark it, so that a buy can say nothing was bought.
	dial := goredis.NewDialer(o)
	o.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, &dialError{err}
		}
		return c, nil
	}
	r.addr = o.Addr
	r.client = goredis.NewClient(o)
	return r, nil
}

// checkSaleName refuses a sale name that is not 1 to 100 letters, digits,
// '.', '_', ':' or '-': no braces (they pick the cluster slot), no spaces,
// control characters or invisible ones that would make two names look alike.
func checkSaleName(name string) error {
	ok := len(name) >= 1 && len(name) <= 100
	for _, c := range []byte(name) {
		ok = ok && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._:-", c) >= 0)
	}
	if !ok {
		return fmt.Errorf("name %q: want 1 to 100 letters, digits, '.', '_', ':' or '-'", name)
	}
	return nil
}

// quiet discards go-redis's log lines: every failure comes back to the
// caller as an error, and stderr is for one-line messages.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

var quietOnce sync.Once

// RedactURL returns spec, a Redis URL, without its password, to print:
// see Store.Redacted and redisspec.RedactURL.
func RedactURL(spec string) string { return redisspec.RedactURL(spec) }

// Redacted returns the sale's URL without its password, to print. It
// leaves the password out rather than masking it: the URL printed works
// as it is, with the password in the environment variable PasswordEnv
// (see HasPassword).
func (r *Store) Redacted() string {
	u, err := url.Parse(r.spec)
	if err != nil {
		return "redis://" + r.addr
	}
	return redisspec.Redact(u)
}

// HasPassword reports whether the sale's URL carries a password, which
// Redacted leaves out: a command printed with the redacted URL needs the
// password in PasswordEnv.
func (r *Store) HasPassword() bool { return redisspec.HasPassword(r.spec) }

// isAuth reports whether a server error is an authentication or
// permission failure. A server that wants a password answers a long
// command from a client that has not logged in with a protocol error, not
// NOAUTH.
func isAuth(msg string) bool {
	for _, p := range []string{"NOAUTH", "WRONGPASS", "NOPERM"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return strings.Contains(msg, "Protocol error: unauthenticated") || scriptDenied(msg)
}

// scriptDenied reports whether a script failed because the ACL denied a
// command it called: Redis 6.2 and 7.0 answer "ERR The user executing the
// script can't run this command or subcommand", later versions NOPERM.
func scriptDenied(msg string) bool {
	return strings.Contains(msg, "The user executing the script can't run this command")
}

// notReady reports whether a server error means it could not serve the
// command now: loading, busy with a script, a replica without its master,
// a read-only replica, out of memory.
func notReady(msg string) bool {
	for _, p := range []string{"LOADING", "MASTERDOWN", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "READONLY", "OOM", "NOREPLICAS", "MISCONF"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// serverWhy says in words why a server refused a command, for the errors
// a user can do something about.
func serverWhy(msg string) string {
	switch {
	case strings.HasPrefix(msg, "NOPERM"), scriptDenied(msg):
		return "permission denied by the server's ACL: " + msg
	case isAuth(msg):
		return "authentication failed: " + msg
	case strings.HasPrefix(msg, "OOM"):
		return "the server is out of memory (used memory above maxmemory, and its maxmemory-policy cannot free any): free memory or raise maxmemory"
	case strings.HasPrefix(msg, "READONLY"):
		return "the server is a read-only replica: use the primary's address"
	case strings.HasPrefix(msg, "MISCONF"):
		return "the server cannot persist (MISCONF: " + msg + ")"
	}
	return "server not ready: " + msg
}

// Name returns the sale's name in the server.
func (r *Store) Name() string { return r.name }

// Addr returns the server's address, host:port.
func (r *Store) Addr() string { return r.addr }

// WaitReplicas returns the number of replicas a sale is acknowledged
// after (the URL's wait_replicas), 0 if none.
func (r *Store) WaitReplicas() int { return r.waitReplicas }

// Close closes the connections to the server.
func (r *Store) Close() error { return r.client.Close() }

// OnProgress sets a function that long reads and writes of the journal
// (Verify, Sales, Restore, Repair) call after each page with what they
// are doing ("read", "write"), the entries done and the entries in all.
func (r *Store) OnProgress(f func(what string, done, total int64)) { r.progress = f }

func (r *Store) report(what string, done, total int64) {
	if r.progress != nil {
		r.progress(what, done, total)
	}
}

func (r *Store) stateKey() string    { return "ticket:{" + r.name + "}" }
func (r *Store) journalKey() string  { return r.key("journal") }
func (r *Store) requestsKey() string { return r.key("requests") }

// bookingKeys are the keys of the sale's holds, holdings and returns, in
// the order the scripts take them after the state, journal and requests
// (see bookCommon).
func (r *Store) bookingKeys() []string {
	return []string{r.key("holds"), r.key("expiry"), r.key("holdings"), r.key("closed"), r.key("returned")}
}

// scriptKeys are the keys every script that changes the sale takes.
func (r *Store) scriptKeys() []string {
	return append([]string{r.stateKey(), r.journalKey(), r.requestsKey()}, r.bookingKeys()...)
}

// lapseBound is the most expired holds one script releases: expiry costs
// in proportion to the holds that expired, and no script holds the server
// for long however many expired at once (the next scripts release the rest).
const lapseBound = 64

// key returns the sale's key with the suffix.
func (r *Store) key(suffix string) string { return r.stateKey() + ":" + suffix }

// where names the sale in messages.
func (r *Store) where() string { return fmt.Sprintf("redis %s sale %q", r.addr, r.name) }

// fail turns a client error into one line naming the server, wrapping
// store.ErrUnreachable for connection, timeout, authentication and readiness
// failures, and ticket.ErrInvalid for a key of the wrong type.
func (r *Store) fail(op string, err error) error {
	if err == nil {
		return nil
	}
	var rerr goredis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		switch {
		case strings.HasPrefix(msg, "WRONGTYPE"):
			return fmt.Errorf("%s: %s: %w", r.where(), op, &ticket.FormatError{Problem: "one of the sale's keys (" + r.stateKey() + ", " + r.journalKey() + ") holds the wrong type of value: left as it is"})
		case isAuth(msg) || notReady(msg):
			return fmt.Errorf("%s: %s: %s: %w", r.where(), op, serverWhy(msg), store.ErrUnreachable)
		}
		return fmt.Errorf("%s: %s: %s", r.where(), op, msg)
	}
	var ie *interruptedError
	if errors.As(err, &ie) {
		return fmt.Errorf("%s: %s: interrupted: %w", r.where(), op, ie.err)
	}
	if errors.Is(err, context.Canceled) { // a command sent with the caller's context
		return fmt.Errorf("%s: %s: interrupted: %w", r.where(), op, err)
	}
	var de *dialError
	if errors.As(err, &de) {
		return fmt.Errorf("%s: %s: cannot connect: %v: %w", r.where(), op, de.err, store.ErrUnreachable)
	}
	return fmt.Errorf("%s: %s: %v: %w", r.where(), op, err, store.ErrUnreachable)
}

// bg detaches ctx from cancellation and deadlines: the client's dial, read
// and write timeouts bound each call (there is no lock to wait for), and
// call abandons a call that a cancellation interrupts.
func bg(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// call runs fn with a context that nothing cancels, and returns early,
// with an *interruptedError, if ctx is cancelled (not merely past its
// deadline: a Redis call has no lock to wait for, and the client's
// timeouts bound it). A signal thus always ends a command, even against a
// server that never answers and a read_timeout of -1; the abandoned call
// ends when the client is closed.
func (r *Store) call(ctx context.Context, fn func(ctx context.Context) error) error {
	if ctx.Done() == nil {
		return fn(bg(ctx))
	}
	if err := ctx.Err(); errors.Is(err, context.Canceled) {
		return &interruptedError{err}
	}
	done := make(chan error, 1)
	go func() { done <- fn(bg(ctx)) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		if err := ctx.Err(); errors.Is(err, context.Canceled) {
			return &interruptedError{err}
		}
	}
	return <-done // past a deadline: the call goes on, bounded by the client's timeouts
}

// Read returns the sale's current state, with its open holds: a hold
// that expired by the server's clock counts as released, as the next
// script that changes the sale will record it (Read writes nothing).
func (r *Store) Read() (ticket.State, error) {
	snap, err := r.snapshot(context.Background())
	if err != nil {
		return snap.state, err
	}
	st, _ := snap.state.Lapse(expiredHolds(snap.holds, snap.now), snap.now)
	return st, nil
}

// OpenHolds returns the sale's open holds, soonest to expire first: those
// that expired by the server's clock count as released, as in Read.
func (r *Store) OpenHolds() ([]ticket.Hold, error) {
	snap, err := r.snapshot(context.Background())
	if err != nil {
		return nil, err
	}
	return snap.holds[len(expiredHolds(snap.holds, snap.now)):], nil
}

// parseState reads the state hash's total, left and version; all nil is
// a missing state, reported by the caller.
func (r *Store) parseState(vals []any) (ticket.State, error) {
	var n [3]int64
	for i, v := range vals[:3] {
		s, ok := v.(string)
		x, err := strconv.ParseInt(s, 10, 64)
		if !ok || err != nil {
			return ticket.State{}, fmt.Errorf("%s: %w", r.where(), &ticket.FormatError{Problem: fmt.Sprintf("%q of the state hash is %v, not a whole number", [...]string{"total", "left", "version"}[i], v)})
		}
		n[i] = x
	}
	st, err := ticket.At(n[2], n[1], n[0])
	if err != nil {
		return ticket.State{}, fmt.Errorf("%s: %w", r.where(), &ticket.FormatError{Problem: fmt.Sprintf("state total %d left %d version %d does not hold together", n[0], n[1], n[2])})
	}
	return st, nil
}

// missing is the error for a sale without a state hash: StateMissingError
// when its journal holds sales, ErrNotFound otherwise.
func (r *Store) missing(journalLen int64) error {
	if journalLen > 0 {
		return &StateMissingError{Where: r.where(), Sales: journalLen}
	}
	return &notFoundError{r.where()}
}

// CheckRequestID reports whether id may be used as a request id: see
// redisspec.CheckRequestID.
func CheckRequestID(id string) error { return redisspec.CheckRequestID(id) }

// NewRequestID returns a fresh random request id.
func NewRequestID() string { return redisspec.NewRequestID() }

// flags are the scripts' flags (see serverCheck and buySource).
func (r *Store) flags() string {
	f := ""
	if r.allowEviction {
		f += "e"
	}
	if testSkipRoleCheck {
		f += "R"
	}
	if testRequestsExpire {
		f += "T"
	}
	if testSkipACLCheck {
		f += "A"
	}
	if testNoLimitCheck {
		f += "L"
	}
	if f == "" {
		f = "-"
	}
	return f
}

// Buy sells qty tickets to buyer with a fresh request id: see BuyRequest.
func (r *Store) Buy(ctx context.Context, buyer string, qty int64) (store.Receipt, error) {
	return r.BuyRequest(ctx, NewRequestID(), buyer, qty)
}

// BuyRequest sells qty tickets to buyer if at least qty are left, all or
// nothing, as request id. If the sale has already answered id with a sale
// (within RequestTTL at least), it returns that original sale, with
// Replayed set, and changes nothing. It returns ticket.ErrSoldOut when
// fewer than qty are left (a sold-out answer is not stored: asked again,
// the buy is decided again).
//
// Errors wrapping store.ErrUnreachable say whether anything may have been
// bought: an *OutcomeUnknownError when the buy was sent and its answer
// lost (the same buy with the same id, sent again, tells), any other when
// the buy was never run (could not connect, log in, or the server could
// not take it: a replica, out of memory, too few replicas online).
//
// With wait_replicas=N in the URL, a sale is acknowledged only once N
// replicas have it (WAIT): a sale they did not confirm within wait_timeout
// is returned with an error wrapping store.ErrUnconfirmed.
//
// ctx's cancellation interrupts the buy (before it is sent: nothing is
// bought; after: an *OutcomeUnknownError); its deadline does not, since
// there is no lock to wait for: the URL's timeouts bound each call.
func (r *Store) BuyRequest(ctx context.Context, id, buyer string, qty int64) (store.Receipt, error) {
	if err := ticket.CheckRequest(buyer, qty); err != nil {
		return store.Receipt{}, err
	}
	if err := CheckRequestID(id); err != nil {
		return store.Receipt{}, err
	}
	if err := ctx.Err(); err != nil && errors.Is(err, context.Canceled) {
		return store.Receipt{}, fmt.Errorf("%s: interrupted before the buy was sent, nothing was bought: %w", r.where(), err)
	}
	// Connect (dial, TLS, HELLO, AUTH, SELECT) before the buy is sent, so
	// that a failure there is known to have bought nothing.
	if r.client.PoolStats().IdleConns == 0 {
		err := r.call(ctx, func(ctx context.Context) error { return r.client.Ping(ctx).Err() })
		if err != nil {
			return store.Receipt{}, r.notSent(err)
		}
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	ttl := RequestTTL
	if testRequestTTL > 0 {
		ttl = testRequestTTL
	}
	keys := r.scriptKeys()
	var out string
	err := r.call(ctx, func(ctx context.Context) error {
		var err error
		out, err = buyScript().Run(ctx, r.client, keys, r.flags(), r.waitReplicas,
			qty, buyer, os.Getpid(), now, id, ttl.Milliseconds(), lapseBound).Text()
		return err
	})
	if err != nil {
		var rerr goredis.Error
		var de *dialError
		if errors.As(err, &rerr) || errors.As(err, &de) {
			// Not connected, or the server answered with an error: the
			// script makes every check and every read before it writes,
			// its first write is the only one a server out of memory
			// refuses, and it catches an error after that write (its
			// answer is then "written ..."), so it took nothing.
			return store.Receipt{}, r.notSent(err)
		}
		return store.Receipt{}, &OutcomeUnknownError{Server: r.addr, Sale: r.name, RequestID: id, Buyer: buyer, Qty: qty, Err: err}
	}
	rc, err := r.parseOutcome(out, id, buyer, qty)
	if err != nil || r.waitReplicas == 0 {
		return rc, err
	}
	return rc, r.waitFor(ctx, rc)
}

// notSent is the error for a buy that bought nothing because it could not
// be run: it says so, and wraps store.ErrUnreachable (or the interruption).
func (r *Store) notSent(err error) error {
	var ie *interruptedError
	if errors.As(err, &ie) {
		return fmt.Errorf("%s: interrupted before the buy was sent, nothing was bought: %w", r.where(), ie.err)
	}
	var rerr goredis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		if isAuth(msg) || notReady(msg) {
			return fmt.Errorf("%s: %s; nothing was bought: %w", r.where(), serverWhy(msg), store.ErrUnreachable)
		}
		return fmt.Errorf("%s: the server refused the buy, nothing was bought: %s", r.where(), msg)
	}
	var de *dialError
	if errors.As(err, &de) {
		return fmt.Errorf("%s: cannot connect (%v); nothing was bought: %w", r.where(), de.err, store.ErrUnreachable)
	}
	return fmt.Errorf("%s: the server did not answer before the buy was sent (%v); nothing was bought: %w", r.where(), err, store.ErrUnreachable)
}

// waitFor waits until the replicas the sale asks for have rc's sale
// (WAIT): the sale stands on the primary either way, and is returned with
// an error wrapping store.ErrUnconfirmed if they did not confirm it in time.
func (r *Store) waitFor(ctx context.Context, rc store.Receipt) error {
	var n int64
	err := r.call(ctx, func(ctx context.Context) error {
		var err error
		n, err = r.client.Wait(ctx, r.waitReplicas, r.waitTimeout).Result()
		return err
	})
	switch {
	case err != nil:
		return fmt.Errorf("%w: %s: sale #%d is on the primary, but whether %d %s have it is unknown (%v): a failover now could lose it",
			store.ErrUnconfirmed, r.where(), rc.Sale.Seq, r.waitReplicas, replicas(r.waitReplicas), err)
	case n < int64(r.waitReplicas):
		return fmt.Errorf("%w: %s: sale #%d is on the primary, but only %d of %d %s confirmed it within %v: a failover now could lose it",
			store.ErrUnconfirmed, r.where(), rc.Sale.Seq, n, r.waitReplicas, replicas(r.waitReplicas), r.waitTimeout)
	}
	return nil
}

func replicas(n int) string {
	if n == 1 {
		return "replica"
	}
	return "replicas"
}

// Client returns the client of the sale's server, for what Store does not
// do itself; the sale's keys are described on Store (see StateKey).
func (r *Store) Client() *goredis.Client { return r.client }

// StateKey returns the key of the sale's state hash.
func (r *Store) StateKey() string { return r.stateKey() }

// refused turns the answers of serverCheck, and the answers the scripts
// share, into errors; ok is false for any other answer.
func (r *Store) refused(out, doing string) (err error, ok bool) {
	kind, rest, _ := strings.Cut(out, " ")
	switch kind {
	case "replica":
		return fmt.Errorf("%s: the server is a replica of %s: %s goes to the primary, never a replica (its writes never reach the primary); nothing was changed: %w", r.where(), rest, doing, store.ErrUnreachable), true
	case "noreplicas":
		return fmt.Errorf("%s: only %s of the %d %s the sale waits for (%s=%d) %s online; nothing was changed: %w", r.where(), rest, r.waitReplicas, replicas(r.waitReplicas), ParamWaitReplicas, r.waitReplicas, map[bool]string{true: "is", false: "are"}[rest == "1"], store.ErrUnreachable), true
	case "evicting":
		return fmt.Errorf("%s: the server's maxmemory-policy %s may evict the sale's keys (its request ids: a retry would buy twice; its state; its journal); nothing was changed: set maxmemory-policy noeviction (or a volatile-* policy), or accept the risk with %s=yes in the URL", r.where(), rest, ParamAllowEviction), true
	case "noperm":
		return fmt.Errorf("%s: the server's ACL denies this user %s; nothing was changed: %w", r.where(), rest, store.ErrUnreachable), true
	case "wrongtype":
		key, typ, _ := strings.Cut(rest, " ")
		return fmt.Errorf("%s: %w", r.where(), &ticket.FormatError{Problem: fmt.Sprintf("the key %s is a %s, not the sale's: left as it is, nothing was changed", key, typ)}), true
	case "nostate":
		n, _ := strconv.ParseInt(rest, 10, 64)
		return r.missing(n), true
	case "nosale":
		return r.missing(0), true
	case "invalid":
		return fmt.Errorf("%s: %w", r.where(), &ticket.FormatError{Problem: "the sale's state hash must hold whole numbers with total >= left: nothing was changed"}), true
	}
	return nil, false
}

func (r *Store) parseOutcome(out, id, buyer string, qty int64) (store.Receipt, error) {
	var rc store.Receipt
	if err, ok := r.refused(out, "a buy"); ok {
		return rc, err
	}
	if rest, ok := strings.CutPrefix(out, "mismatch "); ok {
		q, b, _ := strings.Cut(rest, " ")
		if q == "?" || strings.HasPrefix(q, "B\t") {
			// Not a buy's: a hold's, a confirm's... No buy retries it.
			return rc, fmt.Errorf("%s: request id %s was used for another kind of request (a hold, confirm, release, return or restock), not a buy: %w", r.where(), id, ErrRequestID)
		}
		return rc, &RequestMismatchError{ID: id, Qty: q, Buyer: b}
	}
	if rest, ok := strings.CutPrefix(out, "limit "); ok {
		f := strings.Fields(rest) // have, limit, left, total, version, held
		var n [6]int64
		for i := range n {
			if i < len(f) {
				n[i], _ = strconv.ParseInt(f[i], 10, 64)
			}
		}
		if len(f) != 6 {
			return rc, fmt.Errorf("%s: unexpected answer from the buy script: %q", r.where(), out)
		}
		rc.State, _ = ticket.Booked(n[4], n[2], n[5], n[3])
		return rc, fmt.Errorf("%s: %w: %s has %d of at most %d, wanted %d more", r.where(), ticket.ErrLimit, buyer, n[0], n[1], qty)
	}
	var late string // a write the server refused after the sale's XADD
	if rest, ok := strings.CutPrefix(out, "written "); ok {
		out, late, _ = strings.Cut(rest, "\n")
	}
	f := strings.Fields(out)
	if len(f) > 0 && f[0] == "replay" {
		rc.Replayed = true
		f = f[1:]
	}
	if len(f) != 6 && len(f) != 7 { // an answer stored before holds has no held
		return rc, fmt.Errorf("%s: unexpected answer from the buy script: %q", r.where(), out)
	}
	var n [4]int64
	for i := range n {
		x, err := strconv.ParseInt(f[i+1], 10, 64)
		if err != nil {
			return rc, fmt.Errorf("%s: unexpected answer from the buy script: %q", r.where(), out)
		}
		n[i] = x
	}
	var held int64
	if len(f) == 7 {
		held, _ = strconv.ParseInt(f[6], 10, 64)
	}
	st, err := ticket.Booked(n[3], n[1], held, n[2])
	if err != nil {
		return rc, fmt.Errorf("%s: unexpected answer from the buy script: %q: %w", r.where(), out, err)
	}
	rc.State = st
	if f[0] == "soldout" {
		return rc, ticket.ErrSoldOut
	}
	t, _ := time.Parse(time.RFC3339Nano, f[5])
	rc.Sale = ticket.Record{Seq: n[0], Buyer: buyer, Qty: qty, Left: n[1], Held: held, PID: os.Getpid(), Time: t}
	if late != "" || f[0] != "ok" {
		return rc, fmt.Errorf("%s: sale #%d is in the journal, but the server refused a later write of the same buy (%s): the sale's state or its request id may not show it, and a retry with request id %s could buy again; verify the sale: %w",
			r.where(), n[0], late, id, store.ErrUnconfirmed)
	}
	return rc, nil
}

// checkServer runs serverCheck alone: it refuses a server that must not
// take the sale's writes (a replica, an evicting policy, too few replicas).
func (r *Store) checkServer(ctx context.Context, doing string) error {
	var out string
	err := r.call(ctx, func(ctx context.Context) error {
		var err error
		out, err = checkScript().Run(ctx, r.client, []string{r.stateKey()}, r.flags(), r.waitReplicas).Text()
		return err
	})
	if err != nil {
		return r.fail(doing, err)
	}
	if err, ok := r.refused(out, doing); ok {
		return err
	}
	return nil
}

// Init creates the sale with n tickets and an empty journal. It refuses
// with store.ErrExists if the sale exists, unless mode is store.Replace,
// which resets it; a journal that holds sales is renamed, never deleted,
// and archive names it. A journal that holds sales without a state is
// refused with a *StateMissingError unless store.Replace: Repair rebuilds
// its state.
func (r *Store) Init(ctx context.Context, n int64, mode store.Mode) (ticket.State, string, error) {
	return r.InitLimit(ctx, n, 0, mode)
}

// InitLimit is Init with a per-buyer limit of limit tickets (0: none),
// which the state hash keeps, and the journal's first entry, an init
// record, as a ticket file's journal does.
func (r *Store) InitLimit(ctx context.Context, n, limit int64, mode store.Mode) (ticket.State, string, error) {
	state, err := ticket.New(n)
	if err != nil {
		return state, "", err
	}
	if state, err = state.WithLimit(limit, 0); err != nil {
		return state, "", err
	}
	if limit > MaxCount {
		return state, "", fmt.Errorf("%s: a limit of %d: a Redis sale counts at most %d: %w", r.where(), limit, int64(MaxCount), ticket.ErrInvalid)
	}
	if n > MaxCount {
		return state, "", fmt.Errorf("%s: %d tickets: a Redis sale holds at most %d: %w", r.where(), n, int64(MaxCount), ticket.ErrInvalid)
	}
	f := "0"
	if mode == store.Replace {
		f = "1"
	}
	archive := r.journalKey() + ":" + files.Stamp(time.Now())
	var out string
	err = r.call(ctx, func(ctx context.Context) error {
		var err error
		keys := append([]string{r.stateKey(), r.journalKey(), archive, r.requestsKey()}, r.bookingKeys()...)
		out, err = initScript().Run(ctx, r.client, keys, r.flags(), r.waitReplicas, strconv.FormatInt(n, 10), f, NewRequestID(),
			strconv.FormatInt(limit, 10), time.Now().UTC().Format(time.RFC3339Nano)).Text()
		return err
	})
	if err != nil {
		return state, "", r.fail("init", err)
	}
	if err, ok := r.refused(out, "init"); ok {
		return state, "", err
	}
	if out == "exists" {
		return state, "", &existsError{r.where()}
	}
	kept, ok := strings.CutPrefix(out, "ok")
	if !ok {
		return state, "", fmt.Errorf("%s: unexpected answer from the init script: %q", r.where(), out)
	}
	return state, strings.TrimSpace(kept), nil
}

// IsURL reports whether spec is a Redis URL: redis://... or rediss://...
func IsURL(spec string) bool { return redisspec.IsURL(spec) }
