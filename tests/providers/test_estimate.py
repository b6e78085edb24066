"""The strict input bound and the fingerprint: an upper bound, cheap on growing conversations."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from breaker.estimate import IMAGE_PART_TOKENS, MESSAGE_OVERHEAD, REQUEST_OVERHEAD, Estimator, estimate, measure
from breaker.testing.reply import count_input


@given(st.lists(st.text(), min_size=1, max_size=8))
def test_bound_is_at_least_every_text_byte(texts):
    msgs = [{"role": "user", "content": t} for t in texts]
    bound, _, n = Estimator().estimate("m", msgs)
    assert n == len(texts)
    assert bound >= sum(len(t.encode("utf-8", "surrogatepass")) for t in texts) + MESSAGE_OVERHEAD * n
    assert bound >= count_input({"messages": msgs})  # FakeLLM's own count stays under the bound


def test_system_tools_and_images():
    tools = [{"type": "function", "function": {"name": "search", "description": "Look things up"}}]
    msgs = [{"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                         {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 100_000}}]}]
    plain, _, _ = Estimator().estimate("m", msgs)
    assert IMAGE_PART_TOKENS <= plain < IMAGE_PART_TOKENS + 1000  # the image data is not counted as text
    with_system, _, n = Estimator().estimate("m", msgs, system="Be terse. ✓", tools=tools)
    assert n == 2
    extra = len("Be terse. ✓".encode()) + measure(tools)[0] + MESSAGE_OVERHEAD
    assert with_system == plain + extra


def test_loose_estimate_is_smaller_and_documented_as_such():
    msgs = [{"role": "user", "content": "x" * 4000}]
    strict, fp1, _ = Estimator().estimate("m", msgs)
    loose, fp2, _ = Estimator().estimate("m", msgs, strict=False)
    assert loose < strict and loose >= 1000 and fp1 == fp2


def test_fingerprint_depends_on_model_messages_and_tools_only():
    a = [{"role": "user", "content": "hi"}]
    b = [{"content": "hi", "role": "user"}]  # same message, keys in another order
    assert estimate("m", a)[1] == estimate("m", b)[1]
    assert estimate("m", a)[1] != estimate("m2", a)[1]
    assert estimate("m", a)[1] != estimate("m", [{"role": "user", "content": "ho"}])[1]
    assert estimate("m", a)[1] != estimate("m", a, tools=[{"name": "t"}])[1]
    assert isinstance(estimate("m", a)[1], int)


def test_growing_conversation_measures_only_new_messages():
    est = Estimator()
    conv = [{"role": "system", "content": "s"}]
    for i in range(200):
        conv.append({"role": "user", "content": f"turn {i}"})
        bound, fp, n = est.estimate("m", conv)
        assert n == len(conv)
    assert len(est._messages) == 201  # each message measured (and cached) once
    fresh = Estimator().estimate("m", conv)
    assert (bound, fp) == fresh[:2]  # the incremental figures equal a cold computation


def test_rebuilt_list_and_replaced_content_are_recomputed():
    est = Estimator()
    history = [{"role": "user", "content": "a" * 10}, {"role": "assistant", "content": "b"}]
    first = est.estimate("m", history)
    same = est.estimate("m", list(history))  # a new list of the same messages: same figures
    assert same == first
    edited = [history[0], {"role": "assistant", "content": "b" * 50}]  # a replaced message is measured again
    assert est.estimate("m", edited)[0] == first[0] + 49
    trimmed = [history[0]]
    assert est.estimate("m", trimmed)[0] == first[0] - measure(history[1])[0] - MESSAGE_OVERHEAD


def test_caches_are_bounded():
    from breaker import estimate as module

    est = Estimator()
    for i in range(module._MAX_CONVERSATIONS + 600):
        est.estimate("m", [{"role": "user", "content": str(i)}, {"role": "user", "content": "x"}])
    assert len(est._conversations) == module._MAX_CONVERSATIONS
    # long conversations: bounded by the messages they hold, whatever their number
    long = [[{"role": "user", "content": f"{c} {i}"} for i in range(5_000)] for c in range(2 * module._MAX_STORED // 5_000)]
    for conv in long:
        est.estimate("m", conv)
    assert est._stored == sum(len(s[0]) + 1 for b in est._conversations.values() for s in b) <= module._MAX_STORED
    assert len(est._conversations) < len(long)


def test_sdk_objects_and_non_ascii():
    from openai.types.chat import ChatCompletionMessage

    msg = ChatCompletionMessage(role="assistant", content="héllo ✓")
    bound, _, n = Estimator().estimate("m", [msg])
    assert n == 1 and bound >= len("héllo ✓".encode()) + MESSAGE_OVERHEAD + REQUEST_OVERHEAD


def test_concurrent_sibling_requests_get_consistent_figures():
    import threading

    est = Estimator()
    shared = [{"role": "system", "content": "s"}, {"role": "user", "content": "task"}]
    requests = [shared + [{"role": "assistant", "content": "x" * i}] for i in range(1, 60)]
    expected = [Estimator().estimate("m", r) for r in requests]
    wrong = []

    def work(offset):
        for j in range(len(requests)):
            i = (j + offset) % len(requests)
            if est.estimate("m", requests[i]) != expected[i]:
                wrong.append(i)

    threads = [threading.Thread(target=work, args=(k * 7,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []
