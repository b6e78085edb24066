"""``Breaker(route=...)`` under the framework plugins: a plugin that can change the model routes
(LangChain's middleware copies the chat model with the routed name); a hook that sees the request
too late to change it (the OpenAI Agents SDK's ``RunHooks``) refuses the call, saying why, and
nothing reaches the model."""

from __future__ import annotations

import pytest
from agents import Agent, ModelSettings, Runner
from langchain.agents import create_agent

from breaker import Breaker, ConfigError
from breaker.ledgers import Memory
from breaker.routing import Route, model_is
from breaker_langchain import BreakerMiddleware
from breaker_openai_agents import BreakerHooks

from .conftest import genai_usd
from .lc_fake import fake
from .test_langchain_middleware import ask
from .test_openai_agents import ScriptedModel, answer, usage


def test_the_langchain_middleware_sends_the_routed_model():
    def done(n, messages):
        from langchain_core.messages import AIMessage

        from .lc_fake import usage as lc_usage

        return AIMessage(content="done", usage_metadata=lc_usage(1_000, 50))

    ledger = Memory(keep_records=10)
    guard = Breaker(route=[Route("gpt-4o-mini", when=model_is("gpt-4o"))], ledger=ledger, alerts=[], loops=None)
    model = fake(script=done)
    agent = create_agent(model, tools=[], middleware=[BreakerMiddleware(guard)])
    with guard.session("lc-route") as s:
        agent.invoke(ask("hello"))
    assert [name for name, _, _ in model.sent] == ["gpt-4o-mini"]
    assert s.cost_usd == pytest.approx(genai_usd("gpt-4o-mini", "openai", input_tokens=1_000, output_tokens=50),
                                       abs=1e-9)
    (record,) = ledger.records()
    assert (record.requested_model, record.model, record.flags) == ("gpt-4o", "gpt-4o-mini", "routed")


async def test_agents_sdk_hooks_cannot_route_and_say_so():
    guard = Breaker(route=lambda call: "gpt-4o-mini", alerts=[], loops=None)
    model = ScriptedModel(lambda n: answer("hi", usage(100, 10)))
    agent = Agent("a", model=model, model_settings=ModelSettings(max_tokens=100))
    with pytest.raises(ConfigError, match="cannot change the model") as refused:
        async with guard.session("agents-route") as s:
            await Runner.run(agent, "hello", hooks=BreakerHooks(guard))
    assert model.sent == [] and s.calls == 0  # refused before it was sent, the reservation given back
    assert "route" in str(refused.value) and "return None" in str(refused.value)
    assert guard.spent(key="agents-route").usd == 0
