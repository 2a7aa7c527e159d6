package redis

import (
	"sync"

	goredis "github.com/redis/go-redis/v9"
)

// Scripts are made on first use: a file sale's buy must not pay for them
// when the process starts.
var (
	buyScript     = sync.OnceValue(func() *goredis.Script { return goredis.NewScript(serverCheck + bookCommon + buySource) })
	initScript    = sync.OnceValue(func() *goredis.Script { return goredis.NewScript(serverCheck + initSource) })
	restoreScript = sync.OnceValue(func() *goredis.Script { return goredis.NewScript(restoreSource) })
	checkScript   = sync.OnceValue(func() *goredis.Script { return goredis.NewScript(serverCheck + "return 'ok'") })
)

// serverCheck begins every script that writes: it refuses, before anything
// is written, a server that must not take the sale's writes. Its answers:
//
//	replica HOST:PORT    the server is a replica (of HOST:PORT): its writes
//	                     never reach the primary, or it refuses them
//	noreplicas N         fewer online replicas (N) than the sale waits for
//	evicting POLICY      maxmemory-policy POLICY may evict any key, the
//	                     sale's state, journal and request ids included
//
// The sale's keys carry no TTL, so the volatile-* policies never evict
// them; the allkeys-* policies do, unless allowed (flag e).
//
// ARGV[1] is a string of flags: e allows an evicting policy; R skips the
// role check (tests only: the negative control of the replica test).
// ARGV[2] is the number of replicas the sale waits for.
const serverCheck = `
local flags = ARGV[1]
local function flag(f) return string.find(flags, f, 1, true) ~= nil end
local function field(info, name) return string.match(info, '\n' .. name .. ':([^\r\n]*)') end
local repl = redis.call('INFO', 'replication')
if field(repl, 'role') ~= 'master' and not flag('R') then
  return 'replica ' .. (field(repl, 'master_host') or '?') .. ':' .. (field(repl, 'master_port') or '?')
end
local want = tonumber(ARGV[2])
if want > 0 then
  local online = 0
  for _ in string.gmatch(repl, '\nslave%d+:[^\r\n]*state=online') do online = online + 1 end
  if online < want then return 'noreplicas ' .. online end
end
if not flag('e') then
  local policy = field(redis.call('INFO', 'memory'), 'maxmemory_policy')
  if policy and string.sub(policy, 1, 8) == 'allkeys-' then return 'evicting ' .. policy end
end
local function whole(v)
  if type(v) ~= 'string' or #v > 16 or not string.match(v, '^%d+$') then return nil end
  local n = tonumber(v)
  if n > 9007199254740991 then return nil end
  return n
end
local function keytype(k, want)
  local t = redis.call('TYPE', k).ok
  if t ~= want and t ~= 'none' then return t end
  return nil
end
local function allowed(cmds)
  if not redis.acl_check_cmd or flag('A') then return nil end
  for _, c in ipairs(cmds) do
    if not redis.acl_check_cmd(unpack(c)) then return 'noperm ' .. c[1] .. ' ' .. c[2] end
  end
  return nil
end
`

