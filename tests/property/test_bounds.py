"""The input bound is never below what the provider reports, learned history or not.

Hypothesis drives conversations the way agents grow them (append, resend, a
sibling last message, an edit, a new system prompt or tool list) through one
``Estimator``, learning after each request what a provider reported. Two
providers: FakeLLM's own count (a quarter of the bytes) and a worst-case
tokenizer that spends one token per byte (CJK, emoji). For each request the
bound must be at least the report; with history it should also be well below
the byte count once the conversation is long.
"""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import given, settings

from breaker.estimate import Estimator
from breaker.testing.reply import _text_bytes, count_input

TEXT = st.text(alphabet=st.sampled_from("abc xyz 汉字かな😀é\n{}\"'"), min_size=0, max_size=60)
MESSAGE = st.builds(lambda role, text: {"role": role, "content": text}, st.sampled_from(["user", "assistant"]), TEXT)
PARTS = st.builds(lambda texts: {"role": "user", "content": [{"type": "text", "text": t} for t in texts]},
                  st.lists(TEXT, min_size=1, max_size=3))
STEP = st.one_of(
    st.tuples(st.just("append"), st.lists(st.one_of(MESSAGE, PARTS), min_size=1, max_size=3)),
    st.tuples(st.just("resend"), st.none()),
    st.tuples(st.just("sibling"), MESSAGE),
    st.tuples(st.just("edit"), TEXT),
    st.tuples(st.just("system"), TEXT),
    st.tuples(st.just("tools"), st.lists(TEXT, max_size=2)),
)


def byte_per_token(body: dict) -> int:
    """A tokenizer that spends one token per UTF-8 byte, plus 3 per message: the worst case."""
    total = sum(_text_bytes(body.get(k)) for k in ("messages", "system", "tools") if body.get(k) is not None)
    return total + 3 * len(body["messages"])


@settings(max_examples=300, deadline=None)
@given(steps=st.lists(STEP, min_size=1, max_size=25), worst=st.booleans(), strict=st.booleans())
def test_the_bound_is_never_below_the_report(steps, worst, strict):
    reported_by = byte_per_token if worst else count_input
    est = Estimator()
    messages: list = [{"role": "user", "content": "start"}]
    system: str | None = None
    tools: list | None = None
    for kind, arg in steps:
        if kind == "append":
            messages = messages + arg
        elif kind == "sibling" and len(messages) > 1:
            messages = messages[:-1] + [arg]
        elif kind == "edit":
            messages = [{"role": "user", "content": arg}] + messages[1:]  # a new first message object
        elif kind == "system":
            system = arg or None
        elif kind == "tools":
            tools = [{"name": t} for t in arg] or None
        bound, by_bytes, fp, _, _ = est.bounds("gpt-4o", messages, system=system, tools=tools, strict=strict)
        body = {"messages": messages, "system": system, "tools": tools}
        reported = reported_by(body)
        assert bound <= by_bytes
        if strict:  # the loose estimate gives the guarantee up, by design
            assert bound >= reported, (kind, bound, reported)
        est.learn(fp, reported)


def test_history_makes_a_long_conversation_cheap_to_bound():
    est = Estimator()
    messages = [{"role": "system", "content": "You are helpful."}]
    ratios = []
    for step in range(20):
        messages = messages + [{"role": "user", "content": f"question {step} " + "words " * 60},
                               {"role": "assistant", "content": "answer " * 40}]
        bound, by_bytes, fp, _, _ = est.bounds("gpt-4o", messages)
        reported = count_input({"messages": messages})
        assert bound >= reported
        ratios.append(bound / reported)
        est.learn(fp, reported)
    assert ratios[0] > 3  # the first request: bytes only
    assert ratios[-1] < 1.3  # the twentieth: the report plus what was appended


def test_the_first_report_already_tightens_the_second_request():
    """A one-message request and its continuation are filed under different conversation keys."""
    est = Estimator()
    first = [{"role": "user", "content": "hello " * 200}]
    bound, by_bytes, fp, _, _ = est.bounds("gpt-4o", first)
    est.learn(fp, count_input({"messages": first}))
    second = first + [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "more"}]
    bound2, by_bytes2, _, _, _ = est.bounds("gpt-4o", second)
    assert count_input({"messages": second}) <= bound2 < by_bytes2 / 2
