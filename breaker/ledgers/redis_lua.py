"""The Redis ledger's Lua scripts (``ledgers.redis`` runs them; the key layout is described there).

Every script that touches budget keys takes the store's **generation key**
as its last key and the generation this process knows as its last argument,
and checks them before anything else: a store that lost its data (a restart
without persistence, ``FLUSHALL``, a failover to an empty replica) has no
generation key, and the script answers ``BREAKER_GENERATION <current>``
without writing, instead of silently counting budgets from $0 again. One
``GET`` per script: nothing measurable.

Counter sums use ``add``, which saturates at the largest integer Redis holds
instead of failing a settlement with "increment or decrement would overflow".
"""

from __future__ import annotations

__all__ = ["DECIDE_ONLY", "GENESIS", "GRANT", "MARKS", "OUTCOME", "READ", "RENEW", "RESERVE", "SETTLE", "TRIP"]

# Shared functions. ``decide`` mirrors breaker.ledgers.base.decide line by line.
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

local function num(c, field)
  return tonumber(redis.call('HGET', c, field) or '0')
end

-- What counts against a limit: settled minus an operator's grants (fields g0..g2).
local function net(c, m)
  local v = redis.call('HMGET', c, 's' .. m, 'g' .. m)
  return tonumber(v[1] or '0') - tonumber(v[2] or '0')
end

-- HINCRBY that saturates below 2^63 (the amounts themselves are kept below 2^53 by the caller).
local function add(c, field, x)
  if x == 0 then return end
  if num(c, field) + x >= 9.2e18 then
    redis.call('HSET', c, field, '9223372036854775807')
  else
    redis.call('HINCRBY', c, field, x)
  end
end

-- Drop buckets that left the window and reservations that expired.
local function expire(c, b, h, win, horizon, now)
  if win > 0 then
    local starts = redis.call('ZRANGEBYSCORE', b, '-inf', horizon)
    if #starts > 0 then
      for _, st in ipairs(starts) do
        local v = redis.call('HMGET', c, st .. ':0', st .. ':1', st .. ':2')
        for m = 0, 2 do
          local x = tonumber(v[m + 1]) or 0
          if x ~= 0 then redis.call('HINCRBY', c, 's' .. m, 0 - x) end
        end
        redis.call('HDEL', c, st .. ':0', st .. ':1', st .. ':2')
      end
      redis.call('ZREMRANGEBYSCORE', b, '-inf', horizon)
    end
  end
  local held = redis.call('ZRANGEBYSCORE', h, '-inf', now)
  if #held > 0 then
    for _, member in ipairs(held) do
      local _, a0, a1, a2 = string.match(member, '^([^|]*)|(-?%d+)|(-?%d+)|(-?%d+)$')
      redis.call('HINCRBY', c, 'r0', 0 - tonumber(a0))
      redis.call('HINCRBY', c, 'r1', 0 - tonumber(a1))
      redis.call('HINCRBY', c, 'r2', 0 - tonumber(a2))
    end
    redis.call('ZREMRANGEBYSCORE', h, '-inf', now)
  end
end

local function keep(c, b, h, ms)
  if ms > 0 then
    redis.call('PEXPIRE', c, ms)
    redis.call('PEXPIRE', b, ms)
    redis.call('PEXPIRE', h, ms)
  end
end

local bad = generation()
if bad then return bad end
"""

# KEYS: 3 per counter (c, b, h), then the generation key.
# ARGV: now, hold_id, expires, n, nl, units_max, units_min, patient, fixed0..2, per0..2,
#       then per counter: window, horizon, keep_ms; then per limit: counter (0-based), metric, limit;
#       then the generation.
RESERVE = _LIB + r"""
local now = tonumber(ARGV[1])
local n, nl = tonumber(ARGV[4]), tonumber(ARGV[5])
local units_max, units_min, patient = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8] == '1'
local fixed = {tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])}
local per = {tonumber(ARGV[12]), tonumber(ARGV[13]), tonumber(ARGV[14])}
local wins, keeps = {}, {}
for i = 1, n do
  local a = 14 + (i - 1) * 3
  wins[i] = tonumber(ARGV[a + 1])
  keeps[i] = tonumber(ARGV[a + 3])
  expire(KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i], wins[i], ARGV[a + 2], ARGV[1])
end
local lims, st = {}, {}
local base = 14 + n * 3
for j = 1, nl do
  local a = base + (j - 1) * 3
  local ci, m, limit = tonumber(ARGV[a + 1]) + 1, tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  lims[j] = {ci, m, limit}
  local c = KEYS[3 * ci - 2]
  local s = net(c, m)
  local blocked = false
  local t = redis.call('HGET', c, 't' .. m)
  if t then
    if wins[ci] > 0 and s + tonumber(t) <= limit then
      redis.call('HDEL', c, 't' .. m)
    else
      blocked = true
    end
  end
  st[j] = {s, num(c, 'r' .. m), blocked}
end
local g = decide(lims, st, fixed, per, units_max, units_min, patient)
if g[1] == 'ok' then
  local u = g[2]
  local a0, a1, a2 = fixed[1] + per[1] * u, fixed[2] + per[2] * u, fixed[3] + per[3] * u
  local member = ARGV[2] .. '|' .. string.format('%d', a0) .. '|' .. string.format('%d', a1) .. '|' ..
                 string.format('%d', a2)
  for i = 1, n do
    local c, h = KEYS[3 * i - 2], KEYS[3 * i]
    -- NX: a script run twice (a client retry) must not hold twice.
    if redis.call('ZADD', h, 'NX', ARGV[3], member) == 1 then
      redis.call('HINCRBY', c, 'r0', a0)
      redis.call('HINCRBY', c, 'r1', a1)
      redis.call('HINCRBY', c, 'r2', a2)
    end
  end
