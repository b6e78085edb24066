"""The Redis ledger's Lua scripts (``ledgers.redis`` runs them; the key layout is described there).

Every script that touches budget keys takes the store's **generation key**
as its last key and the generation this process knows as its last argument,
and checks them before anything else: a store that lost its data (a restart
without persistence, ``FLUSHALL``, a failover to an empty replica) has no
generation key, and the script answers ``BREAKER_GENERATION <current>``
without writing, instead of silently counting budgets from $0 again. One
``GET`` per script: nothing measurable.

Each script costs the server what its ``redis.call`` s cost, so a script reads a
counter's hash once and writes it once (``load``, ``flush``), however many
limits and metrics it checks; in the common case (lifetime budgets) a reserve
makes three calls per counter and a settle four. Counter sums use ``bump``:
exact, and saturating at the largest integer Redis holds instead of failing a
settlement with "increment or decrement would overflow".
"""

from __future__ import annotations

__all__ = ["DECIDE_ONLY", "GENESIS", "GRANT", "MARKS", "OUTCOME", "READ", "RENEW", "RESERVE", "SETTLE", "TRIP"]

# Shared functions. ``decide`` mirrors breaker.ledgers.base.decide line by line.
#
# A script reads each counter's hash once (``load``: one HMGET of every field it may need), does its
# arithmetic on those values, and writes what changed back in one HSET (``flush``). ``bump`` keeps that
# exact: a double holds every integer below 2^53, and a sum that leaves that range goes to HINCRBY instead,
# where Redis adds the integers itself (saturating below 2^63, as the settled counters always have).
_LIB = r"""
local function floordiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then q = q - 1 elseif (q + 1) * b <= a then q = q + 1 end
  return q
end

-- lims[i] = {counter, metric, limit}; st[i] = {settled, reserved, blocked}
local function decide(lims, st, fixed, per, units_max, units_min, patient)
  local units, units_s = units_max, units_max
  local cut, over = -1, -1
  for i = 1, #lims do
    local s, r = st[i][1], st[i][2]
    if st[i][3] then return {'tripped', -1, i - 1, r} end
    local m = lims[i][2]
    local avail_s = lims[i][3] - s - fixed[m + 1]
    local pu = per[m + 1]
    local u_s, u
    if pu ~= 0 then
      u_s = floordiv(avail_s, pu)
      u = floordiv(avail_s - r, pu)
    else
      if avail_s >= 0 then u_s = units_max else u_s = -1 end
      if avail_s >= r then u = units_max else u = -1 end
    end
    if u_s < units_s then units_s = u_s; over = i - 1 end
    if u < units then units = u; cut = i - 1 end
  end
  if units_s < units_min then return {'over', -1, over, st[over + 1][2]} end
  if units < units_min or (patient and units < units_s) then return {'busy', -1, cut, st[cut + 1][2]} end
  return {'ok', units, -1, 0}
end

-- The store's generation (last key) against the one this process knows (last argument).
local function generation()
  local g = redis.call('GET', KEYS[#KEYS])
  if g ~= ARGV[#ARGV] then return redis.error_reply('BREAKER_GENERATION ' .. (g or '')) end
  return nil
end

-- A counter's fields by index: settled 1-3, reserved 4-6, granted 7-9 (an operator's grants: what counts
-- against a limit is settled minus granted), trip markers 10-12 (nil when not set), the holds hint 13 (see
-- ``expire``), then any extra fields (a rolling window's current bucket, 14-16).
local FIELDS = {'s0', 's1', 's2', 'r0', 'r1', 'r2', 'g0', 'g1', 'g2', 't0', 't1', 't2', 'x'}

-- Counter c as a table: {key, names, values, pending writes, whether the hash exists}.
local function load(c, extra)
  local names = FIELDS
  if extra then
    names = {unpack(FIELDS)}
    for _, name in ipairs(extra) do names[#names + 1] = name end
  end
  local v = redis.call('HMGET', c, unpack(names))
  local exists = false
  for k = 1, #v do
    if v[k] then exists = true end
    if k < 10 or k > 13 then v[k] = tonumber(v[k]) or 0 else v[k] = tonumber(v[k]) end
  end
  return {c, names, v, {}, exists}
end

local EXACT = 9007199254740992  -- 2^53

-- Add x to field k of counter t: queued for flush while exact, else HINCRBY (saturating below 2^63).
local function bump(t, k, x)
  if x == 0 then return end
  local v, w = t[3], t[4]
  local old = v[k]
  local new = old + x
  if old > -EXACT and old < EXACT and new > -EXACT and new < EXACT then
    v[k] = new
    w[k] = true
    return
  end
  if w[k] then redis.call('HSET', t[1], t[2][k], string.format('%d', old)); w[k] = nil end
  if new >= 9.2e18 then
    v[k] = 9223372036854775807
    redis.call('HSET', t[1], t[2][k], '9223372036854775807')
  else
    v[k] = tonumber(redis.call('HINCRBY', t[1], t[2][k], x))
  end
end

-- Lower counter t's holds hint to ``at`` (a reservation expires then).
local function hint(t, at)
  if not t[3][13] or at < t[3][13] then
    t[3][13] = at
    t[4][13] = true
  end
end

-- Write counter t's queued fields in one HSET; with ``create``, also when none is (the hash must exist).
local function flush(t, create)
  local args, v = {}, t[3]
  for k in pairs(t[4]) do
    args[#args + 1] = t[2][k]
    if k == 13 then args[#args + 1] = string.format('%.17g', v[k]) else args[#args + 1] = string.format('%d', v[k]) end
  end
  if #args == 0 then
    if not create then return end
    args = {'s0', string.format('%d', v[1])}
  end
  redis.call('HSET', t[1], unpack(args))
end

-- A reservation set's member: 'id|usd|tokens|calls'.
local function amounts(member)
  local _, a0, a1, a2 = string.match(member, '^([^|]*)|(-?%d+)|(-?%d+)|(-?%d+)$')
  return tonumber(a0), tonumber(a1), tonumber(a2)
end

-- Give back one reservation's amounts on counter t.
local function unhold(t, member)
  local a0, a1, a2 = amounts(member)
  bump(t, 4, 0 - a0)
  bump(t, 5, 0 - a1)
  bump(t, 6, 0 - a2)
end

-- A counter's reservations are looked at (for expired ones) at least this often, in seconds of the callers'
-- clock: the bound on how late one written without the hint (by an older version) is given back.
local RESCAN = 60

-- Drop buckets that left the window (b: a rolling window's bucket starts) and reservations that expired
-- (h). The hint (field x, never later than the earliest expiry in h) says when h needs a look at all, so
-- a call whose counters hold no expired reservation reads no sorted set. Times are numbers here, written
-- with 17 digits where Redis reads them (a double's every digit: the same instant as the caller's).
local function expire(t, b, h, win, horizon, now)
  if win > 0 then
    local until_ = string.format('%.17g', horizon)
    local starts = redis.call('ZRANGEBYSCORE', b, '-inf', until_)
    if #starts > 0 then
      for _, st in ipairs(starts) do
        local v = redis.call('HMGET', t[1], st .. ':0', st .. ':1', st .. ':2')
        for m = 1, 3 do bump(t, m, 0 - (tonumber(v[m]) or 0)) end
        redis.call('HDEL', t[1], st .. ':0', st .. ':1', st .. ':2')
      end
      redis.call('ZREMRANGEBYSCORE', b, '-inf', until_)
    end
  end
  local x = t[3][13]
  if x and x > now then return end
  local at = string.format('%.17g', now)
  local held = redis.call('ZRANGEBYSCORE', h, '-inf', at)
  if #held > 0 then
    for _, member in ipairs(held) do unhold(t, member) end
    redis.call('ZREMRANGEBYSCORE', h, '-inf', at)
  end
  local first = redis.call('ZRANGE', h, 0, 0, 'WITHSCORES')
  if first[2] or t[5] then  -- (no hint is written on a counter that does not exist)
    t[3][13] = nil
    hint(t, now + RESCAN)
    if first[2] then hint(t, tonumber(first[2])) end
  end
end

local function keep(ms, ...)
  if ms > 0 then
    for _, key in ipairs({...}) do redis.call('PEXPIRE', key, string.format('%d', ms)) end
  end
end

local bad = generation()
if bad then return bad end
"""

