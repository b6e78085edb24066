"""instrument / uninstrument / wrap, and a call seen by two layers counted once."""

from __future__ import annotations

import importlib

import anthropic.resources.beta.messages.messages as beta_mod
import anthropic.resources.messages.messages as anth_mod
import anthropic._base_client as anth_http
import openai._base_client as openai_http
import openai.resources.chat.completions.completions as chat_mod
import openai.resources.responses.responses as resp_mod
import pytest

from breaker import Breaker, ConfigError
from breaker.adapter import Call
from breaker.providers.patching import TARGETS
from tests.providers.conftest import ANTHROPIC_MODEL, OPENAI_MODEL, messages

MODULES = {m.__name__: m for m in (chat_mod, resp_mod, anth_mod, beta_mod, openai_http, anth_http)}


def _originals():
    return {(mod, cls, name): vars(getattr(MODULES.get(mod) or importlib.import_module(mod), cls))[name]
            for mod, cls, name, _, _ in TARGETS}


def test_instrument_is_idempotent_and_uninstrument_restores_the_originals(make_guard, fake):
    before = _originals()
    guard = make_guard()
    guard.instrument()
    guard.instrument()
    patched = _originals()
    assert all(patched[k] is not before[k] for k in before)  # every path is patched
    assert all(patched[k].__wrapped__ is before[k] for k in before)  # exactly once
    guard.uninstrument()
    guard.uninstrument()
    assert _originals() == before and all(_originals()[k] is before[k] for k in before)
    with guard.session("after") as s:  # after uninstrument nothing is counted
        fake.openai(max_retries=0).chat.completions.create(model=OPENAI_MODEL, messages=messages("after"))
    assert s.calls == 0 and fake.count == 1


def test_clients_made_before_instrument_are_covered(make_guard, fake):
    client = fake.openai(max_retries=0)
    client.chat.completions.create(model=OPENAI_MODEL, messages=messages("early"))  # resource already built
    guard = make_guard().instrument()
    with guard.session("early") as s:
        client.chat.completions.create(model=OPENAI_MODEL, messages=messages("later"))
    assert s.calls == 1


def test_a_second_guard_cannot_instrument_over_the_first(make_guard):
    make_guard().instrument()
    with pytest.raises(ConfigError, match="wrap"):
        make_guard().instrument()


def test_wrap_instruments_one_client_only(make_guard, fake):
    guard = make_guard()
    wrapped = guard.wrap(fake.anthropic(max_retries=0))
    assert guard.wrap(wrapped) is wrapped  # idempotent
    plain = fake.anthropic(max_retries=0)
    with guard.session("one") as s:
        wrapped.messages.create(model=ANTHROPIC_MODEL, max_tokens=10, messages=messages("w"))
        with wrapped.messages.stream(model=ANTHROPIC_MODEL, max_tokens=10, messages=messages("ws")) as st:
            st.until_done()
        plain.messages.create(model=ANTHROPIC_MODEL, max_tokens=10, messages=messages("p"))
    assert s.calls == 2 and fake.count == 3


async def test_wrap_async_client(make_guard, fake):
    guard = make_guard()
    client = guard.wrap(fake.async_openai(max_retries=0))
    async with guard.session("async-wrap") as s:
        await client.chat.completions.create(model=OPENAI_MODEL, messages=messages("aw"))
        await client.responses.create(model=OPENAI_MODEL, input="aw")
    assert s.calls == 2


def test_two_guards_in_one_process(make_guard, fake):
    a, b = make_guard(), make_guard()
    ca, cb = a.wrap(fake.openai(max_retries=0)), b.wrap(fake.openai(max_retries=0))
    with a.session("a") as sa, b.session("b") as sb:
        ca.chat.completions.create(model=OPENAI_MODEL, messages=messages("a"))
        cb.chat.completions.create(model=OPENAI_MODEL, messages=messages("b1"))
        cb.chat.completions.create(model=OPENAI_MODEL, messages=messages("b2"))
    assert (sa.calls, sb.calls) == (1, 2)
    assert a.spent("global").calls == 1 and b.spent("global").calls == 2


def test_wrap_rejects_what_is_not_a_client(make_guard):
    with pytest.raises(ConfigError, match="OpenAI"):
        make_guard().wrap(object.__new__(type("NotAClient", (), {})))


def test_an_outer_layer_admits_and_the_sdk_patch_passes_through(guard, fake):
    """What a framework plugin does: admit itself, mark the call in flight; the patch must not count it again."""
    client = fake.openai(max_retries=0)
    with guard.session("outer") as s:
        ticket = guard.admit(Call(OPENAI_MODEL, "openai", input_tokens=100, max_output_tokens=50, fingerprint=1))
        with guard.sending(ticket):
            client.chat.completions.create(model=OPENAI_MODEL, messages=messages("outer"))
        from breaker import Usage

        guard.settle(ticket, Usage(10, 3))
        assert s.calls == 1 and s.tokens == 13
    assert "max_completion_tokens" not in fake.requests[0].body  # passed through untouched


def test_inflight_is_set_only_during_the_call(guard, fake):
    seen = []

    def hook(request):
        seen.append(guard.inflight())
        return request

    client = fake.openai(max_retries=0, http_client=None)
    client._client.event_hooks["request"].append(hook)
    with guard.session("flight"):
        client.chat.completions.create(model=OPENAI_MODEL, messages=messages("flight"))
    assert len(seen) == 1 and seen[0] is not None and guard.inflight() is None


def test_instrument_through_breaker_methods(fake):
    guard = Breaker(alerts=[])
    assert guard.instrument() is guard
    try:
        with guard.session("m") as s:
            fake.anthropic(max_retries=0).beta.messages.create(model=ANTHROPIC_MODEL, max_tokens=5,
                                                               messages=messages("m"))
        assert s.calls == 1
    finally:
        guard.uninstrument()


def test_wrap_and_instrument_together_count_a_call_once(guard, fake):
    client = guard.wrap(fake.openai(max_retries=0))  # the wrapped method calls the class-level patch inside it
    with guard.session("both") as s:
        client.chat.completions.create(model=OPENAI_MODEL, messages=messages("both"))
        with client.chat.completions.stream(model=OPENAI_MODEL, messages=messages("both-s")) as st:
            st.get_final_completion()
    assert s.calls == 2 and fake.count == 2


def test_an_sdk_that_is_not_installed_is_skipped(make_guard, fake, monkeypatch):
    import breaker.providers.patching as providers

    missing = ("no_such_llm_sdk.resources", "Messages", "create", "messages", "call")
    monkeypatch.setattr(providers, "TARGETS", providers.TARGETS + (missing,))
    guard = make_guard().instrument()  # no ImportError: the absent SDK is skipped, the others patched
    with guard.session("partial") as s:
        fake.openai(max_retries=0).chat.completions.create(model=OPENAI_MODEL, messages=messages("partial"))
    assert s.calls == 1
