"""A ledger in Redis: budgets shared by every process on every host.

One Lua script per ``reserve`` and one per ``settle``, each a single round
trip and atomic in Redis: every applicable budget is checked and reserved all
or nothing, so parallel requests cannot all pass a budget and N replicas
share one limit instead of allowing N of it.

The admission arithmetic must run inside Redis, so ``decide()`` exists twice:
in Python (``ledgers.base``) and in Lua below (``_DECIDE``). The tests check
with hypothesis that the two agree on every input. Lua numbers are doubles:
amounts are exact below 2**53 (nano-USD: about $9 million per counter), and
integer division is corrected to be exact (``floordiv``).

Keys (``P`` = ``prefix`` + ``{tag}:``):

* ``P c:<window>:<key>`` -- a hash: settled ``s0 s1 s2``, reserved
  ``r0 r1 r2``, trip markers ``t0 t1 t2``, and for rolling windows one field
  per bucket and metric (``<start>:<metric>``).
* ``P b:<window>:<key>`` -- rolling windows only: a sorted set of bucket starts.
* ``P h:<window>:<key>`` -- a sorted set of reservations (``id|usd|tokens|calls``
  scored by expiry). A worker that crashes holds the budget until ``Ask.ttl``
  passes; then the next script to touch the counter gives it back.
* ``P op:<id>`` -- a settlement id, remembered for ``keep_ops`` (exactly-once replay).
* ``P records``, ``P outcomes`` -- streams capped near ``keep_records``.

Lifetime counters have **no TTL**: settled spend never expires while the
scope is in use (a session's spend silently reset by a TTL is how gateways
leak money). Rolling-window keys get a TTL of window + one bucket + one day,
refreshed on every write, which only removes keys whose every bucket has
already left the window.

Redis Cluster: a script may only touch keys in one hash slot, and one call's
counters span its session, feature, user and the global scope -- no per-
session tag can put them together. So every key carries the same hash tag
(``{tag}``, default from the prefix). The cost: all of one ``Breaker``'s
budget keys live on one shard, whose single thread serves every admission
(tens of thousands per second); to spread load, give independent tenants
their own prefixes.

Times: the scripts use the ``now`` the engine passes (its clock), for
windows and reservation expiry, so hosts should keep their clocks in sync
(NTP); a host whose clock runs ahead by more than ``Ask.ttl`` could give back
another's reservation early.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import timedelta
from typing import Any, Iterable

from ..budgets import bucket_seconds, parse_window
from .base import (Ask, CallRecord, Counter, Grant, Hold, LedgerBase, LedgerUnavailable, Limit, OutcomeRow, Totals,
                   Vec, new_id)

try:
    import redis as _redis
    from redis import exceptions as _rx
except ImportError:  # pragma: no cover - depends on the environment
    _HAVE_REDIS = False
else:
    _HAVE_REDIS = True

__all__ = ["Redis"]

MAX_HOLD = 86_400  # seconds a reservation may live at most; also the rolling keys' extra TTL

# --- Lua ------------------------------------------------------------------
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

local function num(c, field)
  return tonumber(redis.call('HGET', c, field) or '0')
end

local function keep(c, b, h, ms)
  if ms > 0 then
    redis.call('PEXPIRE', c, ms)
    redis.call('PEXPIRE', b, ms)
    redis.call('PEXPIRE', h, ms)
  end
end
"""

# KEYS: 3 per counter (c, b, h).
# ARGV: now, hold_id, expires, n, nl, units_max, units_min, patient, fixed0..2, per0..2,
#       then per counter: window, horizon, keep_ms; then per limit: counter (0-based), metric, limit.
_RESERVE = _LIB + r"""
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
  local s = num(c, 's' .. m)
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

# KEYS: 3 per counter, then op key, records stream.
# ARGV: now, hold_id ('' none), hold member ('' unknown amount), n, nl, a0..a2, op_ttl_ms, record ('' none),
#       keep_records, then per counter: window, horizon, keep_ms, bucket start; then per limit: counter, metric.
_SETTLE = _LIB + r"""
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
        redis.call('HINCRBY', c, 's' .. m, x)
        if win > 0 then redis.call('HINCRBY', c, ARGV[a + 4] .. ':' .. m, x) end
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
  out[j] = num(KEYS[3 * ci - 2], 's' .. m)
