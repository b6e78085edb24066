"""What the Redis ledger checks about its server and client, and what each Redis error means.

* ``classify``: every error redis-py raises, as one of the three kinds of
  store failure (``ledgers.base``). Unreachable, timing out, out of memory
  (``noeviction`` with ``maxmemory`` reached), read-only, loading, busy, a
  cluster failing over: *unavailable*. A wrong password or user, a missing
  ACL permission, a plain client sent to a cluster node that does not own the
  keys (``MOVED``): *misconfigured*. Anything else a server may answer: an
  unclassified failure, which the ledger treats as unavailable too (journaled,
  never a raw error in the user's call).
* ``server_facts``: at first use, whether the server is a cluster node and
  which ``maxmemory-policy`` it runs; ``refuse_eviction`` rejects a policy
  that can delete budget keys (see its docstring for why every policy but
  ``noeviction`` can).
* ``require_deadline``: a client the user built must have a socket timeout,
  or a stopped server would block every call for as long as it is stopped.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

from ..errors import LedgerError
from .base import LedgerMisconfigured, LedgerUnavailable

__all__ = ["classify", "refuse_eviction", "require_deadline", "server_facts"]

log = logging.getLogger("breaker")

# Error replies that mean "not now" (the write was refused before it started: nothing landed).
_REFUSED_NOW = {
    "OOM": "out of memory",
    "READONLY": "read-only",
    "LOADING": "loading its data",
    "BUSY": "busy",
    "TRYAGAIN": "failing over",
    "CLUSTERDOWN": "failing over",
    "MASTERDOWN": "failing over",
}
_AUTH = ("NOAUTH", "WRONGPASS", "NOPERM", "invalid password", "invalid username-password",
         "Authentication required", "AUTH <password> called without")


def classify(error: BaseException, where: str, what: str) -> LedgerError:
    """``error`` (from redis-py, running one command or script) as a ledger failure to raise."""
    from redis import exceptions as rx

    text = str(error).rstrip(". ")
    code = getattr(error, "status_code", None) or text.split(" ", 1)[0]
    if isinstance(error, (rx.AuthenticationError, rx.AuthorizationError, rx.NoPermissionError,
                          rx.AuthenticationWrongNumberOfArgsError)) or any(a in text for a in _AUTH):
        return LedgerMisconfigured(
            f"The Redis server at {where} refused breaker's credentials when asked to {what} ({text}). This is "
            f"configuration, not an outage: check the user name and password given in the URL or the "
            f"client, and that the user may run EVALSHA, SCRIPT LOAD, INFO and the commands "
            f"of the scripts on keys under its prefix.")
    if isinstance(error, rx.AskError):  # MovedError too
        return LedgerMisconfigured(
            f"The Redis server at {where} is a node of a Redis Cluster that does not hold breaker's keys ({code} "
            f"{text}). Pass a cluster client, redis.cluster.RedisCluster.from_url(url, socket_timeout=5), or a "
            f"redis:// URL (breaker opens a cluster client itself when the URL names a cluster node).")
    if isinstance(error, rx.ClusterCrossSlotError):  # pragma: no cover - every key carries the same hash tag
        return LedgerMisconfigured(f"The Redis Cluster at {where} refused keys across slots ({text}).")
    state = _REFUSED_NOW.get(code) or _REFUSED_NOW.get(type(error).__name__.replace("Error", "").upper())
    if isinstance(error, rx.OutOfMemoryError):
        state = "out of memory"
    if state is not None:
        advice = {
            "out of memory": "Its maxmemory is reached (with maxmemory-policy noeviction, as a budget store "
                             "needs, a full Redis refuses writes rather than delete budget keys): raise "
                             "maxmemory, or free memory.",
            "read-only": "It is a replica: point breaker at the primary.",
        }.get(state, "It should answer again shortly.")
        return LedgerUnavailable(f"The Redis ledger at {where} could not {what}: the server is {state} ({text}). "
                                 f"{advice}", maybe_applied=False, state=state)
    if isinstance(error, (rx.ConnectionError, rx.TimeoutError, rx.ClusterError)) or \
            type(error).__name__ in ("RedisClusterException", "SlotNotCoveredError", "MaxConnectionsError"):
        # redis-py words a failure to connect (nothing was sent) as "... connecting to ..."
        sent = not ("connecting to" in text or "Connection refused" in text)
        return LedgerUnavailable(
            f"The Redis ledger at {where} could not {what}: {text}. Check that the server is running and "
            f"reachable from this host.",
            maybe_applied=sent and not isinstance(error, rx.BusyLoadingError), state="unreachable")
    return LedgerUnavailable(f"The Redis ledger at {where} could not {what}: {type(error).__name__}: {text}.",
                             state="failing")


def server_facts(client: Any, key: str) -> tuple[bool, str | None, int]:
    """``(cluster node?, maxmemory-policy or None if INFO is not allowed, maxmemory)`` of the server
    holding ``key`` (one INFO round trip, at first use only)."""
    from redis import exceptions as rx

    kw: dict[str, Any] = {}
    if hasattr(client, "get_node_from_key"):  # a RedisCluster: the node that owns breaker's slot
        kw["target_nodes"] = client.get_node_from_key(key)
    try:
        info = client.info("memory", **kw)
        cluster = client.info("cluster", **kw)
    except rx.NoPermissionError as e:
        log.warning("breaker: cannot read the Redis server's INFO (%s), so its maxmemory-policy is not checked; "
                    "make sure it is noeviction, or budgets may be evicted", e)
        return False, None, 0
    return bool(cluster.get("cluster_enabled")), info.get("maxmemory_policy"), int(info.get("maxmemory") or 0)


def refuse_eviction(policy: str | None, where: str) -> None:
    """Raise for a ``maxmemory-policy`` under which Redis may delete budget keys.

    ``allkeys-*`` evicts any key: lifetime counters and trip markers too.
    ``volatile-*`` evicts keys that have a TTL, and the ledger's rolling-window
    counters (with their reservations) and its settlement ids carry one: an
    evicted window forgets the window's spend, an evicted settlement id lets a
    replayed settlement count twice. Only ``noeviction`` keeps every key (a
    full Redis then refuses writes: an outage the journal rides out). The
    policy applies whenever ``maxmemory`` is set, and that can change at any
    time, so it is checked whatever ``maxmemory`` is now.
    """
    if policy is None or policy == "noeviction":
        return
    which = ("any key, lifetime budgets and trip markers included" if policy.startswith("allkeys")
             else "keys with a TTL, which rolling-window budgets and the settlement ids of exactly-once replay "
                  "have")
    raise LedgerMisconfigured(
        f"The Redis server at {where} runs maxmemory-policy {policy!r}: when memory fills it deletes {which}, and "
        f"budgets would silently restart from $0. Set maxmemory-policy to noeviction (CONFIG SET maxmemory-policy "
        f"noeviction, and in redis.conf), or give budgets a Redis of their own. With noeviction a full Redis "
        f"refuses writes instead, which breaker treats as an outage (settlements journaled, on_ledger_error "
        f"applies).")


def require_deadline(client: Any) -> None:
    """Refuse a user's client without a socket timeout (a stopped Redis would block every call)."""
    manager = getattr(client, "nodes_manager", None)
    pool = getattr(client, "connection_pool", None)
    kwargs = manager.connection_kwargs if manager is not None else getattr(pool, "connection_kwargs", None)
    if kwargs is None:
        return  # a client of a kind breaker does not know: its own business
    if "socket_timeout" in kwargs:
        timeout = kwargs["socket_timeout"]
    else:  # the connection's default: 5 s since redis-py 8, none before
        timeout = _default_timeout(getattr(pool, "connection_class", None) or _connection())
    if timeout is not None:
        return
    kind = type(client).__name__
    raise LedgerMisconfigured(
        f"ledgers.Redis was given a {kind} client without socket_timeout: while the server is stopped or "
        f"unreachable every call would block for as long as that lasts. Build it with a timeout, e.g. "
        f"redis.{'cluster.' if manager is not None else ''}{kind}(..., socket_timeout=5, "
        f"socket_connect_timeout=5), or pass ledgers.Redis a redis:// URL (timeout=5 by default).")


def _default_timeout(cls: type) -> Any:
    """``socket_timeout``'s default in the first ``__init__`` of ``cls``'s classes that names it."""
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is not None:
            param = inspect.signature(init).parameters.get("socket_timeout")
            if param is not None:
                return param.default
    return None


def _connection() -> type:
    from redis.connection import Connection

    return Connection
