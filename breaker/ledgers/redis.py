"""A ledger in Redis: budgets shared by every process on every host.

One Lua script per ``reserve`` and one per ``settle`` (``ledgers.redis_lua``),
each a single round trip and atomic in Redis: every applicable budget is
checked and reserved all or nothing, so parallel requests cannot all pass a
budget and N replicas share one limit instead of allowing N of it.

The admission arithmetic must run inside Redis, so ``decide()`` exists twice:
in Python (``ledgers.base``) and in Lua. The tests check with hypothesis that
the two agree on every input. Lua numbers are doubles: amounts are exact
below 2**53 (nano-USD: about $9 million per counter), and integer division is
corrected to be exact (``floordiv``). A call's output cap is lowered so that
its worst case stays below 2**53 (refused before the call, ``LedgerDataError``,
if even its input does not fit); settled counters saturate below 2**63.

Keys (``P`` = ``prefix`` + ``{tag}:``):

* ``P c:<window>:<key>`` -- a hash: settled ``s0 s1 s2``, reserved
  ``r0 r1 r2``, trip markers ``t0 t1 t2``, the holds hint ``x`` (no
  reservation in ``h`` expires before it: until then a script reads no
  sorted set; see ``redis_lua.expire``), and for rolling windows one field
  per bucket and metric (``<start>:<metric>``).
* ``P b:<window>:<key>`` -- rolling windows only: a sorted set of bucket starts.
* ``P h:<window>:<key>`` -- a sorted set of reservations (``id|usd|tokens|calls``
  scored by expiry). A worker that crashes holds the budget until its
  ``hold_ttl`` passes (a live call's is renewed, ``ledgers.renewal``); then
  the next script to touch the counter gives it back.
* ``P op:<id>`` -- a settlement id, remembered for ``keep_ops`` (exactly-once replay).
* ``P records``, ``P outcomes``, ``P grants`` -- streams capped near ``keep_records``.
* ``P trips`` -- a sorted set of the counters that were tripped (``<window>|<key>``, by time), for
  ``breaker trips``; the marker itself (``t<metric>``, its time ``a<metric>``) is in the counter's
  hash. An operator's grants are the hash's ``g0 g1 g2`` (``ledgers.base``).
* ``P gen`` -- the store's generation: a random id written at first use and
  checked by every script, so a store that lost its data is noticed.

Lifetime counters have **no TTL**: settled spend never expires while the
scope is in use (a session's spend silently reset by a TTL is how gateways
leak money). Rolling-window keys get a TTL of window + one bucket + one day,
refreshed on every write, which only removes keys whose every bucket has
already left the window.

**What the server must keep.** Budgets are only as durable as Redis is:

* ``maxmemory-policy noeviction``. Any other policy can delete budget keys
  (``allkeys-*`` any key; ``volatile-*`` the rolling-window counters and the
  settlement ids, which carry TTLs), so the ledger refuses it at first use
  (``LedgerMisconfigured``). A full Redis under ``noeviction`` refuses writes:
  an outage, ridden out by the journal.
* Persistence, if budgets must survive a Redis restart: ``appendonly yes``
  with ``appendfsync everysec`` loses at most about a second of settlements
  in a crash (``always``: none); RDB snapshots alone lose everything since
  the last snapshot. A replica promoted after a failover may lack the last
  writes it had not received. A loss of *everything* (a restart without
  persistence, ``FLUSHALL``, a failover to an empty replica) is detected: the
  generation key is gone, every process that had seen it reports one
  ``ledger_error`` event and treats the store as unavailable
  (``on_ledger_error`` applies) instead of counting from $0, until the data
  is restored (then journals are replayed), or until a new generation is
  started: by ``Redis.accept_data_loss()``, or by a process that never saw
  the old one starting against the empty store (it cannot tell an empty
  store from a new one). A *partial* loss (the last second of an AOF) is not
  detected.

Redis Cluster: a script may only touch keys in one hash slot, and one call's
counters span its session, feature, user and the global scope -- no per-
session tag can put them together. So every key carries the same hash tag
(``{tag}``, default from the prefix). The cost: all of one ``Breaker``'s
budget keys live on one shard, whose single thread serves every admission
(tens of thousands per second); to spread load, give independent tenants
their own prefixes. A ``redis://`` URL naming any node of a cluster is opened
as a cluster client (``redis.cluster.RedisCluster``) at first use; a plain
client given for a cluster node is refused with a message saying so.

Times: the scripts use the ``now`` the engine passes (its clock), for
windows and reservation expiry, so hosts should keep their clocks in sync
(NTP); a host whose clock runs ahead by more than two thirds of ``hold_ttl``
could give back another's reservation early.

Credentials never leave in text: ``repr``, ``store_id`` and every message
show the URL with its password replaced by ``***`` (``breaker.redact``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import timedelta
from typing import Any, Iterable, Sequence

from ..budgets import bucket_seconds, parse_window
from ..forks import after_fork
from ..checks import seconds as checked_seconds
from ..checks import whole
from ..redact import scrub
from . import redis_lua as lua
from .base import (Ask, CallRecord, Counter, Grant, GrantRecord, Hold, LedgerBase, LedgerMisconfigured,
                   LedgerUnavailable, Limit, OutcomeRow, Totals, TripMark, Vec, fit, in_scope, new_id, record_dict, seconds,
                   storable, storable_counters, storable_record, unstorable, unstorable_key)
from .redis_checks import classify, refuse_eviction, require_deadline, server_facts

try:
    import redis as _redis
    from redis import exceptions as _rx

    from .redis_wire import Wire
except ImportError:  # pragma: no cover - depends on the environment
    _HAVE_REDIS = False
else:
    _HAVE_REDIS = True

__all__ = ["MAX_EXACT", "Redis"]

log = logging.getLogger("breaker")

MAX_HOLD = 86_400  # seconds a reservation may live at most; also the rolling keys' extra TTL
MAX_EXACT = 2**53 - 1
"""The largest amount the scripts count exactly (Lua numbers are doubles)."""

_GENERATION = "BREAKER_GENERATION"
_RECHECK = 300.0  # seconds between checks of the server's setup (two INFO round trips)


class Redis(LedgerBase):
    """Counters, call records and outcomes in Redis (see the module docstring for the key layout).

    Args:
        url_or_client: ``"redis://host:6379/0"`` (any node of a Redis Cluster
            works too) or a ``redis.Redis`` / ``redis.cluster.RedisCluster``
            client, which must have a ``socket_timeout``. A client built here
            does not retry commands by itself (the journal in
            ``ledgers.resilient`` does); a client that does is still safe: a
            reservation is added once per id (``ZADD NX``) and a settlement
            once per settlement id.
        prefix: namespace of every key.
        tag: the Redis Cluster hash tag every key carries (default: the prefix
            without its trailing colon).
        keep_records: how many call records (and outcomes) to keep, approximately (0: none).
        keep_ops: how long settlement ids are remembered for exactly-once replay.
        timeout: socket timeout in seconds for a client built here.
        hold_ttl: seconds (or ``"10m"``) an unsettled reservation holds the
            budget unless renewed; see ``SQLite``.
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
        hold_ttl: str | timedelta | float = 600.0,
    ) -> None:
        if not _HAVE_REDIS:
            raise ImportError("breaker.ledgers.Redis needs the redis client: pip install 'agent-cost-breaker[redis]'")
        self.timeout = checked_seconds("timeout", timeout, owner="Redis", high=3600, zero=False)
        if isinstance(url_or_client, str):
            self._url: str | None = url_or_client
            self.client: Any = _redis.Redis.from_url(url_or_client, **self._client_options())
            # its pool is the ledger's own: the scripts go on the lean path (``redis_wire``)
            self._wire: Wire | None = Wire(self.client.connection_pool, self._load)
            where = url_or_client
        else:
            require_deadline(url_or_client)
            self._url = None
            self.client = url_or_client
            self._wire = None  # its own retries, pool and hooks: redis-py's path
            kw = getattr(getattr(url_or_client, "connection_pool", None), "connection_kwargs", {})
            where = f"redis://{kw.get('host', '?')}:{kw.get('port', '?')}/{kw.get('db', 0)}"
        tag = tag if tag is not None else (prefix.rstrip(":") or "breaker")
        if "{" in tag or "}" in tag:
            raise ValueError(f"Redis(tag={tag!r}) must not contain braces")
        self.prefix = prefix
        self._p = f"{prefix}{{{tag}}}:"
        self._gen_key = f"{self._p}gen"
        self.keep_records = whole("keep_records", keep_records, owner="Redis", low=0, high=10**9, example="100000")
        self.wants_records = self.keep_records > 0
        self.keep_ops_ms = parse_window(keep_ops, what="Redis(keep_ops)") * 1000
        self.hold_ttl = seconds(hold_ttl, what="Redis(hold_ttl)")
        self.where = scrub(where)  # as shown: no password
        self.store_id = f"{self.where}#{self._p}"
        self._gen: str | None = None  # the generation this process has seen (None: not yet)
        self._lost = False  # the generation key was found gone (reported as an outage)
        self._verified = False  # the server's setup was checked since the last connection failure
        self._verified_at = 0.0  # (monotonic) and is checked again every _RECHECK seconds
        self._verify_lock = threading.Lock()
        self._clamped = False
        self._register()
        after_fork(self)

    def _client_options(self) -> dict[str, Any]:
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        return dict(socket_timeout=self.timeout, socket_connect_timeout=self.timeout, retry=Retry(NoBackoff(), 0))

    def _register(self) -> None:
        """The scripts, on the current client (made again when it becomes a cluster client)."""
        reg = self.client.register_script
        self._scripts = {name: reg(getattr(lua, name.upper())) for name in (
            "reserve", "settle", "trip", "read", "outcome", "renew", "genesis", "decide_only", "grant", "marks")}

    def _load(self, script: Any) -> None:
        self.client.script_load(script.script)

    def __repr__(self) -> str:
        return f"Redis({self.store_id!r})"

    def _after_fork(self) -> None:
        """In a forked child: redis-py's pools re-make their connections by themselves (they check the
        pid), and the lean path's are left to the parent; the lock a parent thread may have held is made
        again."""
        self._verify_lock = threading.Lock()
        if self._wire is not None:
            self._wire.forget()

    # ------------------------------------------------------------------ first use
    def _verify(self) -> None:
        """At first use, after a connection failure and every five minutes: the server's kind and eviction
        policy, and (once) the store's generation. Two or three round trips."""
        with self._verify_lock:
            if self._verified:
                return
            try:
                cluster, policy, _maxmemory = server_facts(self.client, self._gen_key)
                if cluster and not hasattr(self.client, "get_node_from_key"):
                    self._to_cluster()
                    cluster, policy, _maxmemory = server_facts(self.client, self._gen_key)
                refuse_eviction(policy, self.where)
                if self._gen is None:
                    gen = self._scripts["genesis"](keys=[self._gen_key], args=[new_id()])
                    self._gen = gen.decode() if isinstance(gen, bytes) else str(gen)
            except (_rx.RedisError, _rx.RedisClusterException) as e:  # type: ignore[misc]
                raise classify(e, self.where, "check the server") from e
            self._verified = True
            self._verified_at = time.monotonic()

    def _to_cluster(self) -> None:
        """The URL names a Redis Cluster node: talk to the cluster instead (every key is in one slot)."""
        if self._url is None:
            raise LedgerMisconfigured(
                f"The Redis server at {self.where} is a node of a Redis Cluster, and ledgers.Redis was given a "
                f"plain client for it, which cannot follow the cluster's slots. Pass a cluster client, "
                f"redis.cluster.RedisCluster.from_url(url, socket_timeout=5), or a redis:// URL (breaker opens a "
                f"cluster client itself when the URL names a cluster node).")
        from redis.cluster import RedisCluster

        plain, self.client = self.client, RedisCluster.from_url(self._url, **self._client_options())
        self._register()
        if self._wire is not None:  # a cluster client routes each command itself
            self._wire.close()
            self._wire = None
        try:
            plain.close()
        except Exception:  # pragma: no cover
            pass
        log.info("breaker: %s is a Redis Cluster node; using a cluster client", self.where)

    def accept_data_loss(self) -> None:
        """Start a new generation in a store that lost its data: budgets count from $0 again.

        The processes that saw the old generation stop treating the store as
        unavailable at their next attempt (each logs it) and replay their
        journals into it. Call it after deciding not to restore the data.
        """
        try:
            gen = self._scripts["genesis"](keys=[self._gen_key], args=[new_id()])
        except _rx.RedisError as e:
            raise classify(e, self.where, "start a new generation") from e
        self._gen = gen.decode() if isinstance(gen, bytes) else str(gen)
        self._lost = False

    def _generation(self, current: str) -> None:
        """The store's generation is not the one this process saw: raise the outage, or adopt a new one."""
        if not current:
            self._lost = True
            raise LedgerUnavailable(
                f"The Redis ledger at {self.where} lost its data: its generation key {self._gen_key!r} is gone (a "
                f"restart without persistence, FLUSHALL/FLUSHDB, a failover to an empty replica, or eviction). "
                f"Budgets would silently restart from $0, so the store is treated as unavailable until its data "
                f"is restored (then journaled settlements are replayed), or until a new generation is started "
                f"(ledgers.Redis(...).accept_data_loss(), or a process started against the empty store). Run "
                f"Redis with appendonly yes to keep budgets across restarts.",
                maybe_applied=False, state="lost its data")
        seen_missing, self._lost, old, self._gen = self._lost, False, self._gen, current
        log.warning("breaker: the Redis ledger at %s started a new generation (%s, was %s) after losing its data: "
                    "budgets count from $0 since, plus the journaled settlements replayed into it", self.where,
                    current, old)
        if not seen_missing:  # the reset happened between two of this process's calls: it is still a loss
            raise LedgerUnavailable(
                f"The Redis ledger at {self.where} was reset: its data was lost and a new generation was started "
                f"since this process last used it, so budgets restarted from $0. Reported once; the store is "
                f"used again from the next attempt.", maybe_applied=False, state="lost its data")

    # ------------------------------------------------------------------ plumbing
    def _run(self, name: str, keys: list[str], args: list[Any], what: str) -> Any:
        """Run script ``name`` with the generation key and value appended; every failure classified."""
        if not self._verified or time.monotonic() - self._verified_at > _RECHECK:
            self._verified = False  # a policy can be changed at run time (CONFIG SET): look again now and then
            self._verify()
        script = self._scripts[name]
        for _attempt in (0, 1):
            try:
                if self._wire is not None:
                    return self._wire.evalsha(script, keys + [self._gen_key], args + [self._gen])
                return script(keys=keys + [self._gen_key], args=args + [self._gen])
            except _rx.ResponseError as e:
                text = str(e)
                if not text.startswith(_GENERATION):
                    self._failed_call(e)
                    raise classify(e, self.where, what) from e
                self._generation(text[len(_GENERATION):].strip().split(" ")[0])  # raises, or adopted: again
            except (_rx.RedisError, _rx.RedisClusterException) as e:  # type: ignore[misc]
                self._failed_call(e)
                raise classify(e, self.where, what) from e
        raise LedgerUnavailable(f"The Redis ledger at {self.where} changed generation twice during one call",
                                state="lost its data")  # pragma: no cover

    def _failed_call(self, error: BaseException) -> None:
        if isinstance(error, (_rx.ConnectionError, _rx.TimeoutError)):
            self._verified = False  # the server may come back as another one (restarted, reconfigured)

    def _keys(self, counters: Iterable[Counter]) -> list[str]:
        """The scripts' keys of ``counters``: each one's hash (``c``) and reservations (``h``), then the
        bucket set (``b``) of each one with a rolling window (a lifetime counter has none to send)."""
        p = self._p
        out, buckets = [], []
        for c in counters:
            name = f"{c.window}:{c.key}"
            out += [f"{p}c:{name}", f"{p}h:{name}"]
            if c.window:
                buckets.append(f"{p}b:{name}")
        return out + buckets

    def _hashes(self, counters: Iterable[Counter]) -> list[str]:
        return [f"{self._p}c:{c.window}:{c.key}" for c in counters]

    @staticmethod
    def _horizon(c: Counter, now: float) -> float:
        # Computed here, in Python floats, so a bucket leaves the window at exactly the same
        # instant as in Memory and SQLite (``bucket_start + bucket + window <= now``).
        return now - c.window - bucket_seconds(c.window) if c.window else 0.0

    @staticmethod
    def _keep_ms(c: Counter) -> int:
        return (c.window + bucket_seconds(c.window) + MAX_HOLD) * 1000 if c.window else 0

    def _exact(self, amounts: Vec) -> Vec:
        """Settled amounts the scripts can count: each at most ``MAX_EXACT`` (logged once if cut)."""
        if max(amounts) <= MAX_EXACT:
            return amounts
        if not self._clamped:
            self._clamped = True
            log.error("breaker: a settlement of %s (nano-USD, tokens, calls) is past what a Redis ledger counts "
                      "exactly (2**53 - 1); recorded as that", amounts)
        return (min(amounts[0], MAX_EXACT), min(amounts[1], MAX_EXACT), min(amounts[2], MAX_EXACT))

    # ------------------------------------------------------------------ protocol
    def reserve(self, ask: Ask, now: float, *, hold_id: str | None = None) -> Grant:
        for c in ask.counters:
            if unstorable(c.key):
                raise unstorable_key(c.key)
        ask = fit(ask, MAX_EXACT, "a Redis ledger counts exactly (2**53 - 1: about $9 million)")
        f, p = ask.fixed, ask.per_unit
        hid = hold_id or new_id()
        ttl = min(max(ask.ttl if ask.ttl is not None else self.hold_ttl, 0.0), MAX_HOLD)
        nums: list[Any] = [now, now + ttl, ask.units_max, ask.units_min, 1 if ask.patient else 0, *ask.fixed,
                           *ask.per_unit, len(ask.counters), len(ask.limits)]
        for c in ask.counters:
            nums += [c.window, self._horizon(c, now), self._keep_ms(c)]
        for lim in ask.limits:
            nums += [lim.counter, lim.metric, lim.limit]
        out = self._run("reserve", self._keys(ask.counters), [_json(nums), hid], "reserve a budget").split()
        status = out[0].decode() if isinstance(out[0], bytes) else out[0]
        grant = Grant(status, units=int(out[1]), blocked=int(out[2]), settled=tuple(int(x) for x in out[4:]),
                      reserved=int(out[3]))
        if status == "ok":
            u = grant.units
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
        counters = storable_counters(counters)  # a served call's charge is never refused for its text
        actual = self._exact(actual)
        hold_id = member = ""
        if handle is not None:
            hold_id = handle.id
            if handle.amount is not None:
                member = f"{hold_id}|{handle.amount[0]}|{handle.amount[1]}|{handle.amount[2]}"
        rec = ""
        if record is not None and self.wants_records:
            rec = _json(record_dict(storable_record(record)))
        nums: list[Any] = [now, len(counters), len(limits), *actual, self.keep_ops_ms, self.keep_records]
        for c in counters:
            b = bucket_seconds(c.window)
            nums += [c.window, self._horizon(c, now), self._keep_ms(c), int(now // b) * b if c.window else 0]
        for lim in limits:
            nums += [lim.counter, lim.metric]
        keys = self._keys(counters) + [f"{self._p}op:{op}", f"{self._p}records"]
        out = self._run("settle", keys, [_json(nums), hold_id, member, rec], "record a settlement")
        return tuple(int(x) for x in out.split())

    def trip(self, counter: Counter, metric: int, needed: int, now: float) -> None:
        (counter,) = storable_counters((counter,))
        self._run("trip", self._keys([counter]) + [f"{self._p}trips"],
                  [metric, min(needed, MAX_EXACT), counter.window, self._horizon(counter, now), repr(now),
                   self._keep_ms(counter), f"{counter.window}|{counter.key}"], "set a trip marker")

    def grant(self, scope: str, amount: Vec, now: float, by: str) -> GrantRecord:
        """See ``LedgerBase.grant``: the scope's counters are found with SCAN, then granted in one script."""
        if unstorable(scope) or unstorable(by):
            raise unstorable_key(scope if unstorable(scope) else by)
        self._verify()  # first: a cluster node's URL becomes a cluster client, whose SCAN covers the cluster
        found = {Counter(scope)}
        escaped = "".join("\\" + ch if ch in "*?[]\\" else ch for ch in scope)
        try:
            for pattern in (f"{self._p}c:*:{escaped}", f"{self._p}c:0:{escaped}@*"):
                for raw in self.client.scan_iter(match=pattern, count=1000):
                    window, _, key = (raw.decode() if isinstance(raw, bytes) else raw)[len(self._p) + 2:].partition(":")
                    if window.isdigit() and in_scope(key, scope):
                        found.add(Counter(key, int(window)))
        except (_rx.RedisError, _rx.RedisClusterException) as e:  # type: ignore[misc]
            raise classify(e, self.where, "find the scope's counters") from e
        counters = sorted(found, key=lambda c: (c.key, c.window))
        amount = self._exact(amount)
        data = _json([now, scope, *amount, by])
        args: list[Any] = [len(counters), *amount, data, max(self.keep_records, 1)]
        for c in counters:
            args += [c.window, f"{c.window}|{c.key}"]
        keys = self._hashes(counters) + [f"{self._p}grants", f"{self._p}trips"]
        raised, lifted = self._run("grant", keys, args, "record a grant")
        return GrantRecord(now, scope, *amount, by, int(raised), int(lifted))

    def grants(self, since: float | None = None) -> list[GrantRecord]:
        out = []
        for fields in self._entries("grants"):
            at, scope, usd, tokens, calls, by = json.loads(fields[b"g"])
            if since is None or at >= since:
                out.append(GrantRecord(at, scope, usd, tokens, calls, by, int(fields[b"c"]), int(fields[b"l"])))
        return out

    def trips(self, now: float, counters: Iterable[Counter] | None = None) -> list[TripMark]:
        if counters is None:
            self._verify()
            try:
                members = self.client.zrange(f"{self._p}trips", 0, -1)
            except (_rx.RedisError, _rx.RedisClusterException) as e:  # type: ignore[misc]
                raise classify(e, self.where, "read trip markers") from e
            listed = []
            for raw in members:
                window, _, key = (raw.decode() if isinstance(raw, bytes) else raw).partition("|")
                listed.append(Counter(key, int(window)))
            counters = listed
        counters = storable_counters(tuple(counters))
        if not counters:
            return []
        v = [x.decode() if isinstance(x, bytes) else x
             for x in self._run("marks", self._hashes(counters), [], "read trip markers")]
        out = []
        for i, c in enumerate(counters):
            f = v[12 * i:12 * i + 12]
            for m in range(3):
                if f[3 + m] != "":
                    out.append(TripMark(c, m, int(f[3 + m]), float(f[9 + m]) if f[9 + m] else None,
                                        int(f[m] or 0), int(f[6 + m] or 0)))
        return out

    def read(self, counters: Iterable[Counter], now: float) -> list[Totals]:
        counters = storable_counters(tuple(counters))
        if not counters:
            return []
        nums: list[Any] = [now]
        for c in counters:
            nums += [c.window, self._horizon(c, now)]
        out = [int(x) for x in self._run("read", self._keys(counters), [_json(nums)], "read budgets")]
        return [Totals(tuple(out[9 * i:9 * i + 3]), tuple(out[9 * i + 3:9 * i + 6]),  # type: ignore[arg-type]
                       tuple(out[9 * i + 6:9 * i + 9]))  # type: ignore[arg-type]
                for i in range(len(counters))]

    def renew(self, holds: Sequence[tuple[Hold, tuple[Counter, ...], float]], now: float) -> set[str]:
        """Push back the expiry of live calls' reservations to ``now + ttl`` each (``ledgers.renewal``).
        Returns the ids still held (one missing was given back already, and stays given back)."""
        keys: list[str] = []
        args: list[Any] = [0]
        renewed = []
        for hold, counters, ttl in holds:
            if hold.amount is None:
                continue
            renewed.append(hold)
            hkeys = self._keys(storable_counters(counters))[1:2 * len(counters):2]
            keys += hkeys
            args += [f"{hold.id}|{hold.amount[0]}|{hold.amount[1]}|{hold.amount[2]}",
                     repr(now + min(ttl, MAX_HOLD)), len(hkeys)]
        if not renewed:
            return set()
        args[0] = len(renewed)
        out = self._run("renew", keys, args, "renew reservations")
        return {hold.id for hold, found in zip(renewed, out) if int(found)}

    def add_outcome(self, session: str, feature: str | None, user: str | None, name: str, now: float,
                    *, op: str | None = None) -> None:
        text = [storable(t) if t is not None else None for t in (session, feature, user, name)]
        data = _json([now, *text])
        self._run("outcome", [f"{self._p}op:{op or new_id()}", f"{self._p}outcomes"],
                  [self.keep_ops_ms, data, max(self.keep_records, 1)], "record an outcome")

    def _stream(self, key: str, field: bytes) -> list[Any]:
        return [json.loads(fields[field]) for fields in self._entries(key)]

    def _entries(self, key: str) -> list[Any]:
        """The fields of every entry of stream ``key``, oldest first."""
        try:
            try:
                entries = self.client.xrange(f"{self._p}{key}")
            except _rx.AskError:  # ``breaker report`` with the URL of a cluster node: follow the cluster
                if self._url is None or hasattr(self.client, "get_node_from_key"):
                    raise
                self._to_cluster()
                entries = self.client.xrange(f"{self._p}{key}")
        except (_rx.RedisError, _rx.RedisClusterException) as e:  # type: ignore[misc]
            raise classify(e, self.where, "read call records") from e
        # redis-py types a stream entry's fields as optional (XAUTOCLAIM's deleted entries); XRANGE always has them.
        return [fields for _id, fields in entries or () if fields is not None]

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
        try:
            out = self._scripts["decide_only"](keys=[], args=args)
        except _rx.RedisError as e:
            raise classify(e, self.where, "evaluate") from e
        status = out[0].decode() if isinstance(out[0], bytes) else out[0]
        return Grant(status, units=int(out[1]), blocked=int(out[2]), settled=tuple(x[0] for x in state),
                     reserved=int(out[3]))

    def close(self) -> None:
        if self._wire is not None:
            self._wire.close()
        try:
            self.client.close()
        except Exception:  # pragma: no cover - closing a broken connection
            pass


_json = json.JSONEncoder(separators=(",", ":")).encode
"""Compact JSON, by one encoder made once (``json.dumps`` with options makes one per call). A script's
numbers go as its one first argument, a JSON array (``cjson.decode`` in ``redis_lua``): one string to pack
and send rather than an argument each, which is most of what a client spends on a call, and numbers that
arrive in Lua as numbers. Floats keep every digit (``repr``)."""
