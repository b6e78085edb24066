"""What the guard does to requests: refuses before sending, lowers caps, degrades, retries once-billed."""

from __future__ import annotations

import anthropic
import openai
import pytest

from breaker import Breaker, Budget, BudgetExceeded, Degrade, LoopDetected, LoopPolicy, SessionKilled
from breaker.testing import Reply
from tests.providers.conftest import ANTHROPIC_MODEL, OPENAI_MODEL, killed_session, messages


def test_refused_call_never_reaches_the_provider(make_guard, fake):
    guard = make_guard(budgets=[Budget(usd=0.000001)]).instrument()
    client = fake.openai(max_retries=0)
    with killed_session(guard, "poor"):
        with pytest.raises(BudgetExceeded):
            client.chat.completions.create(model=OPENAI_MODEL, messages=messages("poor", 50), max_tokens=1000)
    assert fake.count == 0


def test_a_kill_passes_through_except_exception(make_guard, fake):
    guard = make_guard(budgets=[Budget(usd=0.000001)]).instrument()
    client = fake.anthropic(max_retries=0)
    attempts = 0
    with pytest.raises(SessionKilled) as info:
        with guard.session("swallow"):
            for _ in range(3):
                attempts += 1
                try:
                    client.messages.create(model=ANTHROPIC_MODEL, max_tokens=1000, messages=messages("s", 50))
                except Exception:  # agent code that swallows errors does not swallow the kill
                    pass
    assert isinstance(info.value.__cause__, BudgetExceeded)
    assert attempts == 1 and fake.count == 0


def test_identical_calls_are_stopped_before_sending(guard, fake):
    client = fake.openai(max_retries=0)
    msgs = messages("same")
    with killed_session(guard, "loop"):
        with pytest.raises(LoopDetected):
            for _ in range(10):
                client.chat.completions.create(model=OPENAI_MODEL, messages=msgs)
    assert fake.count == 3  # max_identical=3: the 4th was refused


def test_tool_thrash_is_detected_from_the_models_tool_calls(make_guard, fake):
    guard = make_guard(loops=LoopPolicy(max_tool_repeats=2)).instrument()
    fake.default = Reply(tool_calls=[("search", {"q": "same"})])
    client = fake.anthropic(max_retries=0)
    with killed_session(guard, "thrash"):
        with pytest.raises(LoopDetected) as info:
            for i in range(10):  # distinct requests, same tool call asked for each time
                client.messages.create(model=ANTHROPIC_MODEL, max_tokens=100, messages=messages(f"t{i}"))
    assert "search" in str(info.value)
    assert fake.count == 3


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_output_cap_is_lowered_in_the_field_the_request_uses(make_guard, fake, field):
    guard = make_guard(budgets=[Budget(tokens=600)]).instrument()
    client = fake.openai(max_retries=0)
    with guard.session(f"cap-{field}"):
        client.chat.completions.create(model=OPENAI_MODEL, messages=messages("cap"), **{field: 5000})
    body = fake.requests[0].body
    other = ({"max_tokens", "max_completion_tokens"} - {field}).pop()
    assert other not in body
    assert 16 <= body[field] < 600  # lowered to what the budget can pay for


def test_a_cap_the_caller_chose_is_never_raised(make_guard, fake):
    guard = make_guard(budgets=[Budget(usd=10, degrade_at=0.0000001)],
                       degrade=Degrade(max_output_tokens=500)).instrument()
    client = fake.anthropic(max_retries=0)
    with guard.session("low"):
        for i in range(3):  # the first call crosses degrade_at; the next ones are degraded
            client.messages.create(model=ANTHROPIC_MODEL, max_tokens=50 if i < 2 else 4000, messages=messages(f"l{i}"))
    assert [r.body["max_tokens"] for r in fake.requests] == [50, 50, 500]


def test_default_field_set_when_request_has_no_cap(make_guard, fake):
    guard = make_guard(budgets=[Budget(tokens=700)]).instrument()
    client = fake.openai(max_retries=0)
    with guard.session("nocap"):
        client.chat.completions.create(model=OPENAI_MODEL, messages=messages("nocap"))
        client.responses.create(model=OPENAI_MODEL, input="nocap responses")
    chat, resp = fake.requests
    assert 0 < chat.body["max_completion_tokens"] < 700 and "max_tokens" not in chat.body
    assert 0 < resp.body["max_output_tokens"] < 700


def test_degrade_switches_model_effort_and_trims_history(make_guard, fake):
    degrade = Degrade(model_map={"gpt-5": "gpt-5-mini"}, reasoning_effort="low", keep_last_messages=2)
    guard = make_guard(budgets=[Budget(usd=10, degrade_at=0.0000001)], degrade=degrade).instrument()
    client = fake.openai(max_retries=0)
    history = [{"role": "system", "content": "be brief"}] + messages("deg", 6)
    with guard.session("deg"):
        client.chat.completions.create(model="gpt-5", messages=history[:2], reasoning_effort="high")
        client.chat.completions.create(model="gpt-5", messages=history, reasoning_effort="high")
        client.responses.create(model="gpt-5", input=history[1:], reasoning={"effort": "minimal"})
    first, second, third = (r.body for r in fake.requests)
    assert first["model"] == "gpt-5"
    assert second["model"] == "gpt-5-mini" and second["reasoning_effort"] == "low"
    assert [m["content"] for m in second["messages"]] == ["be brief", "deg message 4", "deg message 5"]
    assert third["model"] == "gpt-5-mini"
    assert third["reasoning"] == {"effort": "minimal"}  # never raised above what the caller asked
    assert len(third["input"]) == 2