// buySource is the buy, run by the server in one atomic step after
// serverCheck. It checks everything before it writes anything, because
// Redis does not undo the writes of a script that fails halfway: the
// keys' types, the state's numbers (whole, at most 2^53-1, left <= total),
// a request id already answered, and (where the server has ACLs) that the
// user may run every write it will make (Redis 7: redis.acl_check_cmd).
// Every read it makes (HMGET, HGET, TIME, XRANGE) also comes before its
// first write, so that an ACL denying one of them fails the script with
// nothing written, on Redis 6 as on 7. Its first write is the XADD, the
// only one a server out of memory refuses (the later ones it lets through
// once a script has written), so a server at its memory limit refuses the
// buy whole. Then it takes the tickets, remembers the outcome under the
// request id in the requests hash (no TTL: no eviction policy that spares
// keys without one can drop it) and forgets up to 4 request ids whose
// sales are older than the request TTL, oldest first, following the
// journal from the cursor kept in the requests hash's field ">" (no
// request id can be named so). A sold-out answer stores nothing: a retry
// of it asks again, which can never sell twice.
//
// The writes after the XADD run under pcall: one the server refuses
// anyway (an ACL on a server without acl_check_cmd) makes the script
// answer "written OUTCOME\nERROR" rather than fail, so that the sale in
// the journal is never reported as a buy that bought nothing. A script
// error is thus always one raised before anything was written.
//
// Before it decides, it releases as lapsed up to ARGV[9] holds that
// expired by the server's clock (see bookSource), and in a sale with a
// per-buyer limit it refuses a buy that would give the buyer more than the
// limit ("limit HAVE LIMIT ..."), looking up the buyer's holding in the
// holdings hash (one HGET, not a scan), which it then raises by qty.
//
// KEYS: see bookCommon. ARGV[1], ARGV[2]: see serverCheck. ARGV[3..]:
// qty, buyer, pid, time, request id, request TTL in milliseconds, the
// most lapses to record.
// Flags: T gives the requests hash a TTL, as request keys once had (tests
// only: the negative control of the eviction test); A skips the ACL check
// (tests only); L skips the limit check (tests only).
const buySource = `
local qtys, buyer, pid, now, id, ttl, bound = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9])
local bad = types()
if bad then return bad end
local S, why = loadState()
if not S then return why end
local qty = whole(qtys)
if not qty or qty < 1 then return 'invalid' end
local done = redis.call('HGET', KEYS[3], id)
if done then
  local q, b, out = string.match(done, '^([^\n]*)\n([^\n]*)\n(.*)$')
  if q ~= qtys or b ~= buyer then return 'mismatch ' .. (q or '?') .. ' ' .. (b or '?') end
  return 'replay ' .. out
end
local denied = allowed({{'XADD', KEYS[2], '*', 'seq', '1'}, {'HSET', KEYS[1], 'left', '0'},
  {'HSET', KEYS[3], id, 'x'}, {'HDEL', KEYS[3], id}, {'HDEL', KEYS[4], 'x'}, {'ZREM', KEYS[5], 'x'},
  {'HINCRBY', KEYS[6], 'x', '1'}, {'HDEL', KEYS[6], 'x'}, {'HSET', KEYS[7], 'x', 'x'}})
if denied then return denied end
-- Every read the buy makes comes before its first write: a read the
-- server refuses (an ACL without XRANGE, TIME or HGET) fails the script
-- while it has written nothing, on every Redis version.
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local hs, orphans = expiredHolds(ms, bound)
local forget, cursor, moved = oldRequests(ms, ttl, id)
local have = 0
if S.limit > 0 then have = tonumber(redis.call('HGET', KEYS[6], buyer) or '0') end
local lapsed = lapses(S, hs, ms)
for _, r in ipairs(lapsed) do if r.buyer == buyer then have = have - r.qty end end
local function state() return string.format('%d %d %d', S.left, S.total, S.version) end
local refusal
if S.left < qty then -- sold out, whatever the limit (as on a file)
  refusal = string.format('soldout 0 %s - %d', state(), S.held)
elseif S.limit > 0 and not flag('L') and qty > S.limit - have then
  refusal = string.format('limit %d %d %s %d', have, S.limit, state(), S.held)
end
if refusal then
  if #lapsed == 0 and #orphans == 0 then return refusal end
  local ok, err = pcall(function()
    writeLapses(S, hs, lapsed, orphans)
    redis.call('HSET', KEYS[1], 'left', num(S.left), 'version', num(S.version), 'held', num(S.held))
  end)
  if not ok then
    if type(err) == 'table' then err = err.err end
    if not W.wrote then return redis.error_reply(tostring(err)) end
  end
  return refusal
end
S.left = S.left - qty
S.version = S.version + 1
local l, v = num(S.left), num(S.version)
local out = string.format('ok %d %d %d %d %s %d', S.version, S.left, S.total, S.version, now, S.held)
-- The first write is an XADD (a lapse's, or the sale's): the only one a
-- server out of memory refuses. A later write the server refuses (an
-- ACL the check above could not ask: Redis 6) must not pass for a buy
-- that bought nothing: the error is caught and answered as "written".
local ok, err = pcall(function()
  writeLapses(S, hs, lapsed, orphans)
  local f = {'seq', v, 'buyer', buyer, 'qty', qtys, 'left', l}
  if S.held > 0 then table.insert(f, 'held'); table.insert(f, num(S.held)) end
  for _, x in ipairs({'pid', pid, 'time', now, 'request', id}) do table.insert(f, x) end
  redis.call('XADD', KEYS[2], '*', unpack(f))
  W.wrote = true
  redis.call('HSET', KEYS[1], 'left', l, 'version', v)
  if #lapsed > 0 then redis.call('HSET', KEYS[1], 'held', num(S.held)) end
  if S.limit > 0 then holding(S, buyer, qty) end
  redis.call('HSET', KEYS[3], id, qtys .. '\n' .. buyer .. '\n' .. out)
  if flag('T') then redis.call('PEXPIRE', KEYS[3], ttl) end
  forgetRequests(forget, cursor, moved)
end)
if not ok then
  if type(err) == 'table' then err = err.err end
  if not W.wrote then return redis.error_reply(tostring(err)) end
  return 'written ' .. out .. '\n' .. tostring(err)
end
return out
`

