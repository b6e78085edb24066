"""A plain ``redis://`` URL to a Redis Cluster (issue 19): it used to fail every call with a raw
``MovedError`` when the node did not own breaker's slot. Now the URL of any node works (a cluster
client is opened at first use), and a plain client for a cluster node is refused with a message
that says to use the cluster client, before any call is sent. A real two-node cluster."""

from __future__ import annotations

import uuid

import pytest
import redis

from breaker import SessionKilled
from breaker.ledgers.base import Counter, LedgerMisconfigured
from breaker.ledgers.redis import Redis
from tests.ledgers.conftest import PRICE, ask, guard_on, journaled, served
from tests.ledgers.redis_server import RedisClusterServers


@pytest.fixture(scope="module")
def cluster():
    servers = RedisClusterServers(2).start()
    yield servers
    servers.close()


def test_the_url_of_any_cluster_node_works_and_they_share_one_budget(cluster, tmp_path, fake):
    prefix = f"cl{uuid.uuid4().hex[:8]}:"
    guards = [guard_on(journaled(Redis(cluster.url(n), prefix=prefix, timeout=2), tmp_path / str(n)))
              for n in (0, 1)]  # one of the two does not own breaker's slot
    for n, guard in enumerate(guards):
        fake.push(served())
        with guard.session(f"node-{n}"):
            ask(guard.wrap(fake.openai(max_retries=0)), f"node-{n}")
    for guard in guards:
        assert round(guard.spent("global").usd * 1e9) == 2 * PRICE
        assert guard.ledger.outages == 0
    for n in (0, 1):  # what `breaker report --ledger redis://node` reads
        assert len(Redis(cluster.url(n), prefix=prefix, timeout=2).records()) == 2


def test_a_plain_client_for_a_cluster_node_is_refused_with_what_to_use(cluster, tmp_path, fake):
    prefix = f"cp{uuid.uuid4().hex[:8]}:"
    for n in (0, 1):
        plain = redis.Redis.from_url(cluster.url(n), socket_timeout=2)
        with pytest.raises(LedgerMisconfigured, match="RedisCluster"):
            Redis(plain, prefix=prefix).read([Counter("global")], 1.0)
    guard = guard_on(journaled(Redis(redis.Redis.from_url(cluster.url(0), socket_timeout=2), prefix=prefix),
                               tmp_path))
    with pytest.raises(SessionKilled) as info:
        with guard.session("plain"):
            ask(guard.wrap(fake.openai(max_retries=0)), "plain")
    assert info.value.reason == "ledger_misconfigured" and "RedisCluster" in str(info.value)
    assert fake.count == 0 and guard.ledger.outages == 0
