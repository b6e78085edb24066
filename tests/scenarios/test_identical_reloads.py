"""Seed pattern: redundant identical calls (+30% spend): the agent reloads the same context and asks again."""

from __future__ import annotations

import pytest

from breaker import Breaker, LoopDetected, LoopPolicy, SessionKilled
from breaker.testing import Reply
from tests.conftest import Clock

HAIKU = "claude-haiku-4-5"
DOCUMENT = "Refund policy. " * 400  # the context the agent keeps reloading


def reload_and_ask(client) -> str:
    r = client.messages.create(
        model=HAIKU, max_tokens=300, system="Answer from the document only.",
        messages=[{"role": "user", "content": [{"type": "text", "text": DOCUMENT},
                                               {"type": "text", "text": "Can the customer get a refund?"}]}],
    )
    return r.content[0].text


def test_identical_reloads_stop_after_three(fake, sink):
    fake.default = Reply(text="I am not sure, let me check the document again.")
    guard = Breaker(alerts=[sink], clock=Clock())
    client = guard.wrap(fake.anthropic(max_retries=0))
    with pytest.raises(SessionKilled) as info:
        with guard.session("reloader") as s:
            for _ in range(50):
                try:
                    if "refund" in reload_and_ask(client).lower():
                        break
                except Exception:  # noqa: BLE001 - agent code; the kill passes through anyway
                    pass
    assert isinstance(info.value.__cause__, LoopDetected)
    assert info.value.reason == "loop:identical"
    assert fake.count == 3 and s.calls == 3  # three identical requests sent, the 4th refused
    assert [e.data["signal"] for e in sink.of("loop")] == ["identical"]
    assert not any("Refund policy" in e.message for e in sink)  # no prompt text in events


def test_warn_only_policy_lets_them_through_and_reports_once_per_repeat(fake, sink):
    fake.default = Reply(text="Still checking.")
    guard = Breaker(loops=LoopPolicy(on_detect="warn"), alerts=[sink], clock=Clock())
    client = guard.wrap(fake.anthropic(max_retries=0))
    with guard.session("observer") as s:
        for _ in range(5):
            reload_and_ask(client)
    assert fake.count == 5 and s.tripped is None
    assert [e.data["action"] for e in sink.of("loop")] == ["warn", "warn"]  # the 4th and the 5th


def test_the_same_question_in_a_new_context_is_not_a_repeat(fake):
    fake.default = Reply(text="ok")
    guard = Breaker(alerts=[], clock=Clock())
    client = guard.wrap(fake.anthropic(max_retries=0))
    with guard.session("fine") as s:
        for n in range(6):
            client.messages.create(model=HAIKU, max_tokens=50,
                                   messages=[{"role": "user", "content": f"Order {n}: can it be refunded?"}])
    assert fake.count == 6 and s.tripped is None
