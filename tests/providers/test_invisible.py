"""Issue 15's reproductions: requests the SDKs accept must reach the provider unchanged.

Each test drives a real SDK against FakeLLM with ``instrument()`` on, and checks
what reached the wire (``fake.requests``) and what was billed.
"""

from __future__ import annotations

import pytest

from tests.providers.conftest import ANTHROPIC_MODEL, OPENAI_MODEL

NULLABLE_TOOL = {
    "type": "function",
    "function": {
        "name": "lookup",
        "strict": True,
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": ["string", "null"]},  # what strict structured outputs emit
                "type": {"type": "string", "enum": ["a", "b"]},  # a parameter *named* type
            },
            "required": ["query", "type"],
            "additionalProperties": False,
        },
    },
}


def test_a_nullable_or_type_named_tool_parameter_is_sent_and_billed(guard, fake):
    client = fake.openai(max_retries=0)
    with guard.session("schema") as s:
        client.chat.completions.create(
            model=OPENAI_MODEL, messages=[{"role": "user", "content": "find it"}], tools=[NULLABLE_TOOL],
        )
        client.responses.create(
            model=OPENAI_MODEL, input="find it",
            tools=[{"type": "function", **{k: v for k, v in NULLABLE_TOOL["function"].items()}}],
        )
    assert len(fake.requests) == 2 and s.calls == 2 and s.cost_usd > 0
    sent = fake.requests[0].body["tools"][0]["function"]["parameters"]["properties"]
    assert sent["query"] == {"type": ["string", "null"]}


def test_an_anthropic_tool_with_a_nullable_parameter(guard, fake):
    client = fake.anthropic(max_retries=0)
    tool = {"name": "lookup", "input_schema": NULLABLE_TOOL["function"]["parameters"]}
    with guard.session("schema-anthropic") as s:
        client.messages.create(model=ANTHROPIC_MODEL, max_tokens=64, tools=[tool],
                               messages=[{"role": "user", "content": "find it"}])
    assert len(fake.requests) == 1 and s.calls == 1


def test_a_one_shot_iterable_inside_a_message_reaches_the_provider(guard, fake):
    """A part list given as an iterator is read by the SDK; measuring must not read it first."""
    client = fake.openai(max_retries=0)
    parts = [{"type": "text", "text": "first part"}, {"type": "text", "text": "second part"}]
    message = {"role": "user", "content": iter(parts)}
    with guard.session("one-shot") as s:
        client.chat.completions.create(model=OPENAI_MODEL, messages=[message])
    assert fake.requests[0].body["messages"][0]["content"] == parts  # not [] (consumed) on the wire
    assert s.calls == 1 and s.tokens > 0


def test_a_one_shot_iterable_inside_an_anthropic_message(guard, fake):
    client = fake.anthropic(max_retries=0)
    blocks = [{"type": "text", "text": "hello there"}]
    with guard.session("one-shot-anthropic"):
        client.messages.create(model=ANTHROPIC_MODEL, max_tokens=32,
                               messages=[{"role": "user", "content": iter(blocks)}])
    assert fake.requests[0].body["messages"][0]["content"] == blocks


def test_the_input_bound_still_covers_a_materialized_request(make_guard, fake):
    """The copy that is sent is the copy that is measured: its bound is at least the text's bytes."""
    from breaker.adapter import Call

    seen: list[Call] = []
    guard = make_guard().instrument()
    real_admit = guard.admit

    def spy(call, session=None):
        seen.append(call)
        return real_admit(call, session)

    guard.admit = spy  # type: ignore[method-assign]
    text = "x" * 5_000
    with guard.session("bound"):
        fake.openai(max_retries=0).chat.completions.create(
            model=OPENAI_MODEL, messages=[{"role": "user", "content": iter([{"type": "text", "text": text}])}])
    assert seen and seen[0].input_tokens >= len(text)


@pytest.mark.parametrize("schema", [{"type": ["string", "null"]}, {"type": {"type": "string"}}, {"type": 3}])
def test_measure_never_raises_on_a_json_schema(schema):
    from breaker.adapter import measure

    n, fixed, canonical = measure({"properties": {"x": schema}})
    assert n > 0 and fixed == 0
    hash(canonical)