# KEYS: c and h of each counter, then b of each counter with a rolling window, then the generation key.
# ARGV[1] (a JSON array of numbers: one argument is cheaper to send, and to read in Lua, than thirty):
#          now, expires, units_max, units_min, patient, fixed0..2, per0..2, n, nl, then per counter: window, horizon, keep_ms; then per limit: counter (0-based), metric, limit. ARGV[2]: the hold id.
#          ARGV[3]: the generation.
# Returns one string, 'status units blocked reserved settled...' (a settled figure per limit): one bulk
# reply is read faster by the client than an array of numbers, each its own reply.
RESERVE = _LIB + r"""
local a = cjson.decode(ARGV[1])
local now = a[1]
local units_max, units_min, patient = a[3], a[4], a[5] == 1
local fixed = {a[6], a[7], a[8]}
local per = {a[9], a[10], a[11]}
local n, nl = a[12], a[13]
local ctr, wins, bs = {}, {}, {}
local nb = 2 * n
for i = 1, n do
  local o = 13 + (i - 1) * 3
  wins[i] = a[o + 1]
  if wins[i] > 0 then nb = nb + 1; bs[i] = KEYS[nb] end
  ctr[i] = load(KEYS[2 * i - 1])
  expire(ctr[i], bs[i], KEYS[2 * i], wins[i], a[o + 2], now)
end
local lims, st, kept = {}, {}, {}
local base = 13 + n * 3
for j = 1, nl do
  local o = base + (j - 1) * 3
  local ci, m, limit = a[o + 1] + 1, a[o + 2], a[o + 3]
  lims[j] = {ci, m, limit}
  local v = ctr[ci][3]
  local s = v[1 + m] - v[7 + m]
  local blocked = false
  local t = v[10 + m]
  if t then
    blocked = wins[ci] == 0 or s + t > limit
    if blocked then kept[ci * 3 + m] = true end
  end
  st[j] = {s, v[4 + m], blocked}
end
-- a window's marker is lifted once every limit on it has room (as Memory)
for j = 1, nl do
  local ci, m = lims[j][1], lims[j][2]
  local v = ctr[ci][3]
  if v[10 + m] and not kept[ci * 3 + m] then
    redis.call('HDEL', ctr[ci][1], 't' .. m)
    v[10 + m] = nil
  end
end
local g = decide(lims, st, fixed, per, units_max, units_min, patient)
if g[1] == 'ok' then
  local u = g[2]
  local amount = {fixed[1] + per[1] * u, fixed[2] + per[2] * u, fixed[3] + per[3] * u}
  local member = ARGV[2] .. '|' .. string.format('%d', amount[1]) .. '|' .. string.format('%d', amount[2]) ..
                 '|' .. string.format('%d', amount[3])
  for i = 1, n do
    -- NX: a script run twice (a client retry) must not hold twice.
    if redis.call('ZADD', KEYS[2 * i], 'NX', string.format('%.17g', a[2]), member) == 1 then
      for m = 1, 3 do bump(ctr[i], 3 + m, amount[m]) end
      hint(ctr[i], a[2])
    end
  end
end
for i = 1, n do
  flush(ctr[i], g[1] == 'ok')
  if bs[i] then keep(a[13 + i * 3], KEYS[2 * i - 1], KEYS[2 * i], bs[i]) end
end
local out = {g[1], string.format('%d', g[2]), string.format('%d', g[3]), string.format('%d', g[4])}
for j = 1, nl do out[4 + j] = string.format('%d', st[j][1]) end
return table.concat(out, ' ')
"""

