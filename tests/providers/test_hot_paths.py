"""The per-call fast paths (describe, usage reading) give exactly what the general paths give."""

from __future__ import annotations

import dataclasses
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from breaker import Usage, UsageError
from breaker.adapter import Call
from breaker.estimate import MESSAGE_OVERHEAD, REQUEST_OVERHEAD, Estimator, measure
from breaker.providers import anthropic as anthropic_shape
from breaker.providers import openai as openai_shape


class Obj:
    """An SDK-like response object (attributes, no dict)."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


class Role(str):
    pass


def _reference(model, messages, system=None, tools=None):
    """The bound from ``measure`` alone, and the canonical content a fingerprint stands for."""
    parts = [measure(m) for m in messages]
    size = sum(p[0] for p in parts) + sum(p[1] for p in parts)
    n = len(messages)
    canon = [p[2] for p in parts]
    if system is not None:
        b, f, c = measure(system)
        size += b + f
        n += 1
        canon.append(("system", c))
    if tools:
        b, f, c = measure(tools)
        size += b + f
        canon.append(("tools", c))
    return size + MESSAGE_OVERHEAD * n + REQUEST_OVERHEAD, (model, tuple(canon)), n


_TEXTS = ["hi", "hello", "héllo ✓", "", "x" * 40]


def _message(kind: int, text: str):
    if kind == 0:
        return {"role": "user", "content": text}
    if kind == 1:
        return {"content": text, "role": "assistant"}  # keys in the other order
    if kind == 2:
        return {"role": "tool", "content": text, "tool_call_id": "c1"}
    if kind == 3:
        return {"role": "user", "content": [{"type": "text", "text": text}]}
    return {"role": Role("user"), "content": text}  # a str subclass: not the inline case


_new_message = st.builds(_message, st.integers(0, 4), st.sampled_from(_TEXTS))

# One step of an agent (or of several sharing messages): what the next request is made of.
_step = st.one_of(
    st.tuples(st.just("append"), st.lists(_new_message, min_size=1, max_size=3)),
    st.tuples(st.just("sibling"), _new_message),
    st.tuples(st.just("again"), st.none()),
    st.tuples(st.just("copy"), st.none()),
    st.tuples(st.just("tuple"), st.none()),
    st.tuples(st.just("trim"), st.integers(1, 3)),
    st.tuples(st.just("replace"), st.tuples(st.integers(0, 50), _new_message)),
    st.tuples(st.just("other"), st.lists(_new_message, min_size=1, max_size=4)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_new_message, min_size=1, max_size=4), st.lists(_step, max_size=25))
def test_cached_figures_equal_the_reference_over_any_request_sequence(start, steps):
    est = Estimator()
    conv = list(start)
    other: list = []
    seen: dict = {}  # canonical content -> fingerprint
    for kind, arg in steps:
        request = conv
        if kind == "append":
            conv = conv + arg
            request = conv
        elif kind == "sibling":
            request = conv[:-1] + [arg]
        elif kind == "copy":
            request = list(conv)
        elif kind == "tuple":
            request = tuple(conv)
        elif kind == "trim":
            conv = conv[arg:] or conv[-1:]
            request = conv
        elif kind == "replace":
            i, m = arg
            conv = list(conv)
            conv[i % len(conv)] = m
            request = conv
        elif kind == "other":  # another conversation in between, sharing the first message
            other = conv[:1] + arg
            request = other
        got = est.estimate("m", request)
        bound, canon, n = _reference("m", request)
        assert got[0] == bound and got[2] == n
        assert Estimator().estimate("m", request) == got  # cold caches: the same figures
        assert seen.setdefault(canon, got[1]) == got[1]  # equal content, equal fingerprint
    fingerprints = list(seen.values())
    assert len(set(fingerprints)) == len(fingerprints)  # different content, different fingerprint


def test_sibling_requests_store_nothing_and_stay_exact():
    est = Estimator()
    history = [{"role": "system", "content": "s"}] + [{"role": "user", "content": f"m{i}"} for i in range(10)]
    est.estimate("m", history + [{"role": "user", "content": "first"}])
    stored = dict(est._conversations)
    messages = len(est._messages)
    for i in range(50):
        last = {"content": f"q{i} ✓", "role": "user"}
        assert est.estimate("m", history + [last]) == Estimator().estimate("m", history + [last])
    assert dict(est._conversations) == stored and len(est._messages) == messages


def test_one_message_requests_and_odd_messages():
    est = Estimator()
    for request in ([None], [{"role": "user", "content": "a"}], ["plain text"], [{"role": "user", "content": None}],
                    [{"role": "user"}], [{"role": 1, "content": "x"}], [{"a": "b", "c": "d"}]):
        assert est.estimate("m", request) == Estimator().estimate("m", request)
        assert est.estimate("m", request)[0] == _reference("m", request)[0]


def test_inline_message_hash_is_the_canonical_one():
    est = Estimator()
    plain = [{"role": "system", "content": "s"}, {"role": "user", "content": "x"}]
    subclass = [plain[0], {"role": Role("user"), "content": "x"}]  # measured the general way
    est.estimate("m", plain)
    assert est.estimate("m", subclass) == est.estimate("m", plain)


def test_concurrent_growing_and_sibling_requests_get_consistent_figures():
    est = Estimator()
    base = [{"role": "system", "content": "s"}, {"role": "user", "content": "task"}]
    requests = []
    conv = list(base)
    for i in range(40):
        conv = conv + [{"role": "assistant", "content": "x" * i}]
        requests.append(conv)
        requests.append(conv[:-1] + [{"role": "user", "content": "y" * i}])
    expected = [Estimator().estimate("m", r) for r in requests]
    wrong = []

    def work(offset):
        for j in range(len(requests) * 3):
            i = (j * 7 + offset) % len(requests)
            if est.estimate("m", requests[i]) != expected[i]:
                wrong.append(i)

    threads = [threading.Thread(target=work, args=(k * 5,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []


# ------------------------------------------------------------------ describe
def test_adapters_build_call_positionally_in_this_field_order():
    # ChatAdapter/ResponsesAdapter/MessagesAdapter.describe pass Call's fields by position (cheaper):
    # a change of this order must change them too.
    assert [f.name for f in dataclasses.fields(Call)] == [
        "model", "provider", "input_tokens", "max_output_tokens", "fingerprint", "tools", "operation",
        "stream", "messages", "attrs", "trimmed_input", "input_bytes", "learn", "price_context",
        "strict_provider", "units", "text_only",
    ]


def _describe_all():
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "secret words"}]
    tools = [{"type": "function", "function": {"name": "search", "parameters": {}}}]
    chat = openai_shape.ChatAdapter().describe(
        {"model": "gpt-4o-mini", "messages": msgs, "tools": tools, "max_tokens": 100, "n": 2, "stream": True}, True)
    responses = openai_shape.ResponsesAdapter().describe(
        {"model": "gpt-4o-mini", "input": msgs, "instructions": "be brief", "max_output_tokens": 50}, False)
    anthropic = anthropic_shape.MessagesAdapter().describe(
        {"model": "claude-x", "messages": msgs, "system": "be brief", "max_tokens": 70, "tools": tools}, True)
    return msgs, tools, chat, responses, anthropic


def test_describe_fills_every_field():
    from breaker.estimate import estimate

    msgs, tools, chat, responses, anthropic = _describe_all()
    assert (chat.model, chat.provider, chat.max_output_tokens, chat.tools, chat.operation, chat.stream,
            chat.messages, chat.attrs) == ("gpt-4o-mini", "openai", 200, ("search",), "chat", True, 2, {})
    assert (chat.input_tokens, chat.fingerprint) == estimate("gpt-4o-mini", msgs, tools=tools)[:2]
    assert (responses.max_output_tokens, responses.operation, responses.stream, responses.messages) == (
        50, "responses", False, 3)
    assert (responses.input_tokens, responses.fingerprint) == estimate(
        "gpt-4o-mini", msgs, system="be brief", strict=False)[:2]
    assert (anthropic.provider, anthropic.max_output_tokens, anthropic.tools, anthropic.messages) == (
        "anthropic", 70, ("search",), 3)
    assert anthropic.input_tokens == estimate("claude-x", msgs, system="be brief", tools=tools)[0]
    for call in (chat, responses, anthropic):
        assert call.trimmed_input(1) <= call.input_tokens
        assert "secret words" not in repr(call)  # content-free, trimmed_input included


def test_describe_treats_sentinels_and_empty_values_as_not_given():
    import openai

    from breaker.providers._shapes import register_sentinels

    register_sentinels(openai)  # as instrument() does
    adapter = openai_shape.ChatAdapter()
    msgs = [{"role": "user", "content": "hi"}]
    plain = adapter.describe({"model": "m", "messages": msgs}, True)
    given = adapter.describe({"model": "m", "messages": msgs, "tools": openai.NOT_GIVEN, "functions": [],
                              "max_completion_tokens": openai.NOT_GIVEN, "n": openai.NOT_GIVEN,
                              "stream": openai.NOT_GIVEN}, True)
    assert (given.input_tokens, given.fingerprint, given.tools, given.max_output_tokens, given.stream) == (
        plain.input_tokens, plain.fingerprint, (), None, False)
    functions = adapter.describe({"model": "m", "messages": msgs, "tools": [], "functions": [{"name": "f"}]}, True)
    assert functions.tools == ("f",)
    assert adapter.describe({"model": "m", "messages": msgs, "max_completion_tokens": 10, "max_tokens": 99,
                             "n": 3}, True).max_output_tokens == 30


# ------------------------------------------------------------------ usage
_CHAT_USAGES = [
    Obj(prompt_tokens=412, completion_tokens=2, prompt_tokens_details=Obj(cached_tokens=128),
        completion_tokens_details=Obj(reasoning_tokens=1)),
    Obj(prompt_tokens=412, completion_tokens=2, prompt_tokens_details=Obj(cached_tokens=None, cache_write_tokens=5),
        completion_tokens_details=None),
    Obj(prompt_tokens=412, completion_tokens=2, prompt_tokens_details=None, completion_tokens_details=None),
    Obj(prompt_tokens=412, completion_tokens=2),  # no details attributes at all
    Obj(prompt_tokens=412, completion_tokens=2, prompt_tokens_details={"cached_tokens": 100},
        completion_tokens_details={"reasoning_tokens": 1}),
    {"prompt_tokens": 412, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 7}},
]


@pytest.mark.parametrize("u", _CHAT_USAGES)
def test_chat_usage_fast_path_equals_the_reference(u):
    assert openai_shape.chat_usage(u, 3) == openai_shape._chat_usage(u, 3)


@pytest.mark.parametrize("u, words", [
    (None, "without `usage`"),
    (Obj(prompt_tokens=None, completion_tokens=2), "lacks prompt_tokens"),
    ({"completion_tokens": 2}, "lacks prompt_tokens"),
    (Obj(prompt_tokens=-1, completion_tokens=2, prompt_tokens_details=None, completion_tokens_details=None),
     "non-negative"),
])
def test_chat_usage_errors_are_unchanged(u, words):
    with pytest.raises(UsageError, match=words):
        openai_shape.chat_usage(u)


def test_chat_result_reads_usage_and_tool_calls():
    adapter = openai_shape.ChatAdapter()
    usage = _CHAT_USAGES[0]
    call = Obj(function=Obj(name="search", arguments='{"q": 1}'))
    response = Obj(usage=usage, choices=[Obj(message=Obj(tool_calls=[call, Obj(function=None)])), Obj(message=None)])
    u, calls = adapter.result(response)
    assert u == openai_shape._chat_usage(usage, 1) and [c[0] for c in calls] == ["search"]
    assert adapter.result(Obj(usage=usage, choices=[Obj(message=Obj(tool_calls=None))])) == (
        openai_shape._chat_usage(usage, 0), ())
    with pytest.raises(UsageError, match="without `usage`"):
        adapter.result(Obj(usage=None, choices=None))  # the usage error comes first


_RESPONSES_USAGES = [
    Obj(input_tokens=50, output_tokens=9, input_tokens_details=Obj(cached_tokens=10),
        output_tokens_details=Obj(reasoning_tokens=4)),
    Obj(input_tokens=50, output_tokens=9, input_tokens_details=Obj(cached_tokens=None, cache_write_tokens=3),
        output_tokens_details=None),
    Obj(input_tokens=50, output_tokens=9),
    {"input_tokens": 50, "output_tokens": 9, "input_tokens_details": {"cached_tokens": 2}},
]


@pytest.mark.parametrize("u", _RESPONSES_USAGES)
def test_responses_usage_and_result_equal_the_reference(u):
    output = [Obj(type="function_call", name="f", arguments='{"a": 1}'), {"type": "web_search_call"},
              Obj(type="message")]
    expected = openai_shape._responses_usage(u, 1, 1)
    assert openai_shape.responses_usage(u, output) == expected
    adapter = openai_shape.ResponsesAdapter()
    response = Obj(usage=u, output=output)
    assert adapter.result(response) == (adapter.usage(response), adapter.tool_calls(response))
    assert adapter.result(response)[0] == expected


def test_responses_usage_errors_are_unchanged():
    with pytest.raises(UsageError, match="without `usage`"):
        openai_shape.ResponsesAdapter().result(Obj(usage=None, output=None))
    with pytest.raises(UsageError, match="lacks input_tokens"):
        openai_shape.responses_usage(Obj(input_tokens=None, output_tokens=1), [])


_ANTHROPIC_USAGES = [
    Obj(input_tokens=10, output_tokens=5, cache_read_input_tokens=100, cache_creation_input_tokens=20,
        cache_creation=Obj(ephemeral_1h_input_tokens=30), server_tool_use=Obj(web_search_requests=2)),
    Obj(input_tokens=10, output_tokens=5, cache_read_input_tokens=None, cache_creation_input_tokens=None,
        cache_creation=None, server_tool_use=None),
    Obj(input_tokens=10, output_tokens=5, cache_read_input_tokens=0, cache_creation_input_tokens=8,
        cache_creation={"ephemeral_1h_input_tokens": 3}, server_tool_use={"web_search_requests": 1}),
    Obj(input_tokens=10, output_tokens=5),  # an older shape without the cache fields
    {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 4},
]


@pytest.mark.parametrize("u", _ANTHROPIC_USAGES)
def test_anthropic_usage_and_result_equal_the_reference(u):
    assert anthropic_shape.messages_usage(u, 2) == anthropic_shape._messages_usage(u, 2)
    adapter = anthropic_shape.MessagesAdapter()
    response = Obj(usage=u, content=[Obj(type="text", text="hi"), Obj(type="tool_use", name="t", input={"x": 1}),
                                     {"type": "tool_use", "name": "d", "input": {}}])
    assert adapter.result(response) == (adapter.usage(response), adapter.tool_calls(response))
    assert adapter.result(response)[0] == anthropic_shape._messages_usage(u, 2)


@pytest.mark.parametrize("u, words", [
    (None, "without `usage`"),
    (Obj(input_tokens=None, output_tokens=5), "lacks input_tokens"),
    (Obj(input_tokens=10, output_tokens=None, cache_read_input_tokens=0, cache_creation_input_tokens=0,
         cache_creation=None, server_tool_use=None), "lacks input_tokens"),
    (Obj(input_tokens=10, output_tokens=5, cache_read_input_tokens=-1, cache_creation_input_tokens=0,
         cache_creation=None, server_tool_use=None), "not a non-negative integer"),
    (Obj(input_tokens="10", output_tokens=5, cache_read_input_tokens=0, cache_creation_input_tokens=0,
         cache_creation=None, server_tool_use=None), "not a non-negative integer"),
])
def test_anthropic_usage_errors_are_unchanged(u, words):
    with pytest.raises(UsageError, match=words):
        anthropic_shape.messages_usage(u)


def test_usage_is_the_public_type():
    assert isinstance(openai_shape.chat_usage(_CHAT_USAGES[0]), Usage)