def test_degrade_scales_anthropic_thinking_down(make_guard, fake):
    guard = make_guard(budgets=[Budget(usd=10, degrade_at=0.0000001)],
                       degrade=Degrade(reasoning_effort="medium")).instrument()
    client = fake.anthropic(max_retries=0)
    thinking = {"type": "enabled", "budget_tokens": 8000}
    with guard.session("think"):
        for i in range(2):
            client.messages.create(model=ANTHROPIC_MODEL, max_tokens=16000, thinking=thinking,
                                   messages=messages(f"think{i}"))
    assert fake.requests[0].body["thinking"]["budget_tokens"] == 8000
    assert fake.requests[1].body["thinking"]["budget_tokens"] == 4000
    assert thinking["budget_tokens"] == 8000  # the caller's dict is never changed


def test_degrade_hook_sees_and_edits_the_request(make_guard, fake):
    def hook(kw):
        return {**kw, "temperature": 0}

    guard = make_guard(budgets=[Budget(usd=10, degrade_at=0.0000001)], degrade=Degrade(hook=hook)).instrument()
    client = fake.openai(max_retries=0)
    with guard.session("hook"):
        client.chat.completions.create(model=OPENAI_MODEL, messages=messages("h1"))
        client.chat.completions.create(model=OPENAI_MODEL, messages=messages("h2"))
    assert "temperature" not in fake.requests[0].body and fake.requests[1].body["temperature"] == 0


def test_failed_request_releases_its_reservation_and_counts_as_an_error(make_guard, fake):
    guard = make_guard(budgets=[Budget(usd=1.0)], loops=LoopPolicy(max_errors=2)).instrument()
    fake.push(Reply(status=500), Reply(status=400))
    client = fake.openai(max_retries=0)
    with killed_session(guard, "fail") as s:
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model=OPENAI_MODEL, messages=messages("f1"))
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model=OPENAI_MODEL, messages=messages("f2"))
        assert s.calls == 2 and s.cost_usd == 0 and s.remaining_usd == pytest.approx(1.0)
        with pytest.raises(LoopDetected):  # max_errors=2: the call after the 2nd failure is refused
            client.chat.completions.create(model=OPENAI_MODEL, messages=messages("f3"))
    assert fake.count == 2


def test_sdk_retries_are_one_admission(guard, fake):
    fake.push(Reply(status=529), Reply(status=500), Reply(input_tokens=10, output_tokens=3))
    client = fake.anthropic(max_retries=2)
    with guard.session("retry") as s:
        client.messages.create(model=ANTHROPIC_MODEL, max_tokens=100, messages=messages("retry"))
        assert s.calls == 1 and s.tokens == 13
    assert fake.count == 3


@pytest.mark.parametrize("raw", [{"prompt_tokens": -5, "completion_tokens": 1}, {"prompt_tokens": "many"}])
def test_malformed_usage_is_returned_and_billed_at_worst_case(guard, fake, raw, caplog):
    """Fail open for observation, closed for money: the caller gets the SDK's response."""
    fake.push(Reply(raw_usage=raw), Reply(raw_usage=raw))
    client = fake.openai(max_retries=0)
    with guard.session("bad") as s, caplog.at_level("WARNING", logger="breaker"):
        for _ in range(2):
            reply = client.chat.completions.create(model=OPENAI_MODEL, messages=messages(f"bad{_}"), max_tokens=100)
            assert reply.choices[0].message.content  # returned unchanged
        assert s.calls == 2 and s.cost_usd > 0 and s.tokens >= 200  # never a silent $0
    warnings = [r for r in caplog.records if "usage could not be read" in r.getMessage()]
    assert len(warnings) <= 1  # once per kind (an earlier test may have logged this kind already)


def test_missing_usage_in_anthropic_response_is_returned_and_billed(guard, fake):
    fake.push(Reply(raw_usage={"output_tokens": 3}))
    client = fake.anthropic(max_retries=0)
    with guard.session("nousage") as s:
        message = client.messages.create(model=ANTHROPIC_MODEL, max_tokens=100, messages=messages("nu"))
        assert message.content and s.cost_usd > 0 and s.tokens >= 100


def test_length_error_from_parse_is_still_billed(guard, fake):
    import pydantic

    class Out(pydantic.BaseModel):
        answer: int

    fake.push(Reply(text='{"answer": 1234567}', output_tokens=50, input_tokens=10))
    client = fake.openai(max_retries=0)
    with guard.session("length") as s:
        with pytest.raises(openai.LengthFinishReasonError):
            client.chat.completions.parse(model=OPENAI_MODEL, messages=messages("len"), response_format=Out,
                                          max_completion_tokens=5)
        assert s.tokens == 15