# KEYS: c and h of each counter, then b of each counter with a rolling window, then the op key, the records
# stream, the generation key.
# ARGV[1] (a JSON array of numbers): now, n, nl, a0..a2, op_ttl_ms, keep_records, then per counter: window,
#          horizon, keep_ms, bucket start; then per limit: counter, metric. ARGV[2]: the hold id ('' none); ARGV[3]: the hold's member
#          ('' when its amount is unknown); ARGV[4]: the call record ('' none); ARGV[5]: the generation.
# Returns one string: each limit's settled figure (as RESERVE's answer).
SETTLE = _LIB + r"""
local a = cjson.decode(ARGV[1])
local now = a[1]
local n, nl = a[2], a[3]
local actual = {a[4], a[5], a[6]}
local opkey, stream = KEYS[#KEYS - 2], KEYS[#KEYS - 1]
local fresh = redis.call('SET', opkey, '1', 'NX', 'PX', string.format('%d', a[7]))
local hold_id, member = ARGV[2], ARGV[3]
local any = actual[1] ~= 0 or actual[2] ~= 0 or actual[3] ~= 0
local ctr = {}
local nb = 2 * n
for i = 1, n do
  local o = 8 + (i - 1) * 4
  local c, h, b = KEYS[2 * i - 1], KEYS[2 * i], nil
  local win, start = a[o + 1], string.format('%d', a[o + 4])
  if win > 0 then nb = nb + 1; b = KEYS[nb] end
  local t
  if win > 0 and fresh and any then t = load(c, {start .. ':0', start .. ':1', start .. ':2'}) else t = load(c) end
  ctr[i] = t
  expire(t, b, h, win, a[o + 2], now)
  if fresh then
    if hold_id ~= '' then
      if member == '' then  -- the amount is unknown (the reserve's answer was lost): find it by id
        local cursor = '0'
        repeat
          local res = redis.call('ZSCAN', h, cursor, 'MATCH', hold_id .. '|*', 'COUNT', 1000)
          cursor = res[1]
          for k = 1, #res[2], 2 do member = res[2][k] end
        until cursor == '0'
      end
      if member ~= '' and redis.call('ZREM', h, member) == 1 then unhold(t, member) end
      if ARGV[3] == '' then member = '' end
    end
    for m = 1, 3 do
      bump(t, m, actual[m])
      if win > 0 then bump(t, 13 + m, actual[m]) end
    end
    if win > 0 and any then redis.call('ZADD', b, start, start) end
    if b then keep(a[o + 3], c, h, b) end
  end
  flush(t, fresh)
end
if fresh and ARGV[4] ~= '' then
  redis.call('XADD', stream, 'MAXLEN', '~', string.format('%d', a[8]), '*', 'r', ARGV[4])
end
local out = {}
local base = 8 + n * 4
for j = 1, nl do
  local v, m = ctr[a[base + 2 * j - 1] + 1][3], a[base + 2 * j]
  out[j] = string.format('%d', v[1 + m] - v[7 + m])
end
return table.concat(out, ' ')
"""

