"""The routing rules: conditions composed like tenacity's, rules tried in order, mistakes refused."""

from __future__ import annotations

import pytest

from breaker import ConfigError
from breaker.adapter import Call
from breaker.routing import (Route, Router, has_tools, input_at_least, input_below, model_is, operation_is,
                             output_below, provider_is, resolve, streaming, targets, when)


def call(model="gpt-4o", tokens=100, tools=(), cap=None, provider="openai", operation="chat", stream=False) -> Call:
    return Call(model, provider, input_tokens=tokens, max_output_tokens=cap, tools=tuple(tools),
                operation=operation, stream=stream)


def test_conditions_compose_with_and_or_not():
    short_plain = model_is("gpt-4o") & input_below(2000) & ~has_tools()
    assert short_plain(call()) and not short_plain(call(tokens=2000)) and not short_plain(call(tools=["x"]))
    assert not short_plain(call(model="gpt-4.1"))
    either = has_tools("search") | input_at_least(10_000)
    assert either(call(tools=["search"])) and either(call(tokens=10_000)) and not either(call(tools=["other"]))
    assert output_below(500)(call(cap=100)) and not output_below(500)(call()) and not output_below(500)(call(cap=500))
    assert provider_is("anthropic")(call(provider="anthropic")) and not provider_is("anthropic")(call())
    assert operation_is("responses")(call(operation="responses")) and streaming()(call(stream=True))
    custom = when(lambda c: c.model.startswith("gpt")) & input_below(50)
    assert custom(call(tokens=10)) and not custom(call(tokens=60))
    assert repr(short_plain) == "((model_is('gpt-4o',) & input_below(2000)) & ~has_tools())"


def test_the_first_rule_that_names_a_model_decides():
    rules = Route("gpt-4o-mini", when=input_below(1000)) | Route("gpt-4.1", when=has_tools())
    assert isinstance(rules, Router)
    assert rules(call(tokens=10, tools=["x"])) == "gpt-4o-mini"  # both hold: the first wins
    assert rules(call(tokens=5000, tools=["x"])) == "gpt-4.1"
    assert rules(call(tokens=5000)) is None
    assert Route("gpt-4o-mini")(call()) == "gpt-4o-mini"  # no condition: always
    listed = resolve([Route("a-model", when=input_below(10)), lambda c: "fallback"])
    assert listed(call(tokens=5)) == "a-model" and listed(call(tokens=50)) == "fallback"
    assert resolve(None) is None and resolve([]) is None
    assert list(targets([rules, Route("x-model"), lambda c: None])) == ["gpt-4o-mini", "gpt-4.1", "x-model"]


@pytest.mark.parametrize("build, needle", [
    (lambda: Route(""), "must name the model"),
    (lambda: Route("gpt-4o-mini", when=42), "cannot combine"),
    (lambda: input_below(-1), "whole number of tokens"),
    (lambda: input_below(1.5), "whole number of tokens"),
    (lambda: model_is(), "one or more names"),
    (lambda: Router(Route("a-model"), "b"), "must be a Route or a function"),
    (lambda: resolve("gpt-4o-mini"), "give a function of the Call"),
    (lambda: input_below(10) & 3, "cannot combine"),
])
def test_mistakes_are_config_errors_that_say_the_fix(build, needle):
    with pytest.raises(ConfigError, match=needle):
        build()
