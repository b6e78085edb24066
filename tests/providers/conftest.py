"""Fixtures for provider tests: the real SDKs pointed at a real FakeLLM, a real guard."""

from __future__ import annotations

from tests.conftest import genai_nano  # noqa: F401  (re-exported for the provider tests)

from contextlib import contextmanager

import pytest

from breaker import Breaker, SessionKilled, Usage
from breaker.testing import FakeLLM

OPENAI_MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-haiku-4-5"


@pytest.fixture
def fake():
    with FakeLLM() as server:
        yield server


@pytest.fixture
def make_guard():
    """Breakers that instrument the SDKs; whichever instrumented is uninstrumented at teardown."""
    made: list[Breaker] = []

    def make(**kw) -> Breaker:
        kw.setdefault("alerts", [])
        guard = Breaker(**kw)
        made.append(guard)
        return guard

    yield make
    for guard in made:
        guard.uninstrument()


@pytest.fixture
def guard(make_guard):
    return make_guard().instrument()




def nano(usd: float) -> int:
    return round(usd * 1_000_000_000)


def messages(tag: str, n: int = 1) -> list[dict]:
    """A distinct conversation per tag (so identical-call detection stays out of the way)."""
    return [{"role": "user", "content": f"{tag} message {i}"} for i in range(n)]


@contextmanager
def killed_session(guard: Breaker, session_id: str):
    """A session expected to end killed: the trip either reaches the boundary (which
    raises SessionKilled) or is caught inside the block; either way the session is tripped."""
    session = None
    try:
        with guard.session(session_id) as session:
            yield session
    except SessionKilled:
        pass
    assert session is not None and session.tripped is not None, "the session was expected to be killed"