# KEYS: c, h, b (a rolling window's only), the trips index, the generation key.
# ARGV: metric, needed, window, horizon, now, keep_ms, index member ("<window>|<key>"), the generation.
# The marker's time goes in field a<metric>; the index (a sorted set by time) is what ``breaker trips`` lists.
TRIP = _LIB + r"""
local win = tonumber(ARGV[3])
local t = load(KEYS[1])
expire(t, KEYS[3], KEYS[2], win, tonumber(ARGV[4]), tonumber(ARGV[5]))
flush(t)
redis.call('HSET', KEYS[1], 't' .. ARGV[1], ARGV[2], 'a' .. ARGV[1], ARGV[5])
redis.call('ZADD', KEYS[#KEYS - 1], ARGV[5], ARGV[7])
if win > 0 then keep(tonumber(ARGV[6]), KEYS[1], KEYS[2], KEYS[3]) end
return 1
"""

# An operator's grant (``ledgers.base``). KEYS: the scope's counters (c keys), the grants stream, the trips
# index, the generation key. ARGV: n, g0..g2, grant json, keep, then per counter: window, index member;
# then the generation. Returns {counters granted, markers lifted}.
GRANT = _LIB + r"""
local n = tonumber(ARGV[1])
local raised, lifted = 0, 0
for i = 1, n do
  local t = load(KEYS[i])
  for m = 10, 12 do
    if t[3][m] then lifted = lifted + 1 end
  end
  redis.call('HDEL', KEYS[i], 't0', 't1', 't2', 'a0', 'a1', 'a2')
  redis.call('ZREM', KEYS[n + 2], ARGV[6 + 2 * i])
  if tonumber(ARGV[5 + 2 * i]) == 0 then
    for m = 0, 2 do bump(t, 7 + m, tonumber(ARGV[2 + m])) end
    flush(t, true)
    raised = raised + 1
  end
end
redis.call('XADD', KEYS[n + 1], 'MAXLEN', '~', ARGV[6], '*', 'g', ARGV[5], 'c', raised, 'l', lifted)
return {raised, lifted}
"""

