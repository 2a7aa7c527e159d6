package redis

import (
	"sync"

	goredis "github.com/redis/go-redis/v9"
)

var bookScript = sync.OnceValue(func() *goredis.Script { return goredis.NewScript(serverCheck + bookCommon + bookSource) })

// bookCommon is what the scripts that change a sale share, after
// serverCheck: reading the state (with its held tickets and per-buyer
// limit), finding the holds that lapsed, recording journal entries, and
// forgetting old request ids. Every one of them takes the same keys:
//
//	KEYS[1] state hash      total, left, version, gen, held, limit
//	KEYS[2] journal stream  one entry per record, as a ticket file's journal line
//	KEYS[3] requests hash   request id -> what it asked and its outcome
//	KEYS[4] holds hash      open hold id -> qty \t expires \t expires ms \t buyer
//	KEYS[5] expiry zset     open hold id, scored by its expiry in ms (server time)
//	KEYS[6] holdings hash   buyer -> tickets bought and not returned plus held (with a limit only)
//	KEYS[7] closed hash     closed hold id -> the record that closed it
//	KEYS[8] returned hash   sale number -> tickets returned of it
//
// A record, in answers and in the closed hash, is its members joined by
// tabs in this order (empty where its kind has none): seq, kind, hold,
// sale, buyer, qty, reason, left, held, total, limit, expires, pid, time.
// A state is version, left, held, total, limit. No value holds a tab: a
// buyer name has no control characters.
const bookCommon = `
local W = {wrote = false} -- whether a write has been made: after it, errors are answered, not raised
local function num(n) return string.format('%d', n) end
local function iso(ms)
  local s = math.floor(ms / 1000)
  local frac = ms - s * 1000
  local days = math.floor(s / 86400)
  local rem = s - days * 86400
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  local out = string.format('%04d-%02d-%02dT%02d:%02d:%02d', y, m, d, math.floor(rem / 3600), math.floor((rem % 3600) / 60), rem % 60)
  if frac > 0 then out = out .. (string.gsub(string.format('.%03d', frac), '0+$', '')) end
  return out .. 'Z'
end
local function types()
  local want = {'hash', 'stream', 'hash', 'hash', 'zset', 'hash', 'hash', 'hash'}
  for i, w in ipairs(want) do
    local bad = keytype(KEYS[i], w)
    if bad then return 'wrongtype ' .. KEYS[i] .. ' ' .. bad end
  end
  return nil
end
local function loadState()
  local s = redis.call('HMGET', KEYS[1], 'total', 'left', 'version', 'held', 'limit')
  if not s[1] and not s[2] and not s[3] then
    if redis.call('EXISTS', KEYS[2]) == 1 then
      local n = redis.call('XLEN', KEYS[2])
      if n > 0 then return nil, 'nostate ' .. n end
    end
    return nil, 'nosale'
  end
  local S = {total = whole(s[1]), left = whole(s[2]), version = whole(s[3]), held = whole(s[4] or '0'), limit = whole(s[5] or '0')}
  if not S.total or not S.left or not S.version or not S.held or not S.limit or S.left + S.held > S.total then
    return nil, 'invalid'
  end
  return S
end
local function parseHold(hid, v)
  if type(v) ~= 'string' then return nil end
  local q, exp, ems, b = string.match(v, '^(%d+)\t([^\t]*)\t(%d+)\t(.*)$')
  if not q then return nil end
  return {id = hid, qty = tonumber(q), expires = exp, ms = tonumber(ems), buyer = b}
end
-- expiredHolds reads the open holds that expired by nowms, soonest first,
-- at most bound of them; members of the expiry set without their hold
-- (orphans) are returned apart, to be removed.
local function expiredHolds(nowms, bound)
  local ids = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', nowms, 'LIMIT', 0, bound)
  local hs, orphans = {}, {}
  if #ids == 0 then return hs, orphans end
  local vals = redis.call('HMGET', KEYS[4], unpack(ids))
  for i, hid in ipairs(ids) do
    local h = parseHold(hid, vals[i])
    if h then table.insert(hs, h) else table.insert(orphans, hid) end
  end
  return hs, orphans
end
local function recline(r)
  local f = {}
  for _, k in ipairs({'seq', 'kind', 'hold', 'sale', 'buyer', 'qty', 'reason', 'left', 'held', 'total', 'limit', 'expires', 'pid', 'time'}) do
    local v = r[k]
    if type(v) == 'number' then v = num(v) end
    table.insert(f, v or '')
  end
  return table.concat(f, '\t')
end
local function stateline(S)
  return table.concat({num(S.version), num(S.left), num(S.held), num(S.total), num(S.limit)}, '\t')
end
-- next completes record r as the next one of S, which it changes by
-- r's numbers: taken out of left (take), into held (hold), into total
-- (stock).
local function nextRecord(S, r, take, hold, stock)
  S.version = S.version + 1
  S.left = S.left - take
  S.held = S.held + hold
  S.total = S.total + stock
  r.seq, r.left, r.held, r.total = S.version, S.left, S.held, S.total
  return r
end
-- fields are a record's journal entry: the members its kind has, as a
-- ticket file's journal line has them, and the request id that made it.
local function fields(r, reqid)
  local f = {'seq', num(r.seq), 'kind', r.kind}
  local function add(k) if r[k] ~= nil and r[k] ~= '' then table.insert(f, k); table.insert(f, type(r[k]) == 'number' and num(r[k]) or r[k]) end end
  for _, k in ipairs({'hold', 'sale', 'buyer', 'qty', 'reason', 'left'}) do add(k) end
  if r.held > 0 then add('held') end
  add('total')
  if r.kind == 'limit' then add('limit') end
  for _, k in ipairs({'expires', 'pid', 'time'}) do add(k) end
  if reqid then table.insert(f, 'request'); table.insert(f, reqid) end
  return f
end
local function holding(S, buyer, d)
  if S.limit == 0 then return end
  if redis.call('HINCRBY', KEYS[6], buyer, d) <= 0 then redis.call('HDEL', KEYS[6], buyer) end
end
-- lapses completes the release records of the expired holds hs, in S.
local function lapses(S, hs, nowms)
  local recs = {}
  for _, h in ipairs(hs) do
    table.insert(recs, nextRecord(S, {kind = 'release', hold = h.id, buyer = h.buyer, qty = h.qty, reason = 'lapsed', time = iso(nowms)}, -h.qty, -h.qty, 0))
  end
  return recs
end
-- writeLapses records the lapses recs (their holds hs) and removes the
-- orphans of the expiry set.
local function writeLapses(S, hs, recs, orphans)
  for i, r in ipairs(recs) do
    redis.call('XADD', KEYS[2], '*', unpack(fields(r, nil)))
    W.wrote = true
    redis.call('HDEL', KEYS[4], r.hold)
    redis.call('ZREM', KEYS[5], r.hold)
    redis.call('HSET', KEYS[7], r.hold, recline(r))
    holding(S, r.buyer, -r.qty)
  end
  for _, o in ipairs(orphans) do redis.call('ZREM', KEYS[5], o) end
end
-- oldRequests reads up to 4 request ids whose records are older than ttl
-- ms, following the journal from the cursor the requests hash keeps in
-- ">", as the buy forgets them (see buySource).
local function oldRequests(ms, ttl, id)
  local cursor = redis.call('HGET', KEYS[3], '>') or '0-0'
  local forget, moved = {}, false
  for _, e in ipairs(redis.call('XRANGE', KEYS[2], '(' .. cursor, '+', 'COUNT', 4)) do
    local at = tonumber(string.match(e[1], '^(%d+)'))
    if not at or at + ttl > ms then break end
    for i = 1, #e[2] - 1, 2 do
      if e[2][i] == 'request' and e[2][i + 1] ~= id then table.insert(forget, e[2][i + 1]) end
    end
    cursor = e[1]
    moved = true
  end
  return forget, cursor, moved
end
local function forgetRequests(forget, cursor, moved)
  for _, old in ipairs(forget) do redis.call('HDEL', KEYS[3], old) end
  if moved then redis.call('HSET', KEYS[3], '>', cursor) end
end
`

