package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/ticketd/ticket/ticket"
)

// ErrUnreachable reports a Redis server that could not be reached or
// answered in time, or refused the credentials. Nothing can be said about
// the sale: a buy that fails this way may or may not have been made (its
// request id, retried, tells which); it never means "sold out".
var ErrUnreachable = errors.New("backend unreachable")

// MaxRedisCount is the most tickets a Redis sale holds: the server's Lua
// scripts count in double-precision numbers, exact up to 2^53-1.
const MaxRedisCount = 1<<53 - 1

// RequestTTL is how long a Redis sale remembers a request id and its
// outcome: a buy retried with the same id within this time gets the
// original outcome instead of buying again.
const RequestTTL = 24 * time.Hour

// PasswordEnv names the environment variable that gives the Redis password
// when the URL has none, so that it need not appear in URLs that ticket
// prints.
const PasswordEnv = "TICKET_REDIS_PASSWORD"

// Redis is one ticket sale kept in a Redis server, for buyers on many
// machines. For a sale NAME its keys are (the braces keep them in one
// cluster slot):
//
//	ticket:{NAME}            hash: total, left, version
//	ticket:{NAME}:journal    stream: one entry per committed sale
//	ticket:{NAME}:req:ID     the outcome of the buy with request id ID, for RequestTTL
//	ticket:{NAME}:journal:YYYYMMDDTHHMMSS.NNNNNNNNNZ  a journal kept by init --force
//
// A buy is one Lua script run by the server (EVALSHA, EVAL when the server
// does not have it cached): it checks the request id, checks and decrements
// the stock and appends the sale to the stream in one atomic step.
type Redis struct {
	spec   string
	name   string
	addr   string
	client *redis.Client
	opts   Options
}

// OpenRedis returns the sale named by a URL of the form
//
//	redis://[[USER]:PASSWORD@]HOST:PORT/DB?name=SALE[&dial_timeout=5s&read_timeout=3s...]
//
// (rediss:// for TLS). name defaults to "ticket"; the other query
// parameters are go-redis's. The password may also come from the
// environment variable TICKET_REDIS_PASSWORD. It does not connect: the
// first method that needs the server does.
func OpenRedis(spec string, opts Options) (*Redis, error) {
	quietOnce.Do(func() { redis.SetLogger(quiet{}) })
	u, err := url.Parse(spec)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the whole URL, password and all, is in ue.URL
		}
		return nil, fmt.Errorf("redis url: %w", err)
	}
	q := u.Query()
	name := q.Get("name")
	switch {
	case len(q["name"]) > 1:
		return nil, fmt.Errorf("redis url %s: name is given %d times", redact(u), len(q["name"]))
	case q.Has("name") && name == "":
		return nil, fmt.Errorf("redis url %s: name is empty", redact(u))
	case name == "":
		name = "ticket"
	}
	if strings.ContainsAny(name, "{} \t\r\n") {
		return nil, fmt.Errorf("redis url %s: name %q: braces, spaces and control characters are not allowed", redact(u), name)
	}
	q.Del("name")
	u.RawQuery = q.Encode()
	o, err := redis.ParseURL(u.String())
	if err != nil {
		return nil, fmt.Errorf("redis url %s: %w", redact(u), err)
	}
	if o.Password == "" {
		o.Password = os.Getenv(PasswordEnv)
	}
	// A buy sent once has an unknown outcome if its reply is lost: the
	// caller retries with the same request id, not the client blindly.
	o.MaxRetries = -1
	o.DisableIdentity = true
	o.PoolSize = 4
	return &Redis{spec: spec, name: name, addr: o.Addr, client: redis.NewClient(o), opts: opts}, nil
}

// quiet discards go-redis's log lines: every failure comes back to the
// caller as an error, and stderr is for one-line messages.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

var quietOnce sync.Once

func redact(u *url.URL) string {
	return u.Redacted()
}