# Trip markers of counters. KEYS: c keys, the generation key. Returns per counter s0..2, t0..2, g0..2, a0..2
# ('' for a field not set).
MARKS = _LIB + r"""
local out = {}
for i = 1, #KEYS - 1 do
  local v = redis.call('HMGET', KEYS[i], 's0', 's1', 's2', 't0', 't1', 't2', 'g0', 'g1', 'g2', 'a0', 'a1', 'a2')
  for f = 1, 12 do out[#out + 1] = v[f] or '' end
end
return out
"""

# KEYS: c and h of each counter, then b of each counter with a rolling window, then the generation key.
# ARGV[1] (a JSON array of numbers): now, then per counter: window, horizon. ARGV[2]: the generation.
READ = _LIB + r"""
local a = cjson.decode(ARGV[1])
local now = a[1]
local out = {}
local n = (#a - 1) / 2
local nb = 2 * n
for i = 1, n do
  local win, b = a[2 * i], nil
  if win > 0 then nb = nb + 1; b = KEYS[nb] end
  local t = load(KEYS[2 * i - 1])
  expire(t, b, KEYS[2 * i], win, a[2 * i + 1], now)
  flush(t)
  for m = 1, 9 do out[#out + 1] = t[3][m] end
end
return out
"""

# KEYS: op key, outcomes stream, the generation key. ARGV: op_ttl_ms, json, keep_records, the generation.
OUTCOME = r"""
local g = redis.call('GET', KEYS[3])
if g ~= ARGV[4] then return redis.error_reply('BREAKER_GENERATION ' .. (g or '')) end
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'o', ARGV[2])
end
return 1
"""

# Push back the expiry of live calls' reservations (ledgers.renewal); only those still held.
# KEYS: each hold's reservation sets (h keys) in turn, the generation key.
# ARGV: number of holds, then per hold: member, new expiry, how many keys are its; then the generation.
# Returns, per hold, 1 if it was still held.
RENEW = _LIB + r"""
local a, k, out = 2, 1, {}
for i = 1, tonumber(ARGV[1]) do
  local member, expires, nk = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
  a = a + 3
  local found = 0
  for j = 1, nk do
    if redis.call('ZSCORE', KEYS[k], member) then
      redis.call('ZADD', KEYS[k], 'XX', expires, member)
      found = 1
    end
    k = k + 1
  end
  out[i] = found
end
return out
"""

# The generation at first use: the one stored, or ARGV[1] stored as the first.
GENESIS = r"""
local g = redis.call('GET', KEYS[1])
if g then return g end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
"""

# For the tests: Lua's decide on a given state, to compare with Python's.
# ARGV: units_max, units_min, patient, fixed0..2, per0..2, nl, then per limit: metric, limit, s, r, blocked.
DECIDE_ONLY = _LIB.replace("local bad = generation()\nif bad then return bad end\n", "") + r"""
local nl = tonumber(ARGV[10])
local lims, st = {}, {}
for j = 1, nl do
  local a = 10 + (j - 1) * 5
  lims[j] = {0, tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])}
  st[j] = {tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]), ARGV[a + 5] == '1'}
end
return decide(lims, st, {tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])},
  {tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])}, tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3] == '1')
"""
