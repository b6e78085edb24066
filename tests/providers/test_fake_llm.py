"""FakeLLM itself, through the real SDKs: formats, caps, failures, counts."""

from __future__ import annotations

import anthropic
import openai
import pytest

from breaker.testing import FakeLLM, Reply

MSGS = [{"role": "user", "content": "hi"}]


@pytest.fixture
def fake():
    with FakeLLM() as server:
        yield server


def test_openai_chat_usage_and_cap(fake):
    client = fake.openai(max_retries=0)
    fake.push(Reply(text="one two three four five", input_tokens=50, cached_tokens=20, reasoning_tokens=3))
    r = client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, max_completion_tokens=5)
    assert r.usage.completion_tokens == 5  # 5 words + 3 reasoning capped at 5
    assert r.usage.completion_tokens_details.reasoning_tokens == 3
    assert r.choices[0].message.content == "one two "
    assert r.choices[0].finish_reason == "length"
    assert r.usage.prompt_tokens == 50 and r.usage.prompt_tokens_details.cached_tokens == 20
    assert fake.count == 1 and fake.requests[0].output_cap == 5


def test_anthropic_usage_excludes_cache_on_the_wire(fake):
    client = fake.anthropic(max_retries=0)
    fake.push(Reply(input_tokens=100, cached_tokens=30, cache_write_tokens=20, cache_write_1h_tokens=5))
    m = client.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=MSGS)
    assert m.usage.input_tokens == 50
    assert m.usage.cache_read_input_tokens == 30
    assert m.usage.cache_creation.ephemeral_1h_input_tokens == 5


def test_openai_stream_usage_chunk_only_when_asked(fake):
    client = fake.openai(max_retries=0)
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True))
    assert all(c.choices for c in chunks)
    chunks = list(client.chat.completions.create(
        model="gpt-4o-mini", messages=MSGS, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 3


def test_broken_stream_and_error_status(fake):
    client = fake.openai(max_retries=0)
    fake.push(Reply(break_after=2), Reply(status=503))
    seen = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True):
            seen.append(chunk)
    assert len(seen) == 2
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert fake.count == 2


def test_sdk_retries_reach_the_server_each_time(fake):
    client = fake.anthropic(max_retries=2)
    fake.push(Reply(status=529), Reply(status=500))
    client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MSGS)
    assert fake.count == 3


def test_exhausted_script_without_default_is_an_error():
    with FakeLLM([Reply()], default=None) as fake:
        client = fake.anthropic(max_retries=0)
        client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MSGS)
        with pytest.raises(anthropic.InternalServerError):
            client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MSGS)


def test_credentials_are_not_recorded(fake):
    fake.openai(api_key="sk-secret", max_retries=0).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert "authorization" not in fake.requests[0].headers
    assert "sk-secret" not in repr(fake.requests[0])


def test_chunk_count_and_caps_in_every_format(fake):
    oa, an = fake.openai(max_retries=0), fake.anthropic(max_retries=0)
    fake.push(Reply(text="one two three four", chunks=2))
    deltas = [c.choices[0].delta.content for c in oa.chat.completions.create(
        model="gpt-4o-mini", messages=MSGS, stream=True) if c.choices[0].delta.content]
    assert deltas == ["one two ", "three four"]
    fake.push(Reply(text="one two three four"))
    r = oa.responses.create(model="gpt-4o-mini", input="hi", max_output_tokens=2)
    assert r.status == "incomplete" and r.usage.output_tokens == 2 and r.output_text == "one two "
    fake.push(Reply(text="one two three four"))
    m = an.messages.create(model="claude-haiku-4-5", max_tokens=3, messages=MSGS)
    assert m.stop_reason == "max_tokens" and m.usage.output_tokens == 3


def test_replies_can_be_computed_from_the_request(fake):
    fake.default = lambda req: Reply(text=f"you sent {len(req.body['messages'])} messages")
    r = fake.openai(max_retries=0).chat.completions.create(model="gpt-4o-mini", messages=MSGS * 3)
    assert r.choices[0].message.content == "you sent 3 messages"
