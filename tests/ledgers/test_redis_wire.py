"""The Redis ledger's own path for its scripts (``ledgers.redis_wire``): the bytes redis-py would send,
on connections that stay usable through what a server does to them (a restart, its idle timeout, a
script cache flush), and only for a client the ledger built."""

from __future__ import annotations

import redis
from hypothesis import given
from hypothesis import strategies as st

from breaker.ledgers.base import Ask, Counter, Limit
from breaker.ledgers.redis import Redis
from breaker.ledgers.redis_wire import pack

T0 = 1_800_000_000.0
ASK = Ask((Counter("global"),), (Limit(0, 0, 10**9),), (10, 1, 1), (1, 1, 0), 100, 1)

args = st.one_of(st.text(), st.binary(), st.integers(-(2**70), 2**70),
                 st.floats(allow_nan=False, allow_infinity=False))


@given(st.lists(args, max_size=12))
def test_pack_writes_what_redis_py_writes(values):
    assert pack(["EVALSHA", *values]) == b"".join(redis.connection.Connection().pack_command("EVALSHA", *values))


def evalsha_calls(client: redis.Redis) -> int:
    return int(client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


def test_a_ledger_built_from_a_url_runs_its_scripts_on_its_own_path(redis_server):
    admin = redis.Redis.from_url(redis_server.url)
    own = Redis(redis_server.url, prefix="wire-own:")
    passed_client = redis.Redis.from_url(redis_server.url, socket_timeout=5)
    passed = Redis(passed_client, prefix="wire-passed:")
    assert own._wire is not None and passed._wire is None  # a client passed in keeps its own path
    for ledger in (own, passed):
        for n in (1, 2):  # the first: the server's setup checked, the generation read, the scripts loaded
            before = evalsha_calls(admin)
            g = ledger.reserve(ASK, T0)
            assert g.status == "ok"
            ledger.settle(g.handle, ASK.counters, ASK.limits, (5, 5, 1), T0)
        assert evalsha_calls(admin) - before == 2  # one round trip each
        totals = ledger.read([Counter("global")], T0)[0]
        assert (totals.settled, totals.reserved) == ((10, 10, 2), (0, 0, 0))
    own.close()
    passed.close()
    passed_client.close()
    admin.close()


def test_a_flushed_script_cache_is_loaded_again(redis_server):
    ledger = Redis(redis_server.url, prefix="wire-flush:")
    assert ledger.reserve(ASK, T0).status == "ok"
    admin = redis.Redis.from_url(redis_server.url)
    admin.script_flush()
    assert ledger.reserve(ASK, T0).status == "ok"  # NOSCRIPT: loaded, then sent again
    assert ledger.read([Counter("global")], T0)[0].reserved == (220, 202, 2)
    ledger.close()
    admin.close()


def test_connections_the_server_closed_are_made_again_before_use(own_redis):
    """A restart (data kept) and a CLIENT KILL close the ledger's idle connections: the next call is made
    on a new one, not refused as an outage, and not counted twice."""
    ledger = Redis(own_redis.url, prefix="wire-restart:")
    g = ledger.reserve(ASK, T0)
    own_redis.restart()
    ledger.settle(g.handle, ASK.counters, ASK.limits, (5, 5, 1), T0)  # raises if the dead connection is used
    admin = redis.Redis.from_url(own_redis.url)
    admin.client_kill_filter(skipme=True)
    totals = ledger.read([Counter("global")], T0)[0]
    assert (totals.settled, totals.reserved) == ((5, 5, 1), (0, 0, 0))
    ledger.close()
    admin.close()
