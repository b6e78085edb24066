"""Shared fixtures. Tests use real parts: the real engine, real ledgers, real SDKs."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=60, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "dev", max_examples=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def genai_nano(usage, model: str, provider: str) -> int:
    """The genai-prices figure for one request (a ``breaker.Usage``), in nano-USD rounded up
    as breaker rounds: the reference every exact-pricing assertion compares with."""
    from decimal import ROUND_CEILING

    from genai_prices import Usage as GUsage
    from genai_prices import calc_price

    g = GUsage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cache_write_1h_tokens=usage.cache_write_1h_tokens,
        output_reasoning_tokens=usage.reasoning_tokens,
        web_searches=usage.web_search_calls,
    )
    total = calc_price(g, model, provider_id=provider).total_price
    return int((total * 10**9).to_integral_value(ROUND_CEILING))


class Clock:
    """A settable clock for ``Breaker(clock=...)``: rolling windows without sleeping."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


import pytest  # noqa: E402

from breaker.ledgers import Memory  # noqa: E402

# Every ledger must pass the same contract and property tests: a factory per
# kind. SQLite and Redis add theirs here. Redis twice: on a client passed in (redis-py's command path)
# and from a URL (the ledger's own client, on its lean path: ledgers.redis_wire).
LEDGER_KINDS = ["memory", "sqlite", "redis", "redis-url"]


@pytest.fixture(scope="session")
def redis_server():
    """A real redis-server on a free loopback port for the whole test session (stopped at the end)."""
    from tests.ledgers.redis_server import RedisServer

    server = RedisServer().start()
    yield server
    server.close()


@pytest.fixture(params=LEDGER_KINDS)
def make_ledger(request, tmp_path):
    """A function returning a fresh ledger of each kind in turn."""
    import itertools
    import uuid

    kind = request.param
    if kind == "memory":
        return Memory
    if kind == "sqlite":
        from breaker.ledgers.sqlite import SQLite

        n = itertools.count()
        return lambda: SQLite(tmp_path / f"ledger-{next(n)}.sqlite")
    if kind == "redis":
        import redis

        from breaker.ledgers.redis import Redis

        # a user's client must have a deadline (ledgers.Redis refuses one without)
        client = redis.Redis.from_url(request.getfixturevalue("redis_server").url, socket_timeout=5)
        request.addfinalizer(client.close)
        return lambda: Redis(client, prefix=f"t{uuid.uuid4().hex[:12]}:")
    if kind == "redis-url":
        from breaker.ledgers.redis import Redis

        url = request.getfixturevalue("redis_server").url
        return lambda: Redis(url, prefix=f"t{uuid.uuid4().hex[:12]}:")
    raise AssertionError(kind)  # pragma: no cover


@pytest.fixture(autouse=True)
def _fresh_learned_bounds():
    """Each test starts with no provider reports learned: the estimator keys them by content, process-wide,
    and tests send the same prompts while asserting what a first request reserves."""
    from breaker.adapter import ESTIMATOR

    ESTIMATOR.forget()
    yield
