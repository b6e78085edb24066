"""BreakerCallbackHandler with real LangChain runnables (LCEL) and a scripted chat model."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.prompts import ChatPromptTemplate

import breaker
from breaker import Breaker, Budget, BudgetExceeded, Degrade
from breaker_langchain import BreakerCallbackHandler, BreakerMiddleware

from .conftest import SECRET, genai_usd
from .lc_fake import fake, usage


def chatty(n, messages):
    return AIMessage(" ".join(["word"] * 300), usage_metadata=usage(200, 300))


def test_a_chain_in_a_retry_loop_is_stopped_within_budget(events):
    guard = Breaker(budgets=[Budget(usd=0.02)], alerts=[events])
    model = fake(chatty)
    model.max_tokens = 500
    chain = ChatPromptTemplate.from_messages([("user", "{q}")]) | model
    handler = BreakerCallbackHandler(guard)
    with pytest.raises(breaker.SessionKilled) as killed:
        with guard.session("lcb-loop") as s:
            for n in range(100):
                try:
                    chain.invoke({"q": f"again {n} {SECRET}"}, config={"callbacks": [handler]})
                except Exception:  # noqa: BLE001 - swallowed by agent code; the kill passes
                    pass
    assert isinstance(killed.value.__cause__, BudgetExceeded)
    assert len(model.sent) == s.calls and 3 <= s.calls <= 6  # ~$0.0035 a call
    assert s.cost_usd <= 0.02 and SECRET not in events.text()


def test_usage_with_cache_and_reasoning_is_priced_like_genai_prices():
    def once(n, messages):
        return AIMessage("done", usage_metadata=usage(10_000, 600, cache_read=4_000, reasoning=200))

    guard = Breaker(alerts=[])
    with guard.session("lcb-usage") as s:
        fake(once, model="o3-mini").invoke([HumanMessage("hi")], config={"callbacks": [BreakerCallbackHandler(guard)]})
    expected = genai_usd("o3-mini", "openai", input_tokens=10_000, cache_read_tokens=4_000, output_tokens=600,
                         output_reasoning_tokens=200)
    assert s.cost_usd == pytest.approx(expected, abs=1e-9)


def test_a_stream_is_cut_when_it_passes_its_reservation():
    def long_answer(n, messages):
        return AIMessage(" ".join(["w"] * 2_000), usage_metadata=usage(50, 2_000))

    guard = Breaker(budgets=[Budget(usd=0.002)], alerts=[])  # pays for ~190 output tokens of gpt-4o
    model = fake(long_answer)
    model.max_tokens = 4_000  # a provider that ignores the cap it was never told about
    handler = BreakerCallbackHandler(guard)
    with guard.session("lcb-stream") as s:
        with pytest.raises(BudgetExceeded, match="max_tokens"):
            for _ in model.stream([HumanMessage("write")], config={"callbacks": [handler]}):
                pass
        assert len(model.sent) == 0 and s.calls == 0  # refused: the cap could not be lowered
        model.max_tokens = 150
        seen = 0
        with pytest.raises(BudgetExceeded, match="closed the stream") as cut:
            for _ in model.stream([HumanMessage("write")], config={"callbacks": [handler]}):
                seen += 1
        assert cut.value.reason == "stream_cut"  # the SDK layer's rule and reason code, not a copy
        assert seen <= 152 and s.calls == 1 and s.cost_usd <= 0.002


def test_degradation_is_refused_not_sent_unchanged():
    guard = Breaker(budgets=[Budget(usd=1.0, degrade_at=0.0001)], degrade=Degrade(model_map={"gpt-4o": "gpt-4o-mini"}),
                    alerts=[])
    model = fake(chatty)
    model.max_tokens = 500
    handler = BreakerCallbackHandler(guard)
    with guard.session("lcb-degrade") as s:
        model.invoke([HumanMessage("a")], config={"callbacks": [handler]})
        with pytest.raises(BudgetExceeded, match="BreakerMiddleware"):
            model.invoke([HumanMessage("b")], config={"callbacks": [handler]})
    assert len(model.sent) == s.calls == 1


def test_with_the_middleware_each_call_is_counted_once():
    from langchain.agents import create_agent

    def once(n, messages):
        return AIMessage("done", usage_metadata=usage(100, 10))

    guard = Breaker(alerts=[])
    model = fake(once)
    agent = create_agent(model, middleware=[BreakerMiddleware(guard)])
    with guard.session("lcb-once") as s:
        agent.invoke({"messages": [{"role": "user", "content": "hi"}]}, config={"callbacks": [BreakerCallbackHandler(guard)]})
    assert len(model.sent) == s.calls == 1


# ---------------------------------------------------------------------- issue #16: the layer that can cap decides
def sdk_chat(base_url: str, model: str = "gpt-4o"):
    """A minimal LangChain chat model on the real openai SDK (what ChatOpenAI is, without langchain-openai).

    It sends no max_tokens: only a layer that can change the request may add one.
    """
    import openai
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import convert_to_openai_messages
    from langchain_core.outputs import ChatGeneration, ChatResult

    class SDKChat(BaseChatModel):
        model_name: str = model

        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            client = openai.OpenAI(base_url=base_url, api_key="k", max_retries=0)
            r = client.chat.completions.create(model=self.model_name, messages=convert_to_openai_messages(messages))
            u = r.usage
            message = AIMessage(r.choices[0].message.content or "", usage_metadata=usage(u.prompt_tokens,
                                                                                        u.completion_tokens))
            return ChatResult(generations=[ChatGeneration(message=message)])

        def _get_ls_params(self, stop=None, **kwargs):
            params = super()._get_ls_params(stop=stop, **kwargs)
            params["ls_provider"] = "openai"
            params["ls_model_name"] = self.model_name
            return params

        @property
        def _llm_type(self) -> str:
            return "sdk-chat"

    return SDKChat()


@pytest.mark.parametrize("budget", [1.0, 0.10])
def test_under_instrument_the_sdk_layer_caps_and_counts_the_call(budget):
    """$1 pays for gpt-4o's whole 16,384-token output: no cap is added. $0.10 does not: the SDK layer
    lowers the cap, where the callback alone could only refuse the call."""
    from breaker.testing import FakeLLM, Reply

    guard = Breaker(budgets=[Budget(usd=budget)], alerts=[])
    handler = BreakerCallbackHandler(guard)
    with FakeLLM(default=Reply(text="done", input_tokens=120)) as fake:
        guard.instrument()
        try:
            with guard.session(f"lcb-sdk-{budget}") as s:
                reply = sdk_chat(fake.base_url).invoke([HumanMessage("hi")], config={"callbacks": [handler]})
        finally:
            guard.uninstrument()
    assert reply.content == "done"
    assert fake.count == 1 and s.calls == 1  # sent, and counted once
    cap = fake.requests[0].output_cap
    if budget == 1.0:
        assert cap is None
    else:
        assert cap is not None and 0 < cap < 16_384 and cap * 10e-6 <= budget
    assert s.cost_usd == pytest.approx(genai_usd("gpt-4o", "openai", input_tokens=120, output_tokens=1), abs=1e-9)


def test_a_model_that_reports_an_sdk_provider_but_bypasses_the_sdk_is_still_counted(caplog):
    """ScriptedChat says ls_provider='openai' but never calls the SDK: under instrument() the handler's
    first call is recorded after the fact (once logged), and it admits the model's later calls itself."""
    guard = Breaker(budgets=[Budget(usd=1.0)], alerts=[])
    model = fake(chatty)
    model.max_tokens = 500
    handler = BreakerCallbackHandler(guard)
    guard.instrument()
    try:
        with guard.session("lcb-bypass") as s:
            for n in range(3):
                model.invoke([HumanMessage(f"q{n}")], config={"callbacks": [handler]})
    finally:
        guard.uninstrument()
    assert len(model.sent) == s.calls == 3
    assert s.cost_usd == pytest.approx(3 * genai_usd("gpt-4o", "openai", input_tokens=200, output_tokens=300))
    assert sum("did not see it" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize("mode", ["strict", "loose"])
def test_the_handler_bounds_the_wire_form_and_honours_input_estimate(mode):
    from langchain_core.messages import SystemMessage, convert_to_openai_messages

    from breaker.adapter import ESTIMATOR

    from .conftest import Recording

    guard = Recording(alerts=[], input_estimate=mode)
    model = fake(chatty)
    model.max_tokens = 500
    messages = [SystemMessage("be brief", id="s0"),
                HumanMessage(f"question {SECRET}", id="h0", response_metadata={"source": "ui" * 50})]
    with guard.session(f"lcb-wire-{mode}"):
        model.invoke(messages, config={"callbacks": [BreakerCallbackHandler(guard)]})
    (call, bound), = guard.admitted
    expected, by_bytes, _, _, _ = ESTIMATOR.bounds("gpt-4o", convert_to_openai_messages(messages),
                                                strict=mode == "strict", history=False)
    assert (bound, call.input_bytes, call.learn) == (expected, by_bytes, ESTIMATOR.learn)
