"""``Breaker(route=...)`` through the real SDKs against FakeLLM: the model sent, the price charged,
the reservation made for the routed model, and what the ledger records."""

from __future__ import annotations

import anthropic
import openai
import pytest

from breaker import Breaker, Budget, ConfigError, Degrade, LoopPolicy, UnknownPrice, Usage
from breaker.ledgers import Memory
from breaker.routing import Route, has_tools, input_below, model_is
from breaker.testing import FakeLLM, Reply

from tests.conftest import genai_nano

SHORT = [{"role": "user", "content": "What is 2 + 2?"}]
LONG = [{"role": "user", "content": "Summarise this report. " + "The quarterly numbers moved. " * 400}]  # > 2,000 tokens even as reported
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]


def short_to_mini(call):
    return "gpt-4o-mini" if call.input_tokens < 2000 and not call.tools else None


def client_of(guard: Breaker, fake: FakeLLM) -> openai.OpenAI:
    return guard.wrap(openai.OpenAI(base_url=fake.base_url, api_key="x", max_retries=0))


def usage_of(reply) -> Usage:
    return Usage(reply.usage.prompt_tokens, reply.usage.completion_tokens)


@pytest.mark.parametrize("route", [
    short_to_mini,
    [Route("gpt-4o-mini", when=model_is("gpt-4o") & input_below(2000) & ~has_tools())],
], ids=["function", "rules"])
def test_short_requests_go_to_the_small_model_and_are_priced_as_sent(route):
    ledger = Memory(keep_records=100)
    guard = Breaker(route=route, ledger=ledger, alerts=[], loops=None)
    with FakeLLM(default=Reply(text="four")) as fake:
        client = client_of(guard, fake)
        costs = []
        with guard.session("s1", feature="triage") as s:
            for messages, tools in ((SHORT, None), (LONG, None), (SHORT, TOOLS)):
                before = s.cost_usd
                kw = {"tools": tools} if tools else {}
                reply = client.chat.completions.create(model="gpt-4o", messages=messages, max_tokens=50, **kw)
                costs.append((round((s.cost_usd - before) * 1e9), usage_of(reply), reply.model))
        sent = [r.body["model"] for r in fake.requests]
    assert sent == ["gpt-4o-mini", "gpt-4o", "gpt-4o"]  # the long one and the one with tools kept gpt-4o
    for (charged, usage, _), model in zip(costs, sent):
        assert charged == genai_nano(usage, model, "openai")  # priced at the model sent, to the nano-dollar
    records = ledger.records()
    assert [(r.requested_model, r.model, "routed" in (r.flags or "")) for r in records] == [
        ("gpt-4o", "gpt-4o-mini", True), (None, "gpt-4o", False), (None, "gpt-4o", False)]


def test_the_reservation_is_for_the_routed_model():
    # $0.0006 cannot pay for gpt-4o's worst case at max_tokens=200 ($0.002 of output alone),
    # but can pay for gpt-4o-mini's: the call passes because the budget saw the routed model.
    worst_gpt4o = 200 * 10.0 / 1e6
    assert worst_gpt4o > 0.0006
    with FakeLLM() as fake:
        plain = Breaker(budgets=[Budget(usd=0.0006)], alerts=[], loops=None)
        routed = Breaker(budgets=[Budget(usd=0.0006)], alerts=[], loops=None, route=short_to_mini)
        for guard in (plain, routed):
            with guard.session(f"s-{id(guard)}"):
                reply = client_of(guard, fake).chat.completions.create(model="gpt-4o", messages=SHORT, max_tokens=200)
                assert reply.choices[0].message.content
        caps = [r.output_cap for r in fake.requests]
        models = [r.body["model"] for r in fake.requests]
    assert models == ["gpt-4o", "gpt-4o-mini"]
    assert caps[0] < 200 and caps[1] == 200  # unrouted: the cap was cut to what $0.0006 buys of gpt-4o


def test_anthropic_requests_are_routed_too():
    ledger = Memory(keep_records=10)
    guard = Breaker(route=[Route("claude-haiku-4-5", when=model_is("claude-sonnet-4-5") & input_below(500))],
                    ledger=ledger, alerts=[], loops=None)
    with FakeLLM() as fake:
        client = guard.wrap(anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key="x", max_retries=0))
        with guard.session("a1") as s:
            reply = client.messages.create(model="claude-sonnet-4-5", max_tokens=40, messages=SHORT)
        assert fake.requests[0].body["model"] == "claude-haiku-4-5"
    usage = Usage(reply.usage.input_tokens, reply.usage.output_tokens)
    assert round(s.cost_usd * 1e9) == genai_nano(usage, "claude-haiku-4-5", "anthropic")
    (record,) = ledger.records()
    assert (record.requested_model, record.model, record.flags) == ("claude-sonnet-4-5", "claude-haiku-4-5", "routed")


def test_a_degrade_applies_to_the_routed_model():
    ledger = Memory(keep_records=10)
    guard = Breaker(loops=LoopPolicy(max_calls=1, on_detect="degrade"),  # the 2nd call is degraded
                    degrade=Degrade(model_map={"gpt-4o-mini": "gpt-4.1-nano"}),
                    route=short_to_mini, ledger=ledger, alerts=[])
    with FakeLLM() as fake:
        client = client_of(guard, fake)
        with guard.session("d1"):
            client.chat.completions.create(model="gpt-4o", messages=SHORT, max_tokens=20)
            client.chat.completions.create(model="gpt-4o", messages=SHORT + SHORT, max_tokens=20)
        assert [r.body["model"] for r in fake.requests] == ["gpt-4o-mini", "gpt-4.1-nano"]
    first, second = ledger.records()
    assert (first.requested_model, first.model, first.degraded) == ("gpt-4o", "gpt-4o-mini", False)
    assert (second.requested_model, second.model, second.degraded) == ("gpt-4o", "gpt-4.1-nano", True)
    assert set(second.flags.split(",")) >= {"routed", "loop:max_calls"}  # sent past the detector's degrade


def test_a_broken_rule_refuses_the_call_before_it_is_sent():
    def broken(call):
        raise KeyError("tier")

    with FakeLLM() as fake:
        for rule, needle in ((broken, "raised KeyError"), (lambda call: 42, "returned 42"),
                             (lambda call: "no-such-model-xyz", None)):
            guard = Breaker(route=rule, alerts=[], loops=None)
            client = client_of(guard, fake)
            with guard.session():
                if needle is None:  # a function's unpriced answer: UnknownPrice, before sending
                    with pytest.raises(UnknownPrice, match="no-such-model-xyz"):
                        client.chat.completions.create(model="gpt-4o", messages=SHORT, max_tokens=20)
                else:
                    with pytest.raises(ConfigError, match=needle):
                        client.chat.completions.create(model="gpt-4o", messages=SHORT, max_tokens=20)
        assert fake.count == 0


def test_route_targets_are_checked_for_a_price_at_construction():
    with pytest.raises(ConfigError, match="gpt-4o-mini"):  # the near-miss is named
        Breaker(route=[Route("gpt-4o-mnii", when=input_below(100))])
    with pytest.raises(ConfigError, match="route="):
        Breaker(route="gpt-4o-mini")
    Breaker(route=[Route("my-small", when=input_below(100))], prices={"my-small": {"input": 0.1, "output": 0.4}})
