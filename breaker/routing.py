"""Routing by rule: a request sent to another model before it is priced, reserved and sent.

Why: most of an agent's requests are simple, and sending every one of them to the frontier
model is the usual way a bill grows faster than the work. ``Breaker(route=...)`` takes a
function ``route(call) -> model name or None`` (``None``: send the request as written), or a
list of small rules. The engine asks it once per call, after the loop checks and **before
the budgets**: the reservation is for the model that will be sent, the provider adapter
switches the request's model the way a degrade does (``Patch(model=...)``), and the ledger
records both names (``CallRecord.requested_model``, flag ``"routed"``), so ``breaker report``
shows what each rule saved. The rule sees the ``Call`` only: the content-free description
(model, provider, input bound, output cap, tool names, operation), never the prompt.

Rules compose like tenacity's strategies. A ``Route(model, when=condition)`` sends to
``model`` when its condition holds; conditions combine with ``&``, ``|`` and ``~``; rules
combine with ``|`` (or a list), and the first rule whose condition holds decides::

    from breaker.routing import Route, has_tools, input_below, model_is

    guard = Breaker(route=[
        Route("gpt-4o-mini", when=model_is("gpt-4o") & input_below(2_000) & ~has_tools()),
        Route("claude-haiku-4-5", when=model_is("claude-sonnet-4-5") & input_below(1_000)),
    ])
    # or any function of the Call:
    guard = Breaker(route=lambda call: "gpt-4o-mini" if call.input_tokens < 2000 and not call.tools else None)

``call.input_tokens`` is the engine's input *bound* (the request's UTF-8 bytes unless the
provider reported the conversation so far: see ``breaker.estimate``), so ``input_below(2000)``
picks requests whose bound is under 2,000 tokens: short ones, measured conservatively.

A layer that sees a request too late to change its model (a LangChain callback, LiteLLM's
logging hook, the OpenAI Agents SDK's ``RunHooks``) cannot route: such a call is refused with a
``ConfigError`` that says so (use the SDK layer, ``guard.instrument()``, or the plugin that can
change the model). The SDK adapters, ``BreakerMiddleware``, ``BreakerCapability`` and LiteLLM's
pre-call hook route.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

from .adapter import Call
from .errors import ConfigError

__all__ = [
    "Condition", "Route", "Router", "has_tools", "input_at_least", "input_below", "model_is", "operation_is",
    "output_below", "provider_is", "resolve", "streaming", "targets", "when",
]

RouteFn = Callable[[Call], "str | None"]


class Condition:
    """A test of a ``Call``, composable with ``&``, ``|`` and ``~`` (and readable in its ``repr``)."""

    __slots__ = ("test", "text")

    def __init__(self, test: Callable[[Call], bool], text: str) -> None:
        if not callable(test):
            raise ConfigError(f"a routing condition needs a function of the Call, got {test!r}")
        self.test = test
        self.text = text

    def __call__(self, call: Call) -> bool:
        return bool(self.test(call))

    # The composed tests close over the plain functions, not the Conditions: a route runs on every call.
    def __and__(self, other: Condition | Callable[[Call], bool]) -> Condition:
        b = _condition(other)
        x, y = self.test, b.test
        return Condition(lambda call: x(call) and y(call), f"({self.text} & {b.text})")

    def __or__(self, other: Condition | Callable[[Call], bool]) -> Condition:
        b = _condition(other)
        x, y = self.test, b.test
        return Condition(lambda call: x(call) or y(call), f"({self.text} | {b.text})")

    def __invert__(self) -> Condition:
        x = self.test
        return Condition(lambda call: not x(call), f"~{self.text}")

    def __repr__(self) -> str:
        return self.text


def _condition(value: Any) -> Condition:
    if isinstance(value, Condition):
        return value
    if callable(value):
        return when(value)
    raise ConfigError(f"cannot combine a routing condition with {value!r}: use conditions such as "
                      f"input_below(2000), or when(lambda call: ...)")


def when(predicate: Callable[[Call], bool], text: str | None = None) -> Condition:
    """Any predicate of the ``Call`` as a condition: ``when(lambda call: call.stream)``."""
    return Condition(predicate, text or str(getattr(predicate, "__name__", "when(...)")))


def _tokens(name: str, value: object) -> int:
    if type(value) is not int or value < 0:
        raise ConfigError(f"{name}({value!r}): give a whole number of tokens, e.g. {name}(2000)")
    return value


def _names(name: str, values: tuple[object, ...]) -> frozenset[str]:
    if not values or not all(isinstance(v, str) and v for v in values):
        raise ConfigError(f"{name}{values!r}: give one or more names, e.g. {name}('gpt-4o')")
    return frozenset(values)  # type: ignore[arg-type]


def input_below(tokens: int) -> Condition:
    """The request's input bound is under ``tokens``."""
    n = _tokens("input_below", tokens)
    return Condition(lambda call: call.input_tokens < n, f"input_below({n})")


