"""OpenAI embeddings and images through the real SDK against FakeLLM: metered, budgeted, priced
as genai-prices prices them, refused before sending when they cannot be paid for or priced."""

from __future__ import annotations

import logging

import openai
import pytest
from openai.types import CreateEmbeddingResponse

from breaker import Budget, BudgetExceeded, Degrade, SessionKilled, UnknownPrice, Usage
from breaker.testing import Reply
from tests.providers.routes_helpers import nano, reference

EMBED = "text-embedding-3-small"


# ------------------------------------------------------------------ embeddings
def test_embeddings_are_metered_at_the_reported_prompt_tokens(guard, fake):
    client = fake.openai(max_retries=0)
    with guard.session("embed") as s:
        r = client.embeddings.create(model=EMBED, input=["hello world", "a second text to embed"])
    reported = r.usage.prompt_tokens
    assert reported == 3 + 6 and s.calls == 1 and s.tokens == reported
    assert nano(s.cost_usd) == reference(Usage(input_tokens=reported), EMBED) > 0
    assert all(isinstance(x, float) for x in r.data[1].embedding)  # the SDK's base64 default, decoded
    assert fake.requests[0].body["encoding_format"] == "base64"


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_the_encoding_format_changes_nothing_billed(guard, fake, encoding):
    client = fake.openai(max_retries=0)
    with guard.session(f"enc-{encoding}") as s:
        r = client.embeddings.create(model=EMBED, input="some text here", encoding_format=encoding)
    assert isinstance(r.data[0].embedding, str if encoding == "base64" else list)  # the caller's own choice
    assert s.tokens == 4 and nano(s.cost_usd) == reference(Usage(input_tokens=4), EMBED)


async def test_async_embeddings_are_metered(guard, fake):
    client = fake.async_openai(max_retries=0)
    async with guard.session("embed-async") as s:
        r = await client.embeddings.create(model="text-embedding-3-large", input=["x" * 40, "y" * 8])
    assert r.usage.prompt_tokens == 12 and s.tokens == 12 and s.calls == 1
    assert nano(s.cost_usd) == reference(Usage(input_tokens=12), "text-embedding-3-large")


@pytest.mark.parametrize("tokens", [[list(range(60)), list(range(40))], list(range(100))])
def test_token_ids_are_an_exact_bound(make_guard, fake, tokens):
    """100 token ids reserve exactly 100 tokens and no output: a 100-token budget sends them, 99 refuses."""
    client = fake.openai(max_retries=0)
    guard = make_guard(budgets=[Budget(tokens=100)]).instrument()
    with guard.session("ids-fit") as s:
        client.embeddings.create(model=EMBED, input=tokens)
    assert fake.count == 1 and s.tokens == 100
    guard.uninstrument()
    tight = make_guard(budgets=[Budget(tokens=99)]).instrument()
    with pytest.raises(SessionKilled) as info:
        with tight.session("ids-over"):
            client.embeddings.create(model=EMBED, input=tokens)
    assert isinstance(info.value.__cause__, BudgetExceeded)
    assert fake.count == 1  # the refused call never reached the provider


def test_a_budget_refuses_embeddings_before_the_provider_sees_them(make_guard, fake):
    guard = make_guard(budgets=[Budget(usd=0.00001)]).instrument()  # 500 tokens at $0.02/M
    client = fake.openai(max_retries=0)
    text = "word " * 200  # 1,000 bytes: 1,000 tokens at most
    with guard.session("poor") as s:
        with pytest.raises(BudgetExceeded):
            client.embeddings.create(model=EMBED, input=text)
        assert s.calls == 0
    assert fake.count == 0
    with guard.session("fits") as s:
        client.embeddings.create(model=EMBED, input=text[:400])  # 400 bytes: affordable
    assert fake.count == 1 and s.tokens == 100