// bookSource is a booking request, after serverCheck and bookCommon, in
// one atomic step: a hold, confirm, release, return, add, remove or limit
// record. As the buy, it checks and reads everything before it writes
// anything, and answers a request id it has answered before with that
// first outcome (a refusal is not stored: asked again, it is decided
// again). It first releases, as lapsed, up to ARGV[8] holds that expired
// by the server's clock (TIME), each a release record in the journal,
// then makes its own record, if it may.
//
// ARGV[1], ARGV[2]: see serverCheck. ARGV[3..]: op, time, pid, request
// id, request TTL in ms, the most lapses to record, then op's arguments:
//
//	hold     buyer, qty, duration in ms, the hold id's random suffix
//	confirm  hold id
//	release  hold id
//	return   sale number, qty (0: all it still has)
//	add      qty
//	remove   qty
//	limit    the new limit
//	settle   (none: it records the lapses alone, and answers "settled")
//
// Flags: L skips the limit check (tests only: the negative control of the
// limit race); A skips the ACL check (tests only).
//
// Its answers: "ok" (or "replay", or "first": a hold closed before, as
// it was closed), a tab, the record, a tab, the state after; or one of
// serverCheck's, "wrongtype", "nostate", "nosale", "invalid", or a
// refusal: "soldout", "limit HAVE", "above BUYER HAS", "unknownhold",
// "lapsed RECORD", "confirmed SEQ", "unknownsale", "return HAS",
// "nolimit", "toobig", "mismatch WHAT" (tab-separated, each with the
// state after the lapses recorded), or "written ANSWER\nERROR" for a
// write the server refused after the first.
const bookSource = `
local op, now, pid, id, ttl, bound = ARGV[3], ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])
local a1, a2, a3, a4 = ARGV[9] or '', ARGV[10] or '', ARGV[11] or '', ARGV[12] or ''
local bad = types()
if bad then return bad end
local S, why = loadState()
if not S then return why end
local sig = table.concat({'B', op, a1, a2, a3}, '\t')
local done = redis.call('HGET', KEYS[3], id)
if done then
  local s, out = string.match(done, '^([^\n]*)\n(.*)$')
  if s ~= sig then return 'mismatch\t' .. (string.match(s or '', '^B\t(%a+)\t') or 'buy') end
  return 'replay\t' .. out
end
local denied = allowed({{'XADD', KEYS[2], '*', 'seq', '1'}, {'HSET', KEYS[1], 'left', '0'}, {'HSET', KEYS[3], id, 'x'},
  {'HDEL', KEYS[3], id}, {'HSET', KEYS[4], 'x', 'x'}, {'HDEL', KEYS[4], 'x'}, {'ZADD', KEYS[5], '0', 'x'}, {'ZREM', KEYS[5], 'x'},
  {'HINCRBY', KEYS[6], 'x', '1'}, {'HDEL', KEYS[6], 'x'}, {'HSET', KEYS[7], 'x', 'x'}, {'HINCRBY', KEYS[8], 'x', '1'}})
if denied then return denied end
-- Every read comes before the first write.
local t = redis.call('TIME')
local nowms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local hs, orphans = expiredHolds(nowms, bound)
local forget, cursor, moved = oldRequests(nowms, ttl, id)
local target, closed, have, entry, returned, above, aboveN
if op == 'confirm' or op == 'release' then
  target = parseHold(a1, redis.call('HGET', KEYS[4], a1))
  if target and target.ms <= nowms then
    local listed = false
    for _, h in ipairs(hs) do if h.id == a1 then listed = true end end
    if not listed then table.insert(hs, target) end
  end
  if not target then closed = redis.call('HGET', KEYS[7], a1) end
elseif op == 'hold' and S.limit > 0 then
  have = tonumber(redis.call('HGET', KEYS[6], a1) or '0')
elseif op == 'limit' then
  local all = redis.call('HGETALL', KEYS[6])
  have = {}
  for i = 1, #all - 1, 2 do have[all[i]] = tonumber(all[i + 1]) end
elseif op == 'return' then
  local sale = tonumber(a1)
  if sale and sale >= 1 and sale <= S.version then
    -- The entries' ids and sequence numbers grow together: a binary
    -- search over the ids' milliseconds, then over the sequence part
    -- within one millisecond, finds sale number a1 in O(log n) reads.
    local function split(eid) local a, b = string.match(eid, '^(%d+)-(%d+)$') return tonumber(a), tonumber(b) end
    local function seqAt(start)
      local e = redis.call('XRANGE', KEYS[2], start, '+', 'COUNT', 1)[1]
      if not e then return nil end
      for i = 1, #e[2] - 1, 2 do if e[2][i] == 'seq' then return tonumber(e[2][i + 1]), e end end
      return nil, e
    end
    local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)[1]
    local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
    if first then
      local lo = split(first[1])
      local hi = split(last[1])
      while lo < hi do
        local mid = math.floor((lo + hi + 1) / 2)
        local q = seqAt(num(mid) .. '-0')
        if q and q <= sale then lo = mid else hi = mid - 1 end
      end
      local inms = redis.call('XREVRANGE', KEYS[2], num(lo) .. '-18446744073709551615', num(lo) .. '-0', 'COUNT', 1)[1]
      local l2, h2 = 0, 0
      if inms then local _, n = split(inms[1]); h2 = n end
      while l2 < h2 do
        local mid = math.floor((l2 + h2 + 1) / 2)
        local q = seqAt(num(lo) .. '-' .. num(mid))
        if q and q <= sale then l2 = mid else h2 = mid - 1 end
      end
      local q, e = seqAt(num(lo) .. '-' .. num(l2))
      if q == sale and e then
        entry = {}
        for i = 1, #e[2] - 1, 2 do entry[e[2][i]] = e[2][i + 1] end
        if entry.kind and entry.kind ~= 'confirm' then entry = nil end
      end
    end
    if entry then returned = tonumber(redis.call('HGET', KEYS[8], a1) or '0') end
  end
end
-- Decide, on the state after the lapses.
local lapsed = lapses(S, hs, nowms)
local function held(buyer)
  local n = have or 0
  for _, r in ipairs(lapsed) do if r.buyer == buyer then n = n - r.qty end end
  return n
end
local function refuse(answer)
  if #lapsed > 0 or #orphans > 0 then
    local ok, err = pcall(function() writeLapses(S, hs, lapsed, orphans); redis.call('HSET', KEYS[1], 'left', num(S.left), 'version', num(S.version), 'held', num(S.held)) end)
    if not ok then
      if type(err) == 'table' then err = err.err end
      if not W.wrote then return redis.error_reply(tostring(err)) end
      return 'written ' .. answer .. '\t' .. stateline(S) .. '\n' .. tostring(err)
    end
  end
  return answer .. '\t' .. stateline(S)
end
local rec, after
if op == 'hold' then
  local qty, dms = whole(a2), whole(a3)
  if not qty or qty < 1 or not dms or dms < 1 or not string.match(a4, '^%x%x%x%x%x%x%x%x$') then return 'invalid' end
  -- Fewer left than qty is sold out, whatever the limit (as on a file).
  if qty > S.left then return refuse('soldout') end
  if S.limit > 0 and not flag('L') and qty > S.limit - held(a1) then return refuse('limit\t' .. num(held(a1))) end
  local exp = nowms + dms
  if exp > 9007199254740991 then return refuse('toobig') end
  rec = nextRecord(S, {kind = 'hold', buyer = a1, qty = qty, expires = iso(exp), pid = pid, time = now}, qty, qty, 0)
  rec.hold = num(rec.seq) .. '-' .. a4
  after = function()
    redis.call('HSET', KEYS[4], rec.hold, num(qty) .. '\t' .. rec.expires .. '\t' .. num(exp) .. '\t' .. a1)
    redis.call('ZADD', KEYS[5], exp, rec.hold)
    holding(S, a1, qty)
  end
elseif op == 'confirm' or op == 'release' then
  for _, r in ipairs(lapsed) do
    if r.hold == a1 then return refuse('lapsed\t' .. recline(r)) end
  end
  if not target then
    if not closed then return refuse('unknownhold') end
    local seq, kind = string.match(closed, '^(%d+)\t(%a+)\t')
    if kind == 'confirm' and op == 'confirm' then return refuse('first\t' .. closed) end
    if kind == 'confirm' then return refuse('confirmed\t' .. seq) end
    return refuse('lapsed\t' .. closed)
  end
  if op == 'confirm' then
    rec = nextRecord(S, {kind = 'confirm', hold = a1, buyer = target.buyer, qty = target.qty, pid = pid, time = now}, 0, -target.qty, 0)
  else
    rec = nextRecord(S, {kind = 'release', hold = a1, buyer = target.buyer, qty = target.qty, reason = 'released', time = now}, -target.qty, -target.qty, 0)
  end
  after = function()
    redis.call('HDEL', KEYS[4], a1)
    redis.call('ZREM', KEYS[5], a1)
    redis.call('HSET', KEYS[7], a1, recline(rec))
    if op == 'release' then holding(S, target.buyer, -target.qty) end
  end
elseif op == 'return' then
  if not entry then return refuse('unknownsale') end
  local has = math.max(tonumber(entry.qty) - returned, 0)
  local qty = whole(a2)
  if not qty then return 'invalid' end
  if qty == 0 then qty = has end
  if qty > has or qty == 0 then return refuse('return\t' .. num(has)) end
  if qty > S.total - S.left - S.held then return 'invalid' end
  rec = nextRecord(S, {kind = 'return', sale = tonumber(a1), buyer = entry.buyer, qty = qty, pid = pid, time = now}, -qty, 0, 0)
  after = function()
    redis.call('HINCRBY', KEYS[8], a1, qty)
    holding(S, entry.buyer, -qty)
  end
elseif op == 'add' or op == 'remove' then
  local qty = whole(a1)
  if not qty or qty < 1 then return 'invalid' end
  if op == 'remove' then
    if qty > S.left then return refuse('soldout') end
    rec = nextRecord(S, {kind = 'remove', qty = qty, pid = pid, time = now}, qty, 0, -qty)
  else
    if qty > 9007199254740991 - S.total then return refuse('toobig') end
    rec = nextRecord(S, {kind = 'add', qty = qty, pid = pid, time = now}, -qty, 0, qty)
  end
elseif op == 'settle' then
  return refuse('settled')
elseif op == 'limit' then
  local k = whole(a1)
  if not k or k < 1 then return 'invalid' end
  if S.limit == 0 then return refuse('nolimit') end
  for b, n in pairs(have) do
    for _, r in ipairs(lapsed) do if r.buyer == b then n = n - r.qty end end
    if n > k and (not aboveN or n > aboveN or (n == aboveN and b < above)) then above, aboveN = b, n end
  end
  if above then return refuse('above\t' .. above .. '\t' .. num(aboveN)) end
  S.limit = k
  rec = nextRecord(S, {kind = 'limit', limit = k, pid = pid, time = now}, 0, 0, 0)
else
  return 'invalid'
end
local out = 'ok\t' .. recline(rec) .. '\t' .. stateline(S)
local ok, err = pcall(function()
  writeLapses(S, hs, lapsed, orphans)
  redis.call('XADD', KEYS[2], '*', unpack(fields(rec, id)))
  W.wrote = true
  if after then after() end
  redis.call('HSET', KEYS[1], 'left', num(S.left), 'version', num(S.version), 'held', num(S.held), 'total', num(S.total))
  if op == 'limit' then redis.call('HSET', KEYS[1], 'limit', num(S.limit)) end
  redis.call('HSET', KEYS[3], id, sig .. '\n' .. out)
  forgetRequests(forget, cursor, moved)
end)
if not ok then
  if type(err) == 'table' then err = err.err end
  if not W.wrote then return redis.error_reply(tostring(err)) end
  return 'written ' .. out .. '\n' .. tostring(err)
end
return out
`
