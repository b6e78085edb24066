"""Requests rebuilt on every call (new dicts and lists, equal content) cost what appended ones do.

Web services reload a stored conversation for each request, and frameworks build the tool list per
call: the estimator finds them by content (a key from the first two messages' content, a structural
key for tool lists) and proves them equal with ``==``, so only what is new is measured, with the
same figures, fingerprints and learned bounds as the same objects sent again.
"""

from __future__ import annotations

import copy
import json

import pytest

import breaker.estimate as estimate_module
from breaker.estimate import Estimator
from breaker.providers import _shapes
from breaker.providers.openai import ChatAdapter


def conversation(tag: str, n: int) -> list[dict]:
    return [{"role": "system", "content": "You are terse."}] + [
        {"role": "user" if i % 2 else "assistant", "content": f"{tag} turn {i}: " + "words " * 5} for i in range(n - 1)
    ]


def rebuilt(messages: list[dict]) -> list[dict]:
    return json.loads(json.dumps(messages))  # every dict and string new


@pytest.fixture
def measured(monkeypatch):
    """How many messages the estimator measured (``_figures``) and tool lists (``measure``)."""
    counts = {"messages": 0, "values": 0}
    figures, measure = estimate_module._figures, estimate_module.measure

    def counted_figures(m):
        counts["messages"] += 1
        return figures(m)

    def counted_measure(v):
        counts["values"] += 1
        return measure(v)

    monkeypatch.setattr(estimate_module, "_figures", counted_figures)
    monkeypatch.setattr(estimate_module, "measure", counted_measure)
    return counts


def test_a_rebuilt_history_measures_only_its_new_messages(measured):
    est = Estimator()
    history = conversation("a", 200)
    first = est.bounds("m", history)
    for step in range(5):
        history = history + [{"role": "assistant", "content": f"reply {step}"}, {"role": "user", "content": f"q {step}"}]
        before = measured["messages"]
        got = est.bounds("m", rebuilt(history))
        # the two new messages, and the first two (the key) seen as new objects: never the 200 before
        assert measured["messages"] - before <= 5
        assert got == Estimator().bounds("m", history)  # the figures of a cold count
    assert first == Estimator().bounds("m", conversation("a", 200))


def test_512_concurrent_rebuilt_conversations_all_hit(measured):
    est = Estimator()
    convs = [conversation(f"c{c}", 200) for c in range(512)]
    for c, conv in enumerate(convs):
        est.bounds("m", conv)
    before = measured["messages"]
    for c in range(512):
        convs[c] = convs[c] + [{"role": "assistant", "content": "ok"}, {"role": "user", "content": f"next {c}"}]
        est.bounds("m", rebuilt(convs[c]))
    assert measured["messages"] - before <= 512 * 5  # was 512 x 202 with 256 conversations kept by identity


def test_a_rebuilt_history_is_bounded_from_the_report_of_the_request_it_extends():
    est = Estimator()
    history = conversation("learned", 20)
    bound, by_bytes, fp, _, _ = est.bounds("m", history)
    est.learn(fp, 100)  # the provider counted 100 input tokens for it
    grown = rebuilt(history) + [{"role": "user", "content": "and then?"}]
    same_objects = history + [grown[-1]]
    tight = est.bounds("m", grown)
    assert tight[0] < tight[1] and tight[0] == est.bounds("m", same_objects)[0]
    assert tight[0] == 100 + len("role" "content" "user" "and then?") + estimate_module.MESSAGE_OVERHEAD