// isAuth reports whether a server error is an authentication failure. A
// server that wants a password answers a long command from a client that
// has not logged in with a protocol error, not NOAUTH.
func isAuth(msg string) bool {
	for _, p := range []string{"NOAUTH", "WRONGPASS", "NOPERM"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return strings.Contains(msg, "Protocol error: unauthenticated")
}

// isAuthOrBusy reports whether a server error means it could not serve
// the command at all: not logged in, or not ready (loading, busy with a
// script, a replica without its master...).
func isAuthOrBusy(msg string) bool {
	if isAuth(msg) {
		return true
	}
	for _, p := range []string{"LOADING", "MASTERDOWN", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "READONLY"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// RequestMismatchError is a request id already used for another buy (a
// different buyer or quantity) in the same sale: the retry is refused,
// since the id cannot answer for two buys.
type RequestMismatchError struct {
	ID, Qty, Buyer string // the id, and the buy it was first used for
}

func (e *RequestMismatchError) Error() string {
	return fmt.Sprintf("request id %s was used for %s x%s; retry with the same buyer and quantity, or use a new id", e.ID, e.Buyer, e.Qty)
}

// errSaleExists is ErrExists in words that fit a Redis sale.
type errSaleExists struct{}

func (errSaleExists) Error() string        { return "sale exists" }
func (errSaleExists) Is(target error) bool { return target == ErrExists }

// Name returns the sale's name in the server.
func (r *Redis) Name() string { return r.name }

// Addr returns the server's address, host:port.
func (r *Redis) Addr() string { return r.addr }

// Close closes the connections to the server.
func (r *Redis) Close() error { return r.client.Close() }

func (r *Redis) stateKey() string   { return "ticket:{" + r.name + "}" }
func (r *Redis) journalKey() string { return "ticket:{" + r.name + "}:journal" }
func (r *Redis) requestKey(id string) string {
	return "ticket:{" + r.name + "}:req:" + id
}

// where names the sale in messages.
func (r *Redis) where() string { return fmt.Sprintf("redis %s sale %q", r.addr, r.name) }

// fail turns a client error into one line naming the server, wrapping
// ErrUnreachable for connection, timeout and authentication failures.
func (r *Redis) fail(op string, err error) error {
	if err == nil {
		return nil
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		if isAuth(msg) {
			return fmt.Errorf("%s: %s: authentication failed: %s: %w", r.where(), op, msg, ErrUnreachable)
		}
		if isAuthOrBusy(msg) {
			return fmt.Errorf("%s: %s: server not ready: %s: %w", r.where(), op, msg, ErrUnreachable)
		}
		return fmt.Errorf("%s: %s: %s", r.where(), op, msg)
	}
	return fmt.Errorf("%s: %s: %v: %w", r.where(), op, err, ErrUnreachable)
}

// bg detaches ctx from cancellation: a Redis call has no lock to wait for,
// and a call interrupted after it was sent would leave its outcome unknown.
// The client's dial, read and write timeouts bound it instead.
func bg(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// Read returns the sale's current state.
func (r *Redis) Read() (ticket.State, error) {
	vals, err := r.client.HMGet(context.Background(), r.stateKey(), "total", "left", "version").Result()
	if err != nil {
		return ticket.State{}, r.fail("read", err)
	}
	return r.parseState(vals)
}

func (r *Redis) parseState(vals []any) (ticket.State, error) {
	if len(vals) != 3 || (vals[0] == nil && vals[1] == nil && vals[2] == nil) {
		return ticket.State{}, notFound(r.where() + " does not exist (create it with: ticket init --count N)")
	}
	var n [3]int64
	for i, v := range vals {
		s, ok := v.(string)
		x, err := strconv.ParseInt(s, 10, 64)
		if !ok || err != nil {
			return ticket.State{}, fmt.Errorf("%s: %w", r.where(), &ticket.FormatError{Problem: fmt.Sprintf("%q of the state hash is %v, not a whole number", [...]string{"total", "left", "version"}[i], v)})
		}
		n[i] = x
	}
	st := ticket.State{Total: n[0], Left: n[1], Version: n[2], Sold: n[0] - n[1]}
	if st.Left < 0 || st.Left > st.Total || st.Version < 0 {
		return ticket.State{}, fmt.Errorf("%s: %w", r.where(), &ticket.FormatError{Problem: fmt.Sprintf("state total %d left %d version %d does not hold together", st.Total, st.Left, st.Version)})
	}
	return st, nil
}

// buyScript checks the request id, then the stock, and commits a sale, in
// one atomic step. It answers a string "KIND SEQ LEFT TOTAL VERSION TIME"
// (KIND ok or soldout), prefixed with "replay " for a request id it has
// already answered, or "nosale" / "invalid".
//
// Scripts are made on first use: a file sale's buy must not pay for them
// when the process starts.
var buyScript = sync.OnceValue(func() *redis.Script { return redis.NewScript(buySource) })

// buySource is the buy, run by the server in one atomic step. It checks
// everything before it writes anything, because Redis does not undo the
// writes of a script that fails halfway: the keys' types, the state's
// numbers (whole, at most 2^53-1, left <= total), and a request id already
// answered. Then it appends the sale to the journal before it takes the
// tickets from the stock, and remembers the outcome under the request id
// with the buyer, the quantity and the sale's generation (a random id that
// init and restore give the sale), so that a retry gets the same answer,
// a reused id with another buyer or quantity is refused, and an id from a
// sale since reset does not answer for the new one.
//
// KEYS: state hash, journal stream, request key.
// ARGV: qty, buyer, pid, time, request id, ttl in seconds.
const buySource = `
local function whole(v)
  if type(v) ~= 'string' or #v > 16 or not string.match(v, '^%d+$') then return nil end
  local n = tonumber(v)
  if n > 9007199254740991 then return nil end
  return n
end
local s = redis.call('HMGET', KEYS[1], 'total', 'left', 'version', 'gen')
if not s[1] and not s[2] and not s[3] then return 'nosale' end
local total, left, version = whole(s[1]), whole(s[2]), whole(s[3])
if not total or not left or not version or left > total then return 'invalid' end
local gen = s[4] or ''
local jt = redis.call('TYPE', KEYS[2]).ok
local rt = redis.call('TYPE', KEYS[3]).ok
if (jt ~= 'stream' and jt ~= 'none') or (rt ~= 'string' and rt ~= 'none') then return 'invalid' end
local qty = whole(ARGV[1])
if not qty or qty < 1 then return 'invalid' end
local done = redis.call('GET', KEYS[3])
if done then
  local g, q, b, out = string.match(done, '^([^\n]*)\n([^\n]*)\n([^\n]*)\n(.*)$')
  if g == gen then
    if q ~= ARGV[1] or b ~= ARGV[2] then return 'mismatch ' .. q .. ' ' .. b end
    return 'replay ' .. out
  end
end
local out
if left < qty then
  out = string.format('soldout 0 %d %d %d -', left, total, version)
else
  left = left - qty
  version = version + 1
  local l, v = string.format('%d', left), string.format('%d', version)
  redis.call('XADD', KEYS[2], '*', 'seq', v, 'buyer', ARGV[2], 'qty', ARGV[1], 'left', l, 'pid', ARGV[3], 'time', ARGV[4], 'request', ARGV[5])
  redis.call('HSET', KEYS[1], 'left', l, 'version', v)
  out = string.format('ok %d %d %d %d %s', version, left, total, version, ARGV[4])
end
redis.call('SET', KEYS[3], gen .. '\n' .. ARGV[1] .. '\n' .. ARGV[2] .. '\n' .. out, 'EX', ARGV[6])
return out
`

// CheckRequestID reports whether id may be used as a request id: 1 to 128
// letters, digits, '.', '_', ':' or '-'.
func CheckRequestID(id string) error {
	ok := len(id) >= 1 && len(id) <= 128
	for _, c := range []byte(id) {
		ok = ok && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._:-", c) >= 0)
	}
	if !ok {
		return fmt.Errorf("request id %q: want 1 to 128 letters, digits, '.', '_', ':' or '-': %w", id, ticket.ErrInvalid)
	}
	return nil
}

// NewRequestID returns a fresh random request id.
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Buy sells qty tickets to buyer with a fresh request id (or
// Options.RequestID when set): see BuyRequest.
func (r *Redis) Buy(ctx context.Context, buyer string, qty int64) (Receipt, error) {
	id := r.opts.RequestID
	if id == "" {
		id = NewRequestID()
	}
	return r.BuyRequest(ctx, id, buyer, qty)
}

// BuyRequest sells qty tickets to buyer if at least qty are left, all or
// nothing, as request id. If the sale has already answered id (within
// RequestTTL), it returns that original outcome, with Replayed set, and
// changes nothing. It returns ticket.ErrSoldOut when fewer than qty are
// left, and an error wrapping ErrUnreachable when the server could not be
// reached or its answer was lost: then the buy may have been made, and
// calling BuyRequest again with the same id tells.
func (r *Redis) BuyRequest(ctx context.Context, id, buyer string, qty int64) (Receipt, error) {
	if qty < 1 {
		return Receipt{}, ticket.ErrQuantity
	}
	if err := ticket.CheckBuyer(buyer); err != nil {
		return Receipt{}, err
	}
	if err := CheckRequestID(id); err != nil {
		return Receipt{}, err
	}
	if err := ctx.Err(); err != nil && errors.Is(err, context.Canceled) {
		return Receipt{}, err // interrupted before anything was sent
	}
	if r.opts.Unlocked {
		return r.unsafeBuy(ctx, qty)
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	keys := []string{r.stateKey(), r.journalKey(), r.requestKey(id)}
	out, err := buyScript().Run(bg(ctx), r.client, keys, qty, buyer, os.Getpid(), now, id, int64(RequestTTL/time.Second)).Text()
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return Receipt{}, r.fail("buy: cannot connect, nothing was bought", err)
	}
	var rerr redis.Error
	if err != nil && errors.As(err, &rerr) && !isAuthOrBusy(rerr.Error()) {
		// The server answered with an error: the script checks before it
		// writes, so it stopped before taking anything.
		return Receipt{}, r.fail("buy: the server refused it, nothing was bought", err)
	}
	if err != nil {
		return Receipt{}, r.fail(fmt.Sprintf("buy (request id %s; outcome unknown, retry with --request-id %s)", id, id), err)
	}
	rc, err := r.parseOutcome(out, buyer, qty)
	var mm *RequestMismatchError
	if errors.As(err, &mm) {
		mm.ID = id
	}
	return rc, err
}

// unsafeBuy is Options.Unlocked for Redis: the buyer reads the stock,
// decides and writes it back in separate commands, as a client without
// the script would. It is UNSAFE (lost updates, overselling) and exists
// only to show what the script prevents. It writes no journal.
func (r *Redis) unsafeBuy(ctx context.Context, qty int64) (Receipt, error) {
	ctx = bg(ctx)
	state, err := r.Read()
	if err != nil {
		return Receipt{State: state}, err
	}
	next, err := state.Take(qty)
	if err != nil {
		return Receipt{State: state}, err
	}
	if err := r.client.HSet(ctx, r.stateKey(), "left", next.Left, "version", next.Version).Err(); err != nil {
		return Receipt{State: state}, r.fail("buy", err)
	}
	return Receipt{Sale: ticket.Sale{Seq: next.Version, Qty: qty, Left: next.Left}, State: next}, nil
}

func (r *Redis) parseOutcome(out, buyer string, qty int64) (Receipt, error) {
	var rc Receipt
	f := strings.Fields(out)
	if len(f) > 0 && f[0] == "replay" {
		rc.Replayed = true
		f = f[1:]
	}
	switch {
	case len(f) == 1 && f[0] == "nosale":
		_, err := r.parseState([]any{nil, nil, nil})
		return rc, err
	case len(f) >= 3 && f[0] == "mismatch":
		return rc, &RequestMismatchError{ID: r.opts.RequestID, Qty: f[1], Buyer: strings.Join(f[2:], " ")}
	case len(f) == 1 && f[0] == "invalid":
		return rc, fmt.Errorf("%s: %w", r.where(), &ticket.FormatError{Problem: "the sale's keys are damaged (the state hash must hold whole numbers total >= left, the journal must be a stream): nothing was bought"})
	case len(f) != 6:
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
	rc.State = ticket.State{Total: n[2], Left: n[1], Version: n[3], Sold: n[2] - n[1]}
	if f[0] == "soldout" {
		return rc, ticket.ErrSoldOut
	}
	t, _ := time.Parse(time.RFC3339Nano, f[5])
	rc.Sale = ticket.Sale{Seq: n[0], Buyer: buyer, Qty: qty, Left: n[1], PID: os.Getpid(), Time: t}
	return rc, nil
}

// initScript creates or (force) resets the sale, keeping a journal that
// holds sales under KEYS[3].
var initScript = sync.OnceValue(func() *redis.Script { return redis.NewScript(initSource) })

const initSource = `
if redis.call('EXISTS', KEYS[1]) == 1 and ARGV[2] ~= '1' then return 'exists' end
local kept = ''
if redis.call('XLEN', KEYS[2]) > 0 then
  redis.call('RENAME', KEYS[2], KEYS[3])
  kept = KEYS[3]
end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'total', ARGV[1], 'left', ARGV[1], 'version', '0', 'gen', ARGV[3])
return 'ok ' .. kept
`

// Init creates the sale with n tickets and an empty journal. It refuses
// with ErrExists if the sale exists, unless force, which resets it; a
// journal that holds sales is renamed, never deleted, and archive names it.
func (r *Redis) Init(ctx context.Context, n int64, force bool) (ticket.State, string, error) {
	state, err := ticket.New(n)
	if err != nil {
		return state, "", err
	}
	if n > MaxRedisCount {
		return state, "", fmt.Errorf("%s: %d tickets: a Redis sale holds at most %d: %w", r.where(), n, int64(MaxRedisCount), ticket.ErrInvalid)
	}
	f := "0"
	if force {
		f = "1"
	}
	archive := r.journalKey() + ":" + time.Now().UTC().Format("20060102T150405.000000000Z")
	out, err := initScript().Run(bg(ctx), r.client, []string{r.stateKey(), r.journalKey(), archive}, strconv.FormatInt(n, 10), f, NewRequestID()).Text()
	if err != nil {
		return state, "", r.fail("init", err)
	}
	if out == "exists" {
		return state, "", fmt.Errorf("%s already exists (use --force to reset it): %w", r.where(), errSaleExists{})
	}
	return state, strings.TrimSpace(strings.TrimPrefix(out, "ok")), nil
}

// saleFromEntry reads one stream entry as a sale.
func (r *Redis) saleFromEntry(m redis.XMessage) (ticket.Sale, error) {
	bad := func(what string) (ticket.Sale, error) {
		return ticket.Sale{}, fmt.Errorf("%s: journal entry %s: %s: %w", r.where(), m.ID, what, ErrJournal)
	}
	num := func(k string) (int64, bool) {
		s, ok := m.Values[k].(string)
		if !ok {
			return 0, false
		}
		x, err := strconv.ParseInt(s, 10, 64)
		return x, err == nil
	}
	var s ticket.Sale
	var ok bool
	if s.Seq, ok = num("seq"); !ok {
		return bad("no whole-number seq")
	}
	if s.Qty, ok = num("qty"); !ok || s.Qty < 1 {
		return bad("no qty of at least 1")
	}
	if s.Left, ok = num("left"); !ok || s.Left < 0 {
		return bad("no left of at least 0")
	}
	pid, ok := num("pid")
	if !ok {
		return bad("no pid")
	}
	s.PID = int(pid)
	if s.Buyer, ok = m.Values["buyer"].(string); !ok || ticket.CheckBuyer(s.Buyer) != nil {
		return bad("no valid buyer")
	}
	ts, _ := m.Values["time"].(string)
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return bad("no valid time")
	}
	s.Time = t.UTC()
	return s, nil
}

// Sales yields the journal's sales in order, reading the stream in pages.
func (r *Redis) Sales() iter.Seq2[ticket.Sale, error] {
	return func(yield func(ticket.Sale, error) bool) {
		start := "-"
		for {
			msgs, err := r.client.XRangeN(context.Background(), r.journalKey(), start, "+", 1000).Result()
			if err != nil {
				yield(ticket.Sale{}, r.fail("read journal", err))
				return
			}
			for _, m := range msgs {
				s, err := r.saleFromEntry(m)
				if !yield(s, err) || err != nil {
					return
				}
			}
			if len(msgs) < 1000 {
				return
			}
			start = "(" + msgs[len(msgs)-1].ID
		}
	}
}

// Verify checks, without changing anything, that the state and the
// journal balance, as Store.Verify does. It reads both in one MULTI/EXEC
// transaction, so that it sees a state and a journal that belong together.
func (r *Redis) Verify(ctx context.Context) (Report, error) {
	var rep Report
	var hm *redis.SliceCmd
	var xr *redis.XMessageSliceCmd
	_, err := r.client.TxPipelined(bg(ctx), func(p redis.Pipeliner) error {
		hm = p.HMGet(bg(ctx), r.stateKey(), "total", "left", "version")
		xr = p.XRange(bg(ctx), r.journalKey(), "-", "+")
		return nil
	})
	if err != nil {
		return rep, r.fail("verify", err)
	}
	state, err := r.parseState(hm.Val())
	if err != nil {
		return rep, err
	}
	sales := make([]ticket.Sale, 0, len(xr.Val()))
	var problems []string
	for _, m := range xr.Val() {
		s, err := r.saleFromEntry(m)
		if err != nil {
			problems = append(problems, err.Error())
			break
		}
		sales = append(sales, s)
	}
	rep = balance(state, sales)
	rep.Problems = append(problems, rep.Problems...)
	return rep, nil
}

// Restore replaces the sale with state and sales in one MULTI/EXEC
// transaction, refusing with ErrExists when the sale exists and not force.
// With force, a journal that holds sales is renamed and archive names it.
func (r *Redis) Restore(ctx context.Context, state ticket.State, records []ticket.Sale, force bool) (string, error) {
	var sales []ticket.Sale
	for _, s := range records {
		switch s.Kind {
		case ticket.KindInit:
			// The state's total says it: a Redis journal holds sales only.
		case ticket.KindSale:
			sales = append(sales, s)
		default:
			return "", fmt.Errorf("%s: record #%d is of kind %q (a change made outside ticket), which a Redis journal cannot hold yet: nothing was copied", r.where(), s.Seq, s.Kind)
		}
	}
	if state.Total > MaxRedisCount {
		return "", fmt.Errorf("%s: %d tickets: a Redis sale holds at most %d: %w", r.where(), state.Total, int64(MaxRedisCount), ticket.ErrInvalid)
	}
	ctx = bg(ctx)
	var archive string
	err := r.client.Watch(ctx, func(tx *redis.Tx) error {
		n, err := tx.Exists(ctx, r.stateKey()).Result()
		if err != nil {
			return err
		}
		if n > 0 && !force {
			return fmt.Errorf("%s already exists (use --force to replace it): %w", r.where(), errSaleExists{})
		}
		jl, err := tx.XLen(ctx, r.journalKey()).Result()
		if err != nil {
			return err
		}
		if jl > 0 {
			archive = r.journalKey() + ":" + time.Now().UTC().Format("20060102T150405.000000000Z")
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			if archive != "" {
				p.Rename(ctx, r.journalKey(), archive)
			}
			p.Del(ctx, r.journalKey())
			for _, s := range sales {
				p.XAdd(ctx, &redis.XAddArgs{Stream: r.journalKey(), Values: []any{
					"seq", s.Seq, "buyer", s.Buyer, "qty", s.Qty, "left", s.Left, "pid", s.PID,
					"time", s.Time.UTC().Format(time.RFC3339Nano), "request", "copy"}})
			}
			p.HSet(ctx, r.stateKey(), "total", state.Total, "left", state.Left, "version", state.Version, "gen", NewRequestID())
			return nil
		})
		return err
	}, r.stateKey(), r.journalKey())
	if errors.Is(err, ErrExists) {
		return "", err
	}
	if errors.Is(err, redis.TxFailedErr) {
		return "", fmt.Errorf("%s changed during the copy; nothing was written, try again", r.where())
	}
	return archive, r.fail("restore", err)
}

// Durability is what a Redis server promises about acknowledged writes,
// as its configuration says.
type Durability struct {
	AppendOnly  string // "yes", "no" or "" if unknown
	AppendFsync string // "always", "everysec", "no" or "" if unknown
	Save        string // the RDB snapshot schedule, "" for none or unknown
	Known       bool   // CONFIG GET answered
	Note        string // why the setting is unknown, if it is
}

// CanLose reports whether the server may lose writes it has acknowledged
// when it or its machine crashes: unless appendonly yes with appendfsync
// always, it may.
func (d Durability) CanLose() bool { return !(d.AppendOnly == "yes" && d.AppendFsync == "always") }

// String says in one line what the setting promises.
func (d Durability) String() string {
	switch {
	case d.AppendOnly == "yes" && d.AppendFsync == "always":
		return "appendonly yes, appendfsync always: every acknowledged sale is on disk (fsync) before the reply; it survives a crash of the server or its machine"
	case d.AppendOnly == "yes" && d.AppendFsync == "everysec":
		return "appendonly yes, appendfsync everysec: an acknowledged sale survives a crash of the server process, but a crash of its machine can lose the last second or two of sales"
	case d.AppendOnly == "yes" && d.AppendFsync == "no":
		return "appendonly yes, appendfsync no: the kernel decides when sales reach the disk; a crash of the machine can lose tens of seconds of acknowledged sales"
	case d.AppendOnly == "yes":
		return "appendonly yes, appendfsync unknown (" + d.Note + "): a crash of the machine may lose acknowledged sales"
	case d.AppendOnly == "no" && !d.Known:
		return "appendonly no (" + d.Note + "): a restart loses every sale since the last snapshot, if snapshots are on at all"
	case d.AppendOnly == "no" && d.Save != "":
		return "appendonly no, snapshots (save " + d.Save + "): a restart loses every sale since the last snapshot"
	case d.AppendOnly == "no":
		return "no persistence (appendonly no, no snapshots): a restart of the server loses the whole sale"
	}
	return "persistence unknown (" + d.Note + "): assume a restart can lose acknowledged sales"
}

// Durability asks the server for its persistence setting with CONFIG GET,
// falling back to INFO persistence where CONFIG is disabled or renamed.
func (r *Redis) Durability(ctx context.Context) (Durability, error) {
	ctx = bg(ctx)
	var d Durability
	m, err := r.client.ConfigGet(ctx, "append*").Result()
	if err == nil {
		d.AppendOnly, d.AppendFsync, d.Known = m["appendonly"], m["appendfsync"], true
		if sm, err := r.client.ConfigGet(ctx, "save").Result(); err == nil {
			d.Save = sm["save"]
		}
		return d, nil
	}
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return d, r.fail("config get", err)
	}
	d.Note = "CONFIG GET refused: " + rerr.Error()
	info, err := r.client.Info(ctx, "persistence").Result()
	if err != nil {
		return d, nil // nothing more to learn; d says unknown
	}
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && k == "aof_enabled" {
			d.AppendOnly = map[string]string{"1": "yes", "0": "no"}[v]
		}
	}
	return d, nil
}
