"""Fixtures for the store-fault tests: a redis-server of the test's own (its config is changed),
guards whose journal lives in the test's tmp dir, and what a served call costs."""

from __future__ import annotations

import pytest

from breaker import Breaker, Budget, Usage
from breaker.ledgers.resilient import Resilient
from breaker.testing import FakeLLM, Reply
from tests.conftest import genai_nano
from tests.ledgers.redis_server import RedisServer

MODEL = "gpt-4o-mini"
SERVED = Usage(400, 30)  # what the fake provider reports for every served call here
PRICE = genai_nano(SERVED, MODEL, "openai")


@pytest.fixture(autouse=True)
def _journals_in_tmp(tmp_path, monkeypatch):
    """A Breaker wrapping SQLite/Redis by itself keeps its journal under $XDG_STATE_HOME: not ~."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


@pytest.fixture
def fake():
    with FakeLLM() as server:
        yield server


@pytest.fixture
def own_redis():
    """A redis-server only this test talks to (it may set maxmemory, a password, a policy)."""
    server = RedisServer(keep=True).start()
    yield server
    server.close()


def journaled(inner, tmp_path, **kw) -> Resilient:
    return Resilient(inner, journal=tmp_path / "journal.sqlite", retry_every=0, **kw)


def guard_on(ledger, *, events=None, mode="closed", usd=1.0, **kw) -> Breaker:
    return Breaker(budgets=[Budget(usd=usd, per="global")], ledger=ledger,
                   alerts=[events.append] if events is not None else [], loops=None, telemetry=False,
                   on_ledger_error=mode, reservation_wait=0.2, **kw)


def served(fault=None) -> object:
    """A reply for FakeLLM that runs ``fault`` (the store breaking) while the provider serves the call."""
    def reply(received):
        if fault is not None:
            fault()
        return Reply(text=" ".join(["word"] * SERVED.output_tokens), input_tokens=SERVED.input_tokens,
                     output_tokens=SERVED.output_tokens)

    return reply


PROMPT_BYTES = 2000  # the request's text: its strict input bound is above the 400 tokens the fake reports


def ask(client, tag: str):
    text = f"{tag}: " + "x" * (PROMPT_BYTES - len(tag) - 2)
    return client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": text}], max_tokens=200)