def input_at_least(tokens: int) -> Condition:
    """The request's input bound is ``tokens`` or more."""
    n = _tokens("input_at_least", tokens)
    return Condition(lambda call: call.input_tokens >= n, f"input_at_least({n})")


def output_below(tokens: int) -> Condition:
    """The request caps its output under ``tokens`` (a request with no cap does not)."""
    n = _tokens("output_below", tokens)
    return Condition(lambda call: call.max_output_tokens is not None and call.max_output_tokens < n,
                     f"output_below({n})")


def has_tools(*names: str) -> Condition:
    """The request offers tools (any, or one of ``names``)."""
    if not names:
        return Condition(lambda call: bool(call.tools), "has_tools()")
    wanted = _names("has_tools", names)
    return Condition(lambda call: not wanted.isdisjoint(call.tools), f"has_tools{tuple(sorted(wanted))!r}")


def model_is(*models: str) -> Condition:
    """The request asks for one of ``models`` (as the request names it)."""
    wanted = _names("model_is", models)
    return Condition(lambda call: call.model in wanted, f"model_is{tuple(sorted(wanted))!r}")


def provider_is(*providers: str) -> Condition:
    """The request goes to one of ``providers`` (``"openai"``, ``"anthropic"``…)."""
    wanted = _names("provider_is", providers)
    return Condition(lambda call: call.provider in wanted, f"provider_is{tuple(sorted(wanted))!r}")


def operation_is(*operations: str) -> Condition:
    """The request is one of ``operations`` (``"chat"``, ``"responses"``, ``"embeddings"``…)."""
    wanted = _names("operation_is", operations)
    return Condition(lambda call: call.operation in wanted, f"operation_is{tuple(sorted(wanted))!r}")


def streaming() -> Condition:
    """The response is streamed."""
    return Condition(lambda call: call.stream, "streaming()")


@dataclass(frozen=True)
class Route:
    """Send to ``model`` when ``when`` holds (always, without one); otherwise no opinion (``None``)."""

    model: str
    when: Condition | Callable[[Call], bool] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError(f"Route(model={self.model!r}) must name the model to send to, e.g. Route('gpt-4o-mini')")
        if self.when is not None:
            object.__setattr__(self, "when", _condition(self.when))
        object.__setattr__(self, "_test", self.when.test if isinstance(self.when, Condition) else None)

    def __call__(self, call: Call) -> str | None:
        test = self._test  # type: ignore[attr-defined]
        if test is None or test(call):
            return self.model
        return None

    def __or__(self, other: RouteFn) -> Router:
        return Router(self, other)


class Router:
    """Rules tried in order; the first that names a model decides (``None`` from all: no routing)."""

    __slots__ = ("rules",)
    rules: tuple[RouteFn, ...]

    def __init__(self, *rules: RouteFn) -> None:
        flat: list[RouteFn] = []
        for rule in rules:
            if isinstance(rule, Router):
                flat.extend(rule.rules)
            elif callable(rule):
                flat.append(rule)
            else:
                raise ConfigError(f"a route rule must be a Route or a function of the Call, got {rule!r}")
        self.rules = tuple(flat)

    def __call__(self, call: Call) -> str | None:
        for rule in self.rules:
            model = rule(call)
            if model is not None:
                return model
        return None

    def __or__(self, other: RouteFn) -> Router:
        return Router(self, other)

    def __repr__(self) -> str:
        return f"Router({', '.join(map(repr, self.rules))})"


def resolve(route: Any) -> RouteFn | None:
    """``Breaker(route=...)`` as one function: ``None``, a function, or a list of rules."""
    if route is None:
        return None
    if isinstance(route, (list, tuple)):
        return Router(*route) if route else None
    if callable(route):
        return route  # type: ignore[no-any-return]
    raise ConfigError(
        f"route={route!r}: give a function of the Call returning a model name or None "
        f"(route=lambda call: 'gpt-4o-mini' if call.input_tokens < 2000 else None), or a list of "
        f"breaker.routing.Route rules")


def targets(route: Any) -> Iterable[str]:
    """The models ``Route`` rules inside ``route`` name (checked for a price at construction)."""
    if isinstance(route, Route):
        yield route.model
    elif isinstance(route, Router):
        for rule in route.rules:
            yield from targets(rule)
    elif isinstance(route, (list, tuple)):
        for rule in route:
            yield from targets(rule)