def test_outside_a_session_a_refused_embedding_raises_session_killed(make_guard, fake):
    make_guard(budgets=[Budget(usd=0.000001, per="global")]).instrument()
    with pytest.raises(SessionKilled):
        fake.openai(max_retries=0).embeddings.create(model=EMBED, input="z" * 1000)
    assert fake.count == 0


def test_an_unknown_embedding_model_is_refused_before_sending(guard, fake):
    with pytest.raises(UnknownPrice):
        fake.openai(max_retries=0).embeddings.create(model="my-own-embedder", input="hello")
    assert fake.count == 0


def test_embeddings_through_wrap_and_through_post_are_billed_once(make_guard, fake):
    guard = make_guard().instrument()  # create() and the client's post() are both patched
    client = fake.openai(max_retries=0)
    with guard.session("once") as s:
        client.embeddings.create(model=EMBED, input="twelve bytes")
        client.post("/embeddings", body={"model": EMBED, "input": "direct post"}, cast_to=CreateEmbeddingResponse)
    assert fake.count == 2 and s.calls == 2 and s.tokens == 3 + 3
    guard.uninstrument()
    other = make_guard()
    wrapped = other.wrap(fake.openai(max_retries=0))
    with other.session("wrapped") as s:
        wrapped.embeddings.create(model=EMBED, input="twelve bytes")
    assert s.calls == 1 and s.tokens == 3


def test_raw_embedding_responses_are_metered_where_parsed(guard, fake):
    client = fake.openai(max_retries=0)
    with guard.session("raw") as s:
        raw = client.embeddings.with_raw_response.create(model=EMBED, input="raw text")
        assert type(raw).__module__.startswith("openai.")  # the SDK's own object, untouched
        assert s.calls == 0
        parsed = raw.parse()
    assert parsed.usage.prompt_tokens == 2 and s.calls == 1 and s.tokens == 2


def test_unreadable_embedding_usage_is_billed_at_its_bound(guard, fake, caplog):
    fake.push(Reply(raw_usage={"prompt": "many"}))
    with guard.session("bad") as s, caplog.at_level(logging.WARNING, logger="breaker"):
        r = fake.openai(max_retries=0).embeddings.create(model=EMBED, input="x" * 30)
    assert r.data  # the response is returned unchanged
    assert s.tokens == 30 and nano(s.cost_usd) == reference(Usage(input_tokens=30), EMBED)


# ------------------------------------------------------------------ images
def test_gpt_image_usage_is_billed_in_its_own_units(guard, fake):
    client = fake.openai(max_retries=0)
    with guard.session("img") as s:
        r = client.images.generate(model="gpt-image-1.5", prompt="a red fox in snow", quality="high",
                                   size="1536x1024")
    u = r.usage
    assert u.output_tokens == 6208 and u.output_tokens_details.image_tokens == 6208
    billed = Usage(input_tokens=u.input_tokens, output_tokens=6208, output_image_tokens=6208)
    assert nano(s.cost_usd) == reference(billed, "gpt-image-1.5")
    # image output is priced at its own rate ($32/M), not the text rate ($10/M)
    assert nano(s.cost_usd) > reference(Usage(input_tokens=u.input_tokens, output_tokens=6208), "gpt-image-1.5")


def test_an_edit_bills_its_input_images(guard, fake):
    client = fake.openai(max_retries=0)
    with guard.session("edit") as s:
        r = client.images.edit(model="gpt-image-1", prompt="add a hat",
                               image=[("a.png", b"png-one"), ("b.png", b"png-two")], mask=("m.png", b"mask"))
    u = r.usage
    assert u.input_tokens_details.image_tokens == 3 * 323  # two images and a mask reached the fake
    billed = Usage(input_tokens=u.input_tokens, output_tokens=u.output_tokens,
                   input_image_tokens=u.input_tokens_details.image_tokens, output_image_tokens=u.output_tokens)
    assert nano(s.cost_usd) == reference(billed, "gpt-image-1")
    assert nano(s.cost_usd) > reference(Usage(input_tokens=u.input_tokens, output_tokens=u.output_tokens), "gpt-image-1")