end
return out
"""

# KEYS: c, b, h. ARGV: metric, needed, window, horizon, now, keep_ms.
_TRIP = _LIB + r"""
expire(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[3]), ARGV[4], ARGV[5])
redis.call('HSET', KEYS[1], 't' .. ARGV[1], ARGV[2])
keep(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[6]))
return 1
"""

# KEYS: 3 per counter. ARGV: now, then per counter: window, horizon.
_READ = _LIB + r"""
local out = {}
for i = 1, #KEYS / 3 do
  local c = KEYS[3 * i - 2]
  expire(c, KEYS[3 * i - 1], KEYS[3 * i], tonumber(ARGV[2 * i]), ARGV[2 * i + 1], ARGV[1])
  local v = redis.call('HMGET', c, 's0', 's1', 's2', 'r0', 'r1', 'r2')
  for m = 1, 6 do out[#out + 1] = tonumber(v[m] or '0') end
end
return out
"""

# KEYS: op key, outcomes stream. ARGV: op_ttl_ms, json, keep_records.
_OUTCOME = r"""
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'o', ARGV[2])
end
return 1
"""

# For the tests: Lua's decide on a given state, to compare with Python's.
# ARGV: units_max, units_min, patient, fixed0..2, per0..2, nl, then per limit: metric, limit, s, r, blocked.
_DECIDE_ONLY = _LIB + r"""
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


def _errors() -> tuple[type[BaseException], ...]:
    errs: list[type[BaseException]] = [_rx.ConnectionError, _rx.TimeoutError, _rx.ReadOnlyError]
    for name in ("ClusterDownError", "TryAgainError", "MasterDownError"):
        if hasattr(_rx, name):
            errs.append(getattr(_rx, name))
    return tuple(errs)