// initSource creates or (force) resets the sale, after serverCheck. A
// journal that holds sales is renamed to KEYS[3], never deleted, and the
// request ids of the old sale are forgotten: the new sale is a new one. A
// journal that holds sales without a state beside it is refused unless
// force: its sale lost its state (deleted, evicted), and starting it again
// would sell its tickets twice. A key of the wrong type where the state
// or the journal belongs is refused even with force: it is not the sale's,
// and is left as it is.
//
// A sale with a per-buyer limit (ARGV[6] not "0") gets the limit in its
// state hash and an init record, which keeps it, as the journal's first
// entry; the booking keys of an old sale (holds, holdings, closed holds,
// returns) are deleted with its request ids.
//
// KEYS: state hash, journal stream, archive name, requests hash, then the
// booking keys: holds, expiry, holdings, closed, returned (see bookCommon).
// ARGV[1], ARGV[2]: see serverCheck. ARGV[3..]: total, force ("1"), gen,
// limit, time.
const initSource = `
local total, force, gen, limit, now = ARGV[3], ARGV[4] == '1', ARGV[5], ARGV[6], ARGV[7]
local bad = keytype(KEYS[1], 'hash')
if bad then return 'wrongtype ' .. KEYS[1] .. ' ' .. bad end
bad = keytype(KEYS[2], 'stream')
if bad then return 'wrongtype ' .. KEYS[2] .. ' ' .. bad end
local n = 0
if redis.call('EXISTS', KEYS[2]) == 1 then n = redis.call('XLEN', KEYS[2]) end
if redis.call('EXISTS', KEYS[1]) == 1 then
  if not force then return 'exists' end
elseif n > 0 and not force then
  return 'nostate ' .. n
end
local denied = allowed({{'RENAME', KEYS[2], KEYS[3]}, {'DEL', KEYS[2]}, {'DEL', KEYS[1]}, {'DEL', KEYS[4]},
  {'HSET', KEYS[1], 'total', total}, {'XADD', KEYS[2], '*', 'seq', '0'}})
if denied then return denied end
local kept = ''
if n > 0 then
  redis.call('RENAME', KEYS[2], KEYS[3])
  kept = KEYS[3]
end
redis.call('DEL', KEYS[2], KEYS[1], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9])
redis.call('HSET', KEYS[1], 'total', total, 'left', total, 'version', '0', 'gen', gen)
if limit ~= '0' then
  redis.call('HSET', KEYS[1], 'limit', limit)
  redis.call('XADD', KEYS[2], '*', 'seq', '0', 'kind', 'init', 'left', total, 'total', total, 'limit', limit, 'time', now)
end
return 'ok ' .. kept
`

// restoreSource writes back request ids the requests hash lost (Repair),
// each only if it is still missing and after the hash's cursor (">": the
// buys forget the ids up to it). It returns how many it wrote.
//
// KEYS: requests hash. ARGV: triples of the sale's stream entry id, its
// request id and the value that answers it.
const restoreSource = `
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms) or 0, tonumber(seq) or 0
end
local cursor = redis.call('HGET', KEYS[1], '>')
local cm, cs = -1, -1
if cursor then cm, cs = parse(cursor) end
local n = 0
for i = 1, #ARGV - 2, 3 do
  local m, s = parse(ARGV[i])
  if (m > cm or (m == cm and s > cs)) and redis.call('HSETNX', KEYS[1], ARGV[i + 1], ARGV[i + 2]) == 1 then
    n = n + 1
  end
end
return n
`