end
for i = 1, n do keep(KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i], keeps[i]) end
local out = {g[1], g[2], g[3], g[4]}
for j = 1, nl do out[4 + j] = st[j][1] end
return out
"""

# KEYS: 3 per counter, then op key, records stream, the generation key.
# ARGV: now, hold_id ('' none), hold member ('' unknown amount), n, nl, a0..a2, op_ttl_ms, record ('' none),
#       keep_records, then per counter: window, horizon, keep_ms, bucket start; then per limit: counter, metric;
#       then the generation.
SETTLE = _LIB + r"""
local n, nl = tonumber(ARGV[4]), tonumber(ARGV[5])
local actual = {tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])}
local opkey, stream = KEYS[3 * n + 1], KEYS[3 * n + 2]
local fresh = redis.call('SET', opkey, '1', 'NX', 'PX', ARGV[9])
local hold_id, member = ARGV[2], ARGV[3]
for i = 1, n do
  local a = 11 + (i - 1) * 4
  local c, b, h = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local win = tonumber(ARGV[a + 1])
  expire(c, b, h, win, ARGV[a + 2], ARGV[1])
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
      if member ~= '' and redis.call('ZREM', h, member) == 1 then
        local _, a0, a1, a2 = string.match(member, '^([^|]*)|(-?%d+)|(-?%d+)|(-?%d+)$')
        redis.call('HINCRBY', c, 'r0', 0 - tonumber(a0))
        redis.call('HINCRBY', c, 'r1', 0 - tonumber(a1))
        redis.call('HINCRBY', c, 'r2', 0 - tonumber(a2))
      end
      if ARGV[3] == '' then member = '' end
    end
    for m = 0, 2 do
      local x = actual[m + 1]
      if x ~= 0 then
        add(c, 's' .. m, x)
        if win > 0 then add(c, ARGV[a + 4] .. ':' .. m, x) end
      end
    end
    if win > 0 and (actual[1] ~= 0 or actual[2] ~= 0 or actual[3] ~= 0) then
      redis.call('ZADD', b, ARGV[a + 4], ARGV[a + 4])
    end
    if redis.call('EXISTS', c) == 0 then redis.call('HSET', c, 's0', 0) end
    keep(c, b, h, tonumber(ARGV[a + 3]))
  end
end
if fresh and ARGV[10] ~= '' then
  redis.call('XADD', stream, 'MAXLEN', '~', ARGV[11], '*', 'r', ARGV[10])
end
local out = {}
local base = 11 + n * 4
for j = 1, nl do
  local ci, m = tonumber(ARGV[base + 2 * j - 1]) + 1, ARGV[base + 2 * j]
  out[j] = net(KEYS[3 * ci - 2], m)
end
return out
"""

# KEYS: c, b, h, the trips index, the generation key.
# ARGV: metric, needed, window, horizon, now, keep_ms, index member ("<window>|<key>"), the generation.
# The marker's time goes in field a<metric>; the index (a sorted set by time) is what ``breaker trips`` lists.
TRIP = _LIB + r"""
expire(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[3]), ARGV[4], ARGV[5])
redis.call('HSET', KEYS[1], 't' .. ARGV[1], ARGV[2], 'a' .. ARGV[1], ARGV[5])
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[7])
keep(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[6]))
return 1
"""

# An operator's grant (``ledgers.base``). KEYS: the scope's counters (c keys), the grants stream, the trips
# index, the generation key. ARGV: n, g0..g2, grant json, keep, then per counter: window, index member;
# then the generation. Returns {counters granted, markers lifted}.
GRANT = _LIB + r"""
local n = tonumber(ARGV[1])
local raised, lifted = 0, 0
for i = 1, n do
  local c = KEYS[i]
  for m = 0, 2 do
    if redis.call('HEXISTS', c, 't' .. m) == 1 then lifted = lifted + 1 end
  end
  redis.call('HDEL', c, 't0', 't1', 't2', 'a0', 'a1', 'a2')
  redis.call('ZREM', KEYS[n + 2], ARGV[6 + 2 * i])
  if tonumber(ARGV[5 + 2 * i]) == 0 then
    for m = 0, 2 do add(c, 'g' .. m, tonumber(ARGV[2 + m])) end
    if redis.call('EXISTS', c) == 0 then redis.call('HSET', c, 's0', 0) end
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

# KEYS: 3 per counter, the generation key. ARGV: now, then per counter: window, horizon; the generation.
READ = _LIB + r"""
local out = {}
for i = 1, (#KEYS - 1) / 3 do
  local c = KEYS[3 * i - 2]
  expire(c, KEYS[3 * i - 1], KEYS[3 * i], tonumber(ARGV[2 * i]), ARGV[2 * i + 1], ARGV[1])
  local v = redis.call('HMGET', c, 's0', 's1', 's2', 'r0', 'r1', 'r2', 'g0', 'g1', 'g2')
  for m = 1, 9 do out[#out + 1] = tonumber(v[m] or '0') end
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