class Redis(LedgerBase):
    """Counters, call records and outcomes in Redis (see the module docstring for the key layout).

    Args:
        url_or_client: ``"redis://host:6379/0"`` or a ``redis.Redis`` client.
            A client built here does not retry commands by itself (the
            journal in ``ledgers.resilient`` does); a client that does is
            still safe: a reservation is added once per id (``ZADD NX``) and a
            settlement once per settlement id.
        prefix: namespace of every key.
        tag: the Redis Cluster hash tag every key carries (default: the prefix
            without its trailing colon).
        keep_records: how many call records (and outcomes) to keep, approximately (0: none).
        keep_ops: how long settlement ids are remembered for exactly-once replay.
        timeout: socket timeout in seconds for a client built here.
    """

    blocking = True  # every call is a network round trip
    journal_ops = True  # settle/add_outcome take ``op=``, reserve takes ``hold_id=`` (see resilient.py)

    def __init__(
        self,
        url_or_client: Any,
        prefix: str = "breaker:",
        *,
        tag: str | None = None,
        keep_records: int = 100_000,
        keep_ops: str | timedelta | int = "7d",
        timeout: float = 5.0,
    ) -> None:
        if not _HAVE_REDIS:
            raise ImportError("breaker.ledgers.Redis needs the redis client: pip install 'agent-cost-breaker[redis]'")
        if isinstance(url_or_client, str):
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            self.client = _redis.Redis.from_url(
                url_or_client, socket_timeout=timeout, socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 0), retry_on_error=[],
            )
            where = url_or_client
        else:
            self.client = url_or_client
            kw = getattr(getattr(url_or_client, "connection_pool", None), "connection_kwargs", {})
            where = f"redis://{kw.get('host', '?')}:{kw.get('port', '?')}/{kw.get('db', 0)}"
        tag = tag if tag is not None else (prefix.rstrip(":") or "breaker")
        if "{" in tag or "}" in tag:
            raise ValueError(f"Redis(tag={tag!r}) must not contain braces")
        self.prefix = prefix
        self._p = f"{prefix}{{{tag}}}:"
        self.keep_records = int(keep_records)
        self.wants_records = self.keep_records > 0
        self.keep_ops_ms = parse_window(keep_ops, what="Redis(keep_ops)") * 1000
        self.store_id = f"{where}#{self._p}"
        self._errs = _errors()
        reg = self.client.register_script
        self._reserve, self._settle, self._trip = reg(_RESERVE), reg(_SETTLE), reg(_TRIP)
        self._read, self._outcome, self._decide_only = reg(_READ), reg(_OUTCOME), reg(_DECIDE_ONLY)

    def __repr__(self) -> str:
        return f"Redis({self.store_id!r})"

    def _run(self, script: Any, keys: list[str], args: list[Any], what: str) -> Any:
        try:
            return script(keys=keys, args=args)
        except self._errs as e:
            raise LedgerUnavailable(
                f"The Redis ledger at {self.store_id.split('#')[0]} could not {what}: {str(e).rstrip('.')}. "
                f"Check that the server is running and reachable from this host.",
                # redis-py words a failure to connect (nothing was sent) as "... connecting to ..."
                maybe_applied="connecting to" not in str(e),
            ) from e

    def _keys(self, counters: Iterable[Counter]) -> list[str]:
        p = self._p
        out = []
        for c in counters:
            name = f"{c.window}:{c.key}"
            out += [f"{p}c:{name}", f"{p}b:{name}", f"{p}h:{name}"]
        return out

    @staticmethod
    def _horizon(c: Counter, now: float) -> str:
        # Computed here, in Python floats, so a bucket leaves the window at exactly the same
        # instant as in Memory and SQLite (``bucket_start + bucket + window <= now``).
        return repr(now - c.window - bucket_seconds(c.window)) if c.window else "0"

    @staticmethod
    def _keep_ms(c: Counter) -> int:
        return (c.window + bucket_seconds(c.window) + MAX_HOLD) * 1000 if c.window else 0

    # ------------------------------------------------------------------ protocol
    def reserve(self, ask: Ask, now: float, *, hold_id: str | None = None) -> Grant:
        hid = hold_id or new_id()
        ttl = min(max(ask.ttl, 0.0), MAX_HOLD)
        args: list[Any] = [repr(now), hid, repr(now + ttl), len(ask.counters), len(ask.limits), ask.units_max,
                           ask.units_min, 1 if ask.patient else 0, *ask.fixed, *ask.per_unit]
        for c in ask.counters:
            args += [c.window, self._horizon(c, now), self._keep_ms(c)]
        for lim in ask.limits:
            args += [lim.counter, lim.metric, lim.limit]
        out = self._run(self._reserve, self._keys(ask.counters), args, "reserve a budget")
        status = out[0].decode() if isinstance(out[0], bytes) else out[0]
        grant = Grant(status, units=int(out[1]), blocked=int(out[2]), settled=tuple(int(x) for x in out[4:]),
                      reserved=int(out[3]))
        if status == "ok":
            u = grant.units
            f, p = ask.fixed, ask.per_unit
            grant.handle = Hold(hid, (f[0] + p[0] * u, f[1] + p[1] * u, f[2] + p[2] * u))
        return grant

    def settle(
        self,
        handle: Any,
        counters: tuple[Counter, ...],
        limits: tuple[Limit, ...],
        actual: Vec,
        now: float,
        record: CallRecord | None = None,
        *,
        op: str | None = None,
    ) -> tuple[int, ...]:
        """See ``Ledger.settle``. ``op`` is the settlement's idempotency id
        (default: the reservation's id): a second settle with the same id
        changes nothing and returns the current figures."""
        op = op or (handle.id if handle is not None else new_id())
        hold_id = member = ""
        if handle is not None:
            hold_id = handle.id
            if handle.amount is not None:
                member = f"{hold_id}|{handle.amount[0]}|{handle.amount[1]}|{handle.amount[2]}"
        rec = ""
        if record is not None and self.wants_records:
            rec = json.dumps(asdict(record), separators=(",", ":"))
        args: list[Any] = [repr(now), hold_id, member, len(counters), len(limits), *actual, self.keep_ops_ms, rec,
                           self.keep_records]
        for c in counters:
            b = bucket_seconds(c.window)
            args += [c.window, self._horizon(c, now), self._keep_ms(c), int(now // b) * b if c.window else 0]
        for lim in limits:
            args += [lim.counter, lim.metric]
        keys = self._keys(counters) + [f"{self._p}op:{op}", f"{self._p}records"]
        out = self._run(self._settle, keys, args, "record a settlement")
        return tuple(int(x) for x in out)

    def trip(self, counter: Counter, metric: int, needed: int, now: float) -> None:
        self._run(self._trip, self._keys([counter]),
                  [metric, needed, counter.window, self._horizon(counter, now), repr(now), self._keep_ms(counter)],
                  "set a trip marker")

    def read(self, counters: Iterable[Counter], now: float) -> list[Totals]:
        counters = list(counters)
        if not counters:
            return []
        args: list[Any] = [repr(now)]
        for c in counters:
            args += [c.window, self._horizon(c, now)]
        out = [int(x) for x in self._run(self._read, self._keys(counters), args, "read budgets")]
        return [Totals(tuple(out[6 * i:6 * i + 3]), tuple(out[6 * i + 3:6 * i + 6]))  # type: ignore[arg-type]
                for i in range(len(counters))]

    def add_outcome(self, session: str, feature: str | None, user: str | None, name: str, now: float,
                    *, op: str | None = None) -> None:
        data = json.dumps([now, session, feature, user, name], separators=(",", ":"))
        self._run(self._outcome, [f"{self._p}op:{op or new_id()}", f"{self._p}outcomes"],
                  [self.keep_ops_ms, data, max(self.keep_records, 1)], "record an outcome")

    def _stream(self, key: str, field: bytes) -> list[Any]:
        try:
            entries = self.client.xrange(f"{self._p}{key}")
        except self._errs as e:
            raise LedgerUnavailable(f"The Redis ledger at {self.store_id.split('#')[0]} could not be read: {e}") from e
        # redis-py types a stream entry's fields as optional (XAUTOCLAIM's deleted entries); XRANGE always has them.
        return [json.loads(fields[field]) for _id, fields in entries or () if fields is not None]

    def records(self, since: float | None = None) -> list[CallRecord]:
        out = [CallRecord(**d) for d in self._stream("records", b"r")]
        return [r for r in out if since is None or r.at >= since]

    def outcomes(self, since: float | None = None) -> list[OutcomeRow]:
        return [tuple(o) for o in self._stream("outcomes", b"o") if since is None or o[0] >= since]  # type: ignore[misc]

    def lua_decide(self, ask: Ask, state: list[tuple[int, int, bool]]) -> Grant:
        """Run the Lua ``decide`` on a given state (for the tests that compare it with Python's)."""
        args: list[Any] = [ask.units_max, ask.units_min, 1 if ask.patient else 0, *ask.fixed, *ask.per_unit,
                           len(ask.limits)]
        for lim, (s, r, blocked) in zip(ask.limits, state):
            args += [lim.metric, lim.limit, s, r, 1 if blocked else 0]
        out = self._run(self._decide_only, [], args, "evaluate")
        status = out[0].decode() if isinstance(out[0], bytes) else out[0]
        return Grant(status, units=int(out[1]), blocked=int(out[2]), settled=tuple(x[0] for x in state),
                     reserved=int(out[3]))

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # pragma: no cover - closing a broken connection
            pass
