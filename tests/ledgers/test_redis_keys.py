"""Redis key layout: settled spend of a lifetime scope has no TTL; rolling windows clean up after
themselves; every key of a call shares one hash slot (Redis Cluster)."""

from __future__ import annotations

import redis

from breaker.ledgers.base import Ask, Counter, Limit
from breaker.ledgers.redis import Redis

T0 = 1_800_000_000.0


def test_lifetime_spend_never_expires_windows_do(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    ledger = Redis(redis_server.url, prefix="keys:")
    life, win = Counter("session:s1"), Counter("user:u", 3600)
    ask = Ask((life, win, Counter("global")), (Limit(0, 0, 10**9),), (10, 1, 1), (1, 1, 0), 100, 1)
    g = ledger.reserve(ask, T0)
    ledger.settle(g.handle, ask.counters, ask.limits, (5, 5, 1), T0)
    keys = sorted(k.decode() for k in client.keys("keys:*"))
    assert all(k.startswith("keys:{keys}:") for k in keys)  # one hash tag: one Cluster slot per call
    assert client.pttl("keys:{keys}:c:0:session:s1") == -1  # no TTL: a session's spend is never reset
    assert client.pttl("keys:{keys}:c:0:global") == -1
    ttl = client.pttl("keys:{keys}:c:3600:user:u") / 1000
    assert 3600 + 60 < ttl <= 3600 + 60 + 86_400  # window + bucket + the longest reservation
    # a window's keys share one deadline, so none outlives the others with half a counter
    assert abs(client.pttl("keys:{keys}:b:3600:user:u") - client.pttl("keys:{keys}:c:3600:user:u")) < 1000
    ledger.close()
    client.close()