async def test_async_image_stream_is_billed_from_its_completed_event(guard, fake):
    client = fake.async_openai(max_retries=0)
    async with guard.session("img-stream") as s:
        stream = await client.images.generate(model="gpt-image-1-mini", prompt="a boat", stream=True,
                                              partial_images=2, quality="low", size="1024x1024")
        kinds = [event.type async for event in stream]
    assert kinds == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]
    out = 272 + 2 * 100
    assert s.calls == 1
    assert nano(s.cost_usd) == reference(Usage(input_tokens=2, output_tokens=out, output_image_tokens=out),
                                         "gpt-image-1-mini")


def test_an_image_the_budget_cannot_pay_for_in_full_is_refused_unsent(make_guard, fake):
    # high quality 1024x1024 may be billed 4,160 output tokens ($0.166 at $40/M): a $0.10 budget
    # could pay for part of them, but an image cannot be cut short, so it is refused, not sent.
    guard = make_guard(budgets=[Budget(usd=0.10)]).instrument()
    client = fake.openai(max_retries=0)
    with guard.session("img-poor") as s:
        with pytest.raises(BudgetExceeded) as info:
            client.images.generate(model="gpt-image-1", prompt="a castle", quality="high", size="1024x1024")
        assert info.value.reason == "output_uncapped" and "cannot be capped" in str(info.value)
        assert fake.count == 0 and s.tripped is None  # not sticky: a cheaper image still goes
        client.images.generate(model="gpt-image-1", prompt="a castle", quality="low", size="1024x1024")
    assert fake.count == 1 and s.calls == 1


def test_degrade_that_caps_output_refuses_an_image_rather_than_overrun(make_guard, fake):
    guard = make_guard(budgets=[Budget(usd=10, degrade_at=0.0000001)],
                       degrade=Degrade(max_output_tokens=500)).instrument()
    client = fake.openai(max_retries=0)
    with guard.session("img-degraded"):
        client.embeddings.create(model=EMBED, input="x" * 100_000)  # crosses degrade_at: later calls are degraded
        with pytest.raises(BudgetExceeded, match="cannot be capped"):
            client.images.generate(model="gpt-image-1", prompt="p", quality="medium")
    assert fake.count == 1


def test_dall_e_has_no_price_and_is_refused_before_sending(guard, fake):
    with pytest.raises(UnknownPrice, match="dall-e-3"):
        fake.openai(max_retries=0).images.generate(model="dall-e-3", prompt="a lighthouse")
    assert fake.count == 0


def test_dall_e_with_a_per_image_price_is_billed_that_price(make_guard, fake):
    guard = make_guard(prices={"dall-e-3": {"input": 0, "output": 0, "request": 0.04}}).instrument()
    with guard.session("dalle") as s:
        r = fake.openai(max_retries=0).images.generate(model="dall-e-3", prompt="a lighthouse")
    assert r.data and r.usage is None  # DALL·E reports no usage
    assert s.calls == 1 and nano(s.cost_usd) == nano(0.04)


def test_an_image_request_without_a_model_is_not_sent_unpriced(guard, fake):
    with pytest.raises(UnknownPrice, match="model not given"):
        fake.openai(max_retries=0).images.generate(prompt="anything")
    assert fake.count == 0


def test_images_via_post_are_billed_once(guard, fake):
    client = fake.openai(max_retries=0)
    with guard.session("img-post") as s:
        client.images.generate(model="gpt-image-1", prompt="p", quality="low", size="1024x1024")
        client.post("/images/generations", body={"model": "gpt-image-1", "prompt": "p", "quality": "low",
                                                 "size": "1024x1024"}, cast_to=openai.types.ImagesResponse)
    assert fake.count == 2 and s.calls == 2
    one = reference(Usage(input_tokens=1, output_tokens=272, output_image_tokens=272), "gpt-image-1")
    assert nano(s.cost_usd) == 2 * one