def test_conversations_sharing_their_first_two_messages_keep_their_own_prefix_and_bound(measured):
    est = Estimator()
    base = conversation("shared", 2)  # the same task run three times at once: the replies differ from the third
    branches = [base + [{"role": "assistant", "content": f"branch {b} " + "x" * 50 * b},
                        {"role": "user", "content": "tool result"}] for b in range(3)]
    reports = {}
    for b, msgs in enumerate(branches):
        _, _, fp, _, _ = est.bounds("m", msgs)
        est.learn(fp, 10 + b)
        reports[b] = 10 + b
    before = measured["messages"]
    for b, msgs in enumerate(branches):  # each grows, in turn, rebuilt
        grown = rebuilt(msgs) + [{"role": "user", "content": "go on"}]
        assert est.bounds("m", grown)[0] == reports[b] + len("role" "content" "user" "go on") + estimate_module.MESSAGE_OVERHEAD
    assert measured["messages"] - before <= 3 * 4


def test_a_siblings_report_replaces_the_others_and_the_conversation_goes_on_from_it():
    est = Estimator()
    history = conversation("siblings", 10)
    for attempt in range(6):  # retries with a rewritten last message: only the latest report is kept
        _, _, fp, _, _ = est.bounds("m", history + [{"role": "user", "content": f"attempt {attempt}"}])
        est.learn(fp, 50 + attempt)
    assert [len(b) for b in est._learned.values()] == [1]
    grown = history + [{"role": "user", "content": "attempt 5"}, {"role": "assistant", "content": "done"}]
    assert est.bounds("m", rebuilt(grown))[0] == 55 + len("role" "content" "assistant" "done") + estimate_module.MESSAGE_OVERHEAD


def test_an_edited_history_is_measured_again_not_taken_for_the_stored_one():
    est = Estimator()
    history = conversation("edit", 30)
    est.bounds("m", history)
    edited = rebuilt(history)
    edited[10]["content"] += " and a much longer middle message " * 20
    assert est.bounds("m", edited) == Estimator().bounds("m", edited)
    trimmed = rebuilt(history)[:1] + rebuilt(history)[15:]
    assert est.bounds("m", trimmed) == Estimator().bounds("m", trimmed)


TOOLS = [{"type": "function", "function": {"name": f"tool_{i}", "description": "Looks it up. " * 3,
                                           "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}
         for i in range(20)]


@pytest.mark.parametrize("rebuild", [lambda t: [{**x, "function": {**x["function"]}} for x in t], copy.deepcopy,
                                     lambda t: json.loads(json.dumps(t))], ids=["shared-schemas", "deep", "json"])
def test_a_tool_list_rebuilt_per_call_is_measured_and_named_once(measured, monkeypatch, rebuild):
    named = []
    names = _shapes._tool_names
    monkeypatch.setattr(_shapes, "_tool_names", lambda tools: named.append(1) or names(tools))
    est = Estimator()
    monkeypatch.setattr(_shapes, "ESTIMATOR", est)
    msgs = conversation("tools", 3)
    first = est.bounds("m", msgs, tools=TOOLS)
    assert _shapes.tool_names(TOOLS) == tuple(f"tool_{i}" for i in range(20))
    for _ in range(5):
        tools = rebuild(TOOLS)
        assert est.bounds("m", msgs, tools=tools) == first  # same bound, same fingerprint
        assert _shapes.tool_names(tools) == tuple(f"tool_{i}" for i in range(20))
    assert measured["values"] == 1 and len(named) == 1
    changed = rebuild(TOOLS)
    changed[5]["function"]["description"] = "Now something else entirely, and longer than before."
    assert est.bounds("m", msgs, tools=changed) == Estimator().bounds("m", msgs, tools=changed) != first


def test_the_chat_adapter_reads_tool_names_of_a_rebuilt_list_from_the_cache():
    adapter = ChatAdapter()
    calls = [adapter.describe({"model": "gpt-4o-mini", "messages": conversation("d", 3), "tools": copy.deepcopy(TOOLS)},
                              True) for _ in range(3)]
    assert {c.tools for c in calls} == {tuple(f"tool_{i}" for i in range(20))}
    assert len({c.fingerprint for c in calls}) == 1 and len({c.input_tokens for c in calls}) == 1
