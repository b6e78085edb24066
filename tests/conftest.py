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
# kind. SQLite and Redis add theirs here.
LEDGER_KINDS = ["memory"]


@pytest.fixture(params=LEDGER_KINDS)
def make_ledger(request, tmp_path):
    """A function returning a fresh ledger of each kind in turn."""
    kind = request.param
    if kind == "memory":
        return Memory
    raise AssertionError(kind)  # pragma: no cover
