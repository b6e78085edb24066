"""``BreakerHooks``: budgets and loop detection for OpenAI Agents SDK runs.

Admission happens in ``on_llm_start`` and settlement in ``on_llm_end``: the
SDK awaits ``on_llm_start`` before it sends the request and lets an
exception raised there propagate out of ``Runner.run``, so a refused call is
never sent. What hooks cannot do is change the request: the SDK has already
fixed the model and its settings when it calls them, so a ticket's patch
(cheaper model, lower ``max_tokens``) cannot be applied here, and a call
that the budget can pay only with such a patch is refused rather than sent
unchanged (it could spend more than was reserved). Set
``ModelSettings(max_tokens=...)`` on the agent so the worst case is bounded
by your cap; for OpenAI models (and LiteLLM's OpenAI and Azure routes, which
LiteLLM sends with the OpenAI SDK), ``guard.instrument()`` patches the real
request, and these hooks then stand aside so each call is counted once, and
capped by the layer that can cap it (see docs/integrations.md).

The SDK runs the two ``on_llm_*`` hooks in their own tasks, so the ticket
cannot travel in a ``contextvars`` variable from one to the other (nor into
the model call: an SDK layer under these hooks cannot see it), so it is kept
per run, keyed by the run's ``RunContextWrapper``, and a call whose
``on_llm_end`` never came (the model raised) is settled as failed when the
next call starts or when the run's context is garbage-collected.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from breaker import Breaker, ConfigError, Usage
from breaker.adapter import ESTIMATOR, Call, Ticket
from breaker.adapter import args_fingerprint, interned

try:
    from agents import Agent, RunContextWrapper, RunHooks
    from agents.items import ModelResponse
except ImportError as exc:  # pragma: no cover - exercised by the missing-framework test
    raise ImportError(
        f"BreakerHooks needs the OpenAI Agents SDK, which is not installed ({exc.name} is missing): "
        f"pip install 'agent-cost-breaker[openai-agents]'"
    ) from exc

__all__ = ["BreakerHooks", "usage_from_agents"]


class BreakerHooks(RunHooks[Any]):
    """``RunHooks`` that admit each model call before it is sent and settle it from ``response.usage``.

    Args:
        guard: the engine whose budgets apply (calls are attributed to the
            ``guard.session(...)`` that ``Runner.run`` is awaited in).
        model: the model name to price calls with when the agent's model is
            not a plain model name (a custom ``Model`` object, a LiteLLM
            route, an Azure deployment name).

    A refused call raises ``breaker.Tripped`` out of ``Runner.run`` (a
    ``BaseException``: ``except Exception`` around the run cannot swallow it);
    the session boundary turns it into ``breaker.SessionKilled``.
    """

    def __init__(self, guard: Breaker, model: str | None = None) -> None:
        if not isinstance(guard, Breaker):
            raise ConfigError(f"BreakerHooks needs a breaker.Breaker, got {guard!r}")
        if model is not None and (not isinstance(model, str) or not model):
            raise ConfigError(f"BreakerHooks(model={model!r}) must be a model name such as 'gpt-4o'")
        self.guard = guard
        self.model = model
        self._pending: dict[int, Ticket] = {}
        self._lock = threading.Lock()

    async def on_llm_start(
        self, context: RunContextWrapper[Any], agent: Agent[Any], system_prompt: str | None, input_items: list[Any]
    ) -> None:
        self._abandon(id(context), RuntimeError("the previous model call raised before on_llm_end"))
        if _seen_by_sdk_layer(self.guard, agent.model):
            return  # guard.instrument() / guard.wrap(client) admits this call where it can patch it: count it once
        ticket = await self.guard.admit_async(self._describe(agent, system_prompt, input_items))
        self.guard.require_unpatched(
            ticket, layer=f"RunHooks (agent {agent.name!r})",
            model_fix="use guard.instrument() (its SDK layer degrades the real request) or no degrade budget",
            cap_fix="set Agent(model_settings=ModelSettings(max_tokens=...)) low enough",
        )
        key = id(context)
        with self._lock:
            first = key not in self._pending
            self._pending[key] = ticket
        if first:
            try:
                weakref.finalize(context, self._abandon, key, RuntimeError("the run ended without on_llm_end"))
            except TypeError:  # a context that cannot be weakly referenced: settled on the next call only
                pass

    async def on_llm_end(self, context: RunContextWrapper[Any], agent: Agent[Any], response: ModelResponse) -> None:
        with self._lock:
            ticket = self._pending.pop(id(context), None)
        if ticket is None:
            return
        await self.guard.settle_async(ticket, usage_from_agents(response.usage), tool_calls=_tool_calls(response.output))

    # ------------------------------------------------------------------ steps
    def _abandon(self, key: int, error: BaseException) -> None:
        with self._lock:
            ticket = self._pending.pop(key, None)
        if ticket is not None:
            self.guard.settle(ticket, None, error=error)

    def _describe(self, agent: Agent[Any], system_prompt: str | None, input_items: Any) -> Call:
        name = self.model or _model_name(agent.model)
        if name is None:
            raise ConfigError(
                f"Agent {agent.name!r} uses {type(agent.model).__name__}, whose price breaker cannot tell; "
                f"name the model to price it as: BreakerHooks(guard, model='gpt-4o')"
            )
        provider: str | None = "openai"  # the SDK's default provider
        if name.startswith("litellm/"):  # "litellm/anthropic/claude-..."; the price table splits the prefix
            name, provider = name[len("litellm/"):], None
        tools = [_tool_data(t) for t in agent.tools] + [_handoff_data(h) for h in agent.handoffs]
        # The SDK's input items are the Responses API's wire items (what it sends, or converts one for one
        # into chat messages): bounded as the SDK layer bounds them, tightened from the reported input of
        # the request they extend.
        items = interned([{"role": "user", "content": input_items}] if isinstance(input_items, str) else list(input_items))
        bound, by_bytes, fp, count, _ = ESTIMATOR.bounds(
            name, items, system=system_prompt, tools=tools or None, strict=self.guard.input_estimate != "loose",
        )
        settings = agent.model_settings
        return Call(
            name, provider, input_tokens=bound, max_output_tokens=settings.max_tokens if settings else None,
            fingerprint=fp, tools=tuple(t["name"] for t in tools), operation="chat", messages=count,
            attrs={"framework": "openai-agents", "agent": agent.name}, input_bytes=by_bytes, learn=ESTIMATOR.learn,
        )


# ---------------------------------------------------------------------- stable message objects
def _seen_by_sdk_layer(guard: Breaker, model: Any) -> bool:
    """Whether the OpenAI SDK layer of ``guard`` (``instrument()`` or ``wrap(client)``) will see this call.

    Then that layer admits it (it sees the exact request and can lower its
    cap or switch its model) and these hooks stand aside, so the call is
    counted once.
    """
    client = getattr(model, "_client", None)
    if client is not None and id(guard) in getattr(client, "__dict__", {}).get("_breaker_guards", ()):
        return True
    if not guard.instrumented:
        return False
    route = _litellm_route(model)
    if route is not None:  # LiteLLM sends OpenAI and Azure routes with the (patched) OpenAI SDK
        return _litellm_provider(route) in ("openai", "azure")
    if model is None or isinstance(model, str):
        return True
    from agents.models.openai_chatcompletions import OpenAIChatCompletionsModel
    from agents.models.openai_responses import OpenAIResponsesModel

    return isinstance(model, (OpenAIChatCompletionsModel, OpenAIResponsesModel))


def _litellm_route(model: Any) -> str | None:
    """The LiteLLM route (``"openai/gpt-4o"``) of a ``"litellm/..."`` model name or a ``LitellmModel``."""
    if isinstance(model, str):
        return model[len("litellm/"):] if model.startswith("litellm/") else None
    if type(model).__module__.startswith("agents.extensions.models.litellm"):
        name = getattr(model, "model", None)
        return name if isinstance(name, str) else None
    return None


def _litellm_provider(route: str) -> str | None:
    try:
        import litellm

        return str(litellm.get_llm_provider(model=route)[1])
    except Exception:  # LiteLLM missing, or a route it does not know: the hooks count the call
        return None


def usage_from_agents(usage: Any) -> Usage:
    """An Agents SDK ``Usage`` as a ``breaker.Usage``.

    The SDK reports OpenAI's convention: ``input_tokens`` includes
    ``input_tokens_details.cached_tokens`` (and ``cache_write_tokens``) and ``output_tokens`` includes
    ``output_tokens_details.reasoning_tokens`` — the same as ``breaker.Usage``.
    """
    details = getattr(usage, "input_tokens_details", None)
    cached = getattr(details, "cached_tokens", 0) or 0
    written = getattr(details, "cache_write_tokens", 0) or 0
    reasoning = getattr(getattr(usage, "output_tokens_details", None), "reasoning_tokens", 0) or 0
    return Usage(
        input_tokens=int(usage.input_tokens or 0),
        output_tokens=int(usage.output_tokens or 0),
        cache_read_tokens=int(cached),
        cache_write_tokens=int(written),
        reasoning_tokens=int(reasoning),
        requests=max(int(getattr(usage, "requests", 1) or 1), 1),
    )


def _model_name(model: Any) -> str | None:
    if model is None:
        from agents.models import get_default_model

        return get_default_model()
    if isinstance(model, str):
        return model
    name = getattr(model, "model", None)
    return name if isinstance(name, str) and name else None


def _tool_data(tool: Any) -> dict[str, Any]:
    return {
        "name": str(getattr(tool, "name", type(tool).__name__)),
        "description": getattr(tool, "description", None),
        "parameters": getattr(tool, "params_json_schema", None),
    }


def _handoff_data(handoff: Any) -> dict[str, Any]:
    name = getattr(handoff, "tool_name", None) or f"transfer_to_{getattr(handoff, 'name', 'agent')}"
    return {
        "name": str(name),
        "description": getattr(handoff, "tool_description", None) or getattr(handoff, "handoff_description", None),
        "parameters": getattr(handoff, "input_json_schema", None),
    }


def _tool_calls(output: Any) -> tuple[tuple[str, str], ...]:
    calls = []
    for item in output or ():
        if getattr(item, "type", None) == "function_call":
            calls.append((str(item.name), args_fingerprint(item.arguments)))
    return tuple(calls)