def test_unknown_model_is_refused_before_sending(guard, fake):
    from breaker import UnknownPrice

    client = fake.anthropic(max_retries=0)
    with guard.session("unknown"):
        with pytest.raises(UnknownPrice):
            client.messages.create(model="my-finetune", max_tokens=10, messages=messages("u"))
    assert fake.count == 0


def test_connection_error_is_a_failed_call(guard, fake):
    client = anthropic.Anthropic(base_url="http://127.0.0.1:9", api_key="x", max_retries=0)
    with guard.session("down") as s:
        with pytest.raises(anthropic.APIConnectionError):
            client.messages.create(model=ANTHROPIC_MODEL, max_tokens=10, messages=messages("down"))
        assert s.calls == 1 and s.cost_usd == 0


def test_raw_response_is_billed(guard, fake):
    fake.push(Reply(input_tokens=10, output_tokens=4))
    client = fake.openai(max_retries=0)
    with guard.session("raw") as s:
        raw = client.chat.completions.with_raw_response.create(model=OPENAI_MODEL, messages=messages("raw"))
        assert raw.parse().usage.completion_tokens == 4
        assert s.calls == 1 and s.tokens == 14


def test_guard_without_budgets_only_attributes(fake):
    guard = Breaker(alerts=[]).instrument()
    try:
        client = fake.openai(max_retries=0)
        with guard.session("free", feature="f") as s:
            client.chat.completions.create(model=OPENAI_MODEL, messages=messages("free"))
        assert s.calls == 1 and guard.spent("feature", "f").calls == 1
        assert "max_completion_tokens" not in fake.requests[0].body  # nothing to enforce, nothing changed
    finally:
        guard.uninstrument()


async def test_async_raw_response_is_billed(guard, fake):
    fake.push(Reply(input_tokens=10, output_tokens=4))
    client = fake.async_anthropic(max_retries=0)
    with guard.session("araw") as s:
        raw = await client.messages.with_raw_response.create(model=ANTHROPIC_MODEL, max_tokens=10,
                                                             messages=messages("araw"))
        assert (await raw.parse()).usage.output_tokens == 4
        assert s.calls == 1 and s.tokens == 14


def test_raw_streamed_response_is_metered(guard, fake):
    """What langchain-openai does: with_raw_response.create(stream=True), then iterate parse()."""
    fake.push(Reply(text="a b c", input_tokens=10, output_tokens=3))
    client = fake.openai(max_retries=0)
    with guard.session("rawstream") as s:
        raw = client.chat.completions.with_raw_response.create(model=OPENAI_MODEL, messages=messages("rs"),
                                                                stream=True)
        chunks = list(raw.parse())
        assert all(c.choices for c in chunks)
        assert s.calls == 1 and s.tokens == 13


def test_degrade_trims_anthropic_history_without_orphaning_tool_results(make_guard, fake):
    guard = make_guard(budgets=[Budget(usd=10, degrade_at=0.0000001)],
                       degrade=Degrade(keep_last_messages=2)).instrument()
    client = fake.anthropic(max_retries=0)
    history = [
        {"role": "user", "content": "task"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "look", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "found"}]},
        {"role": "assistant", "content": "done?"},
        {"role": "user", "content": "go on"},
    ]
    with guard.session("trim-anthropic"):
        client.messages.create(model=ANTHROPIC_MODEL, max_tokens=50, messages=history[:1])
        client.messages.create(model=ANTHROPIC_MODEL, max_tokens=50, messages=history)
    sent = fake.requests[1].body["messages"]
    assert len(sent) < len(history) and sent[0]["role"] == "user"
    assert sent[-1] == {"role": "user", "content": "go on"}
    assert len(history) == 5  # the caller's list is untouched


def test_loose_input_estimate_is_an_opt_in(make_guard, fake):
    big = [{"role": "user", "content": "word " * 2000}]  # 10,000 bytes, about 2,000 real tokens
    outcomes = []
    for mode in ("strict", "loose"):
        # "loose" gives up the zero-overshoot guarantee (see breaker.estimate)
        guard = make_guard(budgets=[Budget(tokens=5_000)], input_estimate=mode)
        client = guard.wrap(fake.openai(max_retries=0))
        try:
            with guard.session(f"est-{mode}"):
                client.chat.completions.create(model=OPENAI_MODEL, messages=big, max_tokens=10)
            outcomes.append("sent")
        except SessionKilled:
            outcomes.append("refused")
    assert outcomes == ["refused", "sent"]  # the strict bound (10,000+) cannot fit 5,000 tokens; a quarter can
    assert fake.count == 1


def test_messages_given_as_a_generator_are_still_counted(guard, fake):
    client = fake.openai(max_retries=0)
    with guard.session("gen") as s:
        client.chat.completions.create(model=OPENAI_MODEL, messages=(m for m in messages("gen", 3)))
    assert s.calls == 1 and len(fake.requests[0].body["messages"]) == 3