def test_a_raw_post_to_a_model_route_passes_through(guard, fake):
    """``post(cast_to=<the SDK's httpx.Response>)`` is the caller reading the body itself: not a model result."""
    import importlib.util

    # the SDK's own httpx: openai 3 depends on the httpx2 distribution
    Response = importlib.import_module("httpx2" if importlib.util.find_spec("httpx2") else "httpx").Response
    client = fake.openai(max_retries=0)
    with guard.session("raw-post") as s:
        response = client.post("/chat/completions", cast_to=Response,
                               body={"model": OPENAI_MODEL, "messages": [{"role": "user", "content": "hi"}]})
        assert isinstance(response, Response) and response.json()["usage"]["prompt_tokens"] > 0
        assert s.calls == 0  # not parsed as a model result: not metered (documented)
    assert len(fake.requests) == 1


@pytest.mark.parametrize("extra", [{"x_groq": {"id": "req_1"}}, {"moderation": None}])
def test_a_usage_chunk_that_carries_more_than_usage_is_shown(guard, fake, extra):
    """breaker hides the bare usage chunk it asked for; one that carries a field of its own (a host's,
    or one the SDK declares, as the moderation streams do) is the caller's."""
    from breaker.testing import Reply

    fake.push(Reply(text="a b c", usage_chunk_extra=extra), Reply(text="a b c"))
    client = fake.openai(max_retries=0)
    with guard.session("usage-chunk") as s:
        shown = list(client.chat.completions.create(model=OPENAI_MODEL, messages=[{"role": "user", "content": "1"}],
                                                    stream=True))
        bare = list(client.chat.completions.create(model=OPENAI_MODEL, messages=[{"role": "user", "content": "2"}],
                                                   stream=True))
    assert len([c for c in shown if not c.choices]) == 1  # shown as the server sent it
    assert not [c for c in bare if not c.choices]  # the bare one breaker asked for stays hidden
    reported = next(c.usage for c in shown if c.usage is not None)  # the two requests are the same size
    assert s.calls == 2 and s.tokens == 2 * reported.total_tokens  # both billed what the server reported


def test_requests_that_differ_only_in_their_turn_or_tool_choice_are_not_a_loop(guard, fake):
    """Same input, another ``previous_response_id`` / ``tool_choice``: a new request, not a repeat."""
    client = fake.openai(max_retries=0)
    with guard.session("turns") as s:
        for turn in range(5):
            client.responses.create(model=OPENAI_MODEL, input="next", previous_response_id=f"resp_{turn}")
        for choice in ("auto", "none", "required", {"type": "function", "function": {"name": "lookup"}}):
            client.chat.completions.create(model=OPENAI_MODEL, messages=[{"role": "user", "content": "go"}],
                                           tools=[NULLABLE_TOOL], tool_choice=choice)
    assert s.tripped is None and s.calls == 9 and len(fake.requests) == 9


def test_stream_usage_false_sends_a_chat_stream_exactly_as_written(make_guard, fake):
    """The documented opt-out of the one request change streams get (include_usage)."""
    guard = make_guard(stream_usage=False).instrument()
    client = fake.openai(max_retries=0)
    with guard.session("as-written") as s:
        chunks = list(client.chat.completions.create(model=OPENAI_MODEL, stream=True,
                                                     messages=[{"role": "user", "content": "hi"}]))
    assert "stream_options" not in fake.requests[0].body and chunks
    assert s.calls == 1 and s.tokens > 0  # billed by what arrived, never $0


def test_stream_usage_must_be_a_bool():
    from breaker import Breaker, ConfigError

    with pytest.raises(ConfigError, match="stream_usage"):
        Breaker(stream_usage="off")  # type: ignore[arg-type]


def test_outside_a_session_a_refusal_is_an_ordinary_exception_and_loops_are_not_refused(make_guard, fake):
    """No session, no boundary: the SDK call raises SessionKilled (an Exception a caller handles),
    and identical requests of unrelated code (a test suite, a web worker) are no loop."""
    from breaker import Budget, SessionKilled

    guard = make_guard(budgets=[Budget(calls=6, per="global")]).instrument()
    client = fake.openai(max_retries=0)
    for _ in range(6):  # six identical requests: with max_identical=3 a session would refuse the fourth
        client.chat.completions.create(model=OPENAI_MODEL, messages=[{"role": "user", "content": "same"}])
    try:
        client.chat.completions.create(model=OPENAI_MODEL, messages=[{"role": "user", "content": "one more"}])
    except Exception as caught:  # noqa: BLE001 - the point: ordinary exception handling works
        assert isinstance(caught, SessionKilled) and caught.reason == "budget"
    else:
        raise AssertionError("the seventh call should have been refused")
    assert len(fake.requests) == 6
