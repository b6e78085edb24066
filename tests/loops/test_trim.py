"""``trim_messages``: a short history that the provider still accepts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from breaker.providers.effort import thinking_budget_for
from breaker.providers.trim import trim_messages


# ----------------------------------------------------------------- OpenAI chat
def sys(text="rules"):
    return {"role": "system", "content": text}


def user(text):
    return {"role": "user", "content": text}


def asst(text=None, calls=()):
    m = {"role": "assistant", "content": text}
    if calls:
        m["tool_calls"] = [{"id": c, "type": "function", "function": {"name": "f", "arguments": "{}"}} for c in calls]
    return m


def tool(call_id):
    return {"role": "tool", "tool_call_id": call_id, "content": "result"}


def test_openai_keeps_system_and_the_last_n():
    msgs = [sys(), user("a"), asst("b"), user("c"), asst("d"), user("e")]
    out = trim_messages(msgs, 2, style="openai")
    assert out == [sys(), asst("d"), user("e")]


def test_openai_short_history_is_returned_whole():
    msgs = [sys(), user("a"), asst("b")]
    assert trim_messages(msgs, 5, style="openai") == msgs


def test_openai_extends_back_to_the_tool_call():
    msgs = [sys(), user("a"), asst(calls=["c1", "c2"]), tool("c1"), tool("c2"), asst("done")]
    # the last 2 would start on tool("c2"): reach back to the assistant that asked
    out = trim_messages(msgs, 2, style="openai")
    assert out == [sys(), asst(calls=["c1", "c2"]), tool("c1"), tool("c2"), asst("done")]


def test_openai_developer_messages_in_the_middle_stay_in_place():
    dev = {"role": "developer", "content": "note"}
    msgs = [user("a"), asst("b"), dev, user("c"), asst("d")]
    assert trim_messages(msgs, 1, style="openai") == [dev, asst("d")]


def test_openai_sdk_objects_are_read_too():
    class Msg:
        def __init__(self, role, tool_call_id=None, tool_calls=None):
            self.role, self.tool_call_id, self.tool_calls = role, tool_call_id, tool_calls

    class TC:
        def __init__(self, id):
            self.id = id

    a = Msg("assistant", tool_calls=[TC("x")])
    t = Msg("tool", tool_call_id="x")
    msgs = [Msg("user"), Msg("assistant"), Msg("user"), a, t]
    assert trim_messages(msgs, 1, style="openai") == [a, t]


def test_openai_never_starts_on_an_orphan_result():
    msgs = [tool("gone"), user("a"), asst("b")]
    # nothing to cut without starting on a result: the cut moves to a valid start
    out = trim_messages(msgs, 2, style="openai")
    assert out[0]["role"] != "tool"
    assert out == [user("a"), asst("b")]


# ----------------------------------------------------------------- OpenAI Responses
def fc(call_id):
    return {"type": "function_call", "call_id": call_id, "name": "f", "arguments": "{}"}


def fco(call_id):
    return {"type": "function_call_output", "call_id": call_id, "output": "r"}


def test_responses_parallel_calls_are_not_split():
    items = [{"role": "developer", "content": "d"}, user("q"), fc("a"), fc("b"), fco("a"), fco("b")]
    # keeping 3 would start at fc("b") and orphan fco("a"): reach back to fc("a")
    out = trim_messages(items, 3, style="openai-responses")
    assert out == [{"role": "developer", "content": "d"}, fc("a"), fc("b"), fco("a"), fco("b")]


def test_responses_reasoning_item_stays_with_its_call():
    reasoning = {"type": "reasoning", "id": "rs_1", "summary": []}
    items = [user("q"), {"role": "assistant", "content": "x"}, reasoning, fc("a"), fco("a")]
    out = trim_messages(items, 2, style="openai-responses")
    assert out == [reasoning, fc("a"), fco("a")]


# ----------------------------------------------------------------- Anthropic
def a_user(text):
    return {"role": "user", "content": [{"type": "text", "text": text}]}


def a_use(tid):
    return {"role": "assistant", "content": [{"type": "tool_use", "id": tid, "name": "f", "input": {}}]}


def a_result(tid):
    return {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tid, "content": "r"}]}


def test_anthropic_tool_loop_keeps_the_task_and_whole_pairs():
    msgs = [a_user("task")]
    for i in range(5):
        msgs += [a_use(f"t{i}"), a_result(f"t{i}")]
    out = trim_messages(msgs, 3, style="anthropic")
    # last 3 would start on a tool_result; reach back to its tool_use, then
    # anchor on the opening user turn
    assert out == [a_user("task"), a_use("t3"), a_result("t3"), a_use("t4"), a_result("t4")]
    roles = [m["role"] for m in out]
    assert all(x != y for x, y in zip(roles, roles[1:])), "turns still alternate"


def test_tool_ids_reused_across_turns_pair_with_the_nearest_call():
    msgs = [a_user("task")] + [a_use("same"), a_result("same")] * 4
    assert trim_messages(msgs, 2, style="anthropic") == [a_user("task"), a_use("same"), a_result("same")]


def test_anthropic_cut_on_a_plain_user_turn_needs_no_anchor():
    msgs = [a_user("1"), {"role": "assistant", "content": "2"}, a_user("3"), {"role": "assistant", "content": "4"}]
    assert trim_messages(msgs, 2, style="anthropic") == msgs[2:]


# ----------------------------------------------------------------- properties
@st.composite
def chat(draw):
    """Random OpenAI chat histories made of well-formed turns."""
    msgs = [sys()] if draw(st.booleans()) else []
    n = 0
    for kind in draw(st.lists(st.sampled_from(["user", "asst", "tools"]), min_size=1, max_size=25)):
        if kind == "user":
            msgs.append(user("u"))
        elif kind == "asst":
            msgs.append(asst("a"))
        else:
            turn = draw(st.integers(0, 2)) if draw(st.booleans()) else n  # ids may repeat across turns
            ids = [f"c{turn}_{j}" for j in range(draw(st.integers(1, 3)))]
            n += 1
            msgs.append(asst(calls=ids))
            msgs += [tool(i) for i in ids]
    return msgs


@given(chat(), st.integers(1, 30))
def test_openai_trim_never_orphans_a_result(msgs, keep):
    out = trim_messages(msgs, keep, style="openai")
    body = [m for m in out if m["role"] != "system"]
    assert [m for m in msgs if m["role"] == "system"] == [m for m in out if m["role"] == "system"]
    assert body and body[0]["role"] != "tool"
    called = set()
    for m in body:
        for tc in m.get("tool_calls", ()):
            called.add(tc["id"])
        if m["role"] == "tool":
            assert m["tool_call_id"] in called
    # the kept part is a suffix of the original, at least keep_last long (or everything)
    orig_body = [m for m in msgs if m["role"] != "system"]
    assert orig_body[len(orig_body) - len(body):] == body
    assert len(body) >= min(keep, len(orig_body))


def test_bad_arguments_say_what_to_use():
    with pytest.raises(ValueError, match="use one of"):
        trim_messages([], 2, style="cohere")
    with pytest.raises(ValueError, match="at least 1"):
        trim_messages([], 0, style="openai")
    with pytest.raises(TypeError, match="list of messages"):
        trim_messages("a Responses input given as plain text", 2, style="openai-responses")


# ----------------------------------------------------------------- thinking budget
@pytest.mark.parametrize(
    "effort,current,max_tokens,expected",
    [
        ("high", 8000, None, 8000),
        ("medium", 8000, None, 4000),
        ("low", 8000, None, 2000),
        ("low", 2000, None, 1024),  # never under the API minimum
        ("minimal", 8000, None, None),  # thinking off
        ("none", 8000, None, None),
        ("medium", 8000, 3000, 2999),  # must stay under max_tokens
        ("low", 8000, 1024, None),  # no room for thinking at all
        ("high", 500, None, None),  # a budget under the minimum cannot be kept
    ],
)
def test_thinking_budget_for(effort, current, max_tokens, expected):
    assert thinking_budget_for(effort, current, max_tokens=max_tokens) == expected


def test_thinking_budget_never_raises_the_callers_budget():
    for effort in ("high", "medium", "low"):
        got = thinking_budget_for(effort, 1500)
        assert got is not None and got <= 1500
