"""``BreakerLogger``: budgets and loop detection for ``litellm.completion`` / ``acompletion``.

Async calls (``acompletion``) are admitted in ``async_pre_call_deployment_hook``,
which LiteLLM awaits before it builds the request and which may change the
request: the ticket's patch is applied there (a lower ``max_tokens``, a
cheaper model, a lower ``reasoning_effort`` but never a higher one than the
caller set), and the call is settled in
``async_post_call_success_deployment_hook``, in the same task, as soon as the
response is back. Sync calls (``completion``) have no such hook: they are
admitted in ``log_pre_api_call``, which LiteLLM calls right before the
provider request (a ``breaker.Tripped`` passes through its ``except
Exception``, so a refused call is never sent), when the request is already
built — a call the budget can pay only with a patch is refused rather than
sent unchanged — and settled in the success event, which LiteLLM runs in a
worker thread. Failures are settled in the failure events. Every step is
matched by ``litellm_call_id``; whichever event comes first settles, the
others find nothing to do.

Without ``max_tokens`` the worst case is the model's maximum output (from
LiteLLM's model table).
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

from breaker import Breaker, ConfigError, Usage
from breaker.adapter import ESTIMATOR, Call, Patch, Ticket
from breaker.adapter import args_fingerprint, interned, lower_effort, measure

try:
    import litellm
    from litellm.integrations.custom_logger import CustomLogger
except ImportError as exc:  # pragma: no cover - exercised by the missing-framework test
    raise ImportError(
        f"BreakerLogger needs LiteLLM, which is not installed ({exc.name} is missing): "
        f"pip install 'agent-cost-breaker[litellm]'"
    ) from exc

__all__ = ["BreakerLogger", "usage_from_litellm"]

_CAPS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
_PENDING_LIMIT = 10_000
_IDS = itertools.count(1)


class BreakerLogger(CustomLogger):
    """A LiteLLM ``CustomLogger`` that admits calls before they are sent and settles them exactly.

    Args:
        guard: the engine whose budgets apply (calls are attributed to the
            ``guard.session(...)`` the call is made in; LiteLLM copies the
            context into the threads it uses).

    Register it with ``litellm.callbacks = [BreakerLogger(guard)]``. A refused
    call raises ``breaker.Tripped`` out of ``litellm.completion`` (a
    ``BaseException`` that ``except Exception`` cannot swallow).

    **Replacing it.** LiteLLM copies ``litellm.callbacks`` into internal lists
    (``input_callback``, ``success_callback``...) and never takes a logger out
    of them when ``litellm.callbacks`` is reassigned; it also skips adding a
    logger to most of them when one "like it" is there already, comparing the
    class and its public plain attributes. So each logger carries its own
    ``logger_id`` (a new logger is never taken for the old one: it gets its
    success and failure events), and a logger that was in ``litellm.callbacks``
    and is no longer there is retired: it admits no new call (the call is not
    admitted twice, nor left to a logger that never hears of its end) and still
    settles the calls it admitted.
    """

    def __init__(self, guard: Breaker) -> None:
        if not isinstance(guard, Breaker):
            raise ConfigError(f"BreakerLogger needs a breaker.Breaker, got {guard!r}")
        super().__init__()
        self.guard = guard
        self.logger_id = next(_IDS)  # LiteLLM's key for "the same logger" (see the class docstring)
        self._listed = False  # seen in litellm.callbacks: once it is gone from there, the logger is retired
        self._pending: dict[str, Ticket] = {}
        self._lock = threading.Condition()

    def _retired(self) -> bool:
        """Whether this logger was taken out of ``litellm.callbacks`` (see the class docstring)."""
        if any(callback is self for callback in litellm.callbacks or ()):
            self._listed = True
            return False
        return self._listed

    def wait_settled(self, timeout: float = 10.0) -> bool:
        """Wait until every admitted call is settled; ``False`` if some are still open after ``timeout``.

        LiteLLM runs sync success callbacks in a worker thread after
        ``completion`` has returned, so a session's figures can lag its last
        call by that much; call this before reading them at the end of a run.
        """
        with self._lock:
            return self._lock.wait_for(lambda: not self._pending, timeout)

    async def wait_settled_async(self, timeout: float = 10.0) -> bool:
        """``wait_settled`` for event loops: LiteLLM settles async calls in tasks on this loop, so yield to them."""
        import asyncio

        deadline = asyncio.get_running_loop().time() + timeout
        while self._pending:
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    # ------------------------------------------------------------------ admission
    async def async_pre_call_deployment_hook(self, kwargs: dict[str, Any], call_type: Any) -> dict[str, Any] | None:
        """Admit an async call before LiteLLM builds the request, and apply the ticket's patch to it."""
        messages = kwargs.get("messages")
        if messages is None or self._retired():
            return None  # not a chat call, or a logger replaced in litellm.callbacks
        model, provider = _split(kwargs.get("model") or "", kwargs.get("custom_llm_provider"))
        call = self._to_admit(
            model, messages, {**kwargs, "optional_params": kwargs, "custom_llm_provider": provider},
            seen_as={"custom_llm_provider": provider, "litellm_params": kwargs},
        )
        if call is None:
            return None
        ticket = await self.guard.admit_async(call)
        self._hold(_call_id(kwargs), ticket)
        return _patched(kwargs, model, ticket.patch)

    async def async_post_call_success_deployment_hook(self, request_data: dict[str, Any], response: Any, call_type: Any) -> Any:
        """Settle an async call as soon as its response is back (same task: the next call sees the spend)."""
        await self._settle_async(request_data, response)
        return None

    def log_pre_api_call(self, model: str, messages: Any, kwargs: dict[str, Any]) -> None:
        """Admit a sync call right before it is sent (async calls were admitted already)."""
        key = _call_id(kwargs)
        with self._lock:
            if key in self._pending:
                return  # admitted by async_pre_call_deployment_hook
        if self._retired():
            return  # replaced in litellm.callbacks: its successor admits the call
        call = self._to_admit(model, messages, kwargs, seen_as=kwargs)
        if call is None:
            return
        ticket = self.guard.admit(call)
        self.guard.require_unpatched(
            ticket, layer="LiteLLM's logging hook (the request is built already)",
            model_fix="use guard.instrument() for OpenAI/Anthropic clients, or no degrade budget",
            cap_fix="pass max_tokens= low enough",
        )
        self._hold(key, ticket)

    def _to_admit(self, model: str, messages: Any, kwargs: dict[str, Any], *, seen_as: dict[str, Any]) -> Call | None:
        """The ``Call`` to admit, or ``None`` when another layer counts this call once: an outer layer
        already sending it, or ``guard.instrument()``, which admits it inside the OpenAI SDK, where it
        can patch it."""
        if self.guard.inflight() is not None or _seen_by_sdk_layer(self.guard, seen_as):
            return None
        return self._describe(model, messages, kwargs)

    def _hold(self, key: str | None, ticket: Ticket) -> None:
        """Keep ``ticket`` until an event settles it; a leftover under the same id (a retry) is settled as failed."""
        with self._lock:
            stale = self._pending.pop(key, None) if key else None
            if key:
                self._pending[key] = ticket
                if len(self._pending) > _PENDING_LIMIT:  # events that never came: give the oldest back
                    oldest = next(iter(self._pending))
                    stale = stale or self._pending.pop(oldest)
        if stale is not None:  # a retry of the same call id: the earlier attempt failed
            self.guard.settle(stale, None, error=RuntimeError("retried by LiteLLM"))
        if not key:
            self.guard.release(ticket)  # nothing to match a settlement to: enforce, do not leak

    # ------------------------------------------------------------------ settlement
    def log_success_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._settle(kwargs, response_obj)

    async def async_log_success_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any) -> None:
        await self._settle_async(kwargs, response_obj)

    def log_failure_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._settle(kwargs, _FAILED)

    async def async_log_failure_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any) -> None:
        await self._settle_async(kwargs, _FAILED)

    def _take(self, kwargs: dict[str, Any]) -> Ticket | None:
        key = _call_id(kwargs)
        with self._lock:
            return self._pending.pop(key, None) if key else None

    def _done(self) -> None:
        with self._lock:
            self._lock.notify_all()

    # _settle and _settle_async differ only in awaiting; what to settle with is _ending's.
    def _settle(self, kwargs: dict[str, Any], response: Any) -> None:
        if (ticket := self._take(kwargs)) is not None:
            try:
                self.guard.settle(ticket, **_ending(ticket, kwargs, response))
            finally:
                self._done()

    async def _settle_async(self, kwargs: dict[str, Any], response: Any) -> None:
        if (ticket := self._take(kwargs)) is not None:
            try:
                await self.guard.settle_async(ticket, **_ending(ticket, kwargs, response))
            finally:
                self._done()

    # ------------------------------------------------------------------ request
    def _describe(self, model: str, messages: Any, kwargs: dict[str, Any]) -> Call:
        params = kwargs.get("optional_params") or {}
        provider = kwargs.get("custom_llm_provider") or (kwargs.get("litellm_params") or {}).get("custom_llm_provider")
        cap = next((params[c] for c in _CAPS if isinstance(params.get(c), int)), None)
        if cap is None:
            cap = _max_output(model, provider)
        tools = params.get("tools") or params.get("functions")
        system = params.get("system")
        # LiteLLM's ``messages`` are OpenAI chat dicts for every provider (it translates them itself): the
        # wire form the SDK layer bounds, so the same bound, tightened from the reported input of the
        # request they extend.
        sent = kwargs.get("messages")
        items = interned(sent if isinstance(sent, list) else messages if isinstance(messages, list) else [messages])
        bound, by_bytes, fp, count, _ = ESTIMATOR.bounds(
            model, items, system=system, tools=tools or None, strict=self.guard.input_estimate != "loose",
            extra=_distinct(params),
        )
        names = tuple(_tool_name(t) for t in tools or ())
        return Call(
            model, provider, input_tokens=bound, max_output_tokens=cap, fingerprint=fp, tools=names,
            stream=bool(params.get("stream") or kwargs.get("stream")), messages=count,
            attrs={"framework": "litellm"}, input_bytes=by_bytes, learn=ESTIMATOR.learn,
        )


def usage_from_litellm(usage: Any) -> Usage:
    """A LiteLLM ``Usage`` (OpenAI chat shape, for every provider) as a ``breaker.Usage``.

    LiteLLM reports ``prompt_tokens`` with cache reads and writes included
    (the OpenAI convention) and the parts in ``prompt_tokens_details`` /
    ``cache_read_input_tokens`` / ``cache_creation_input_tokens``; should a
    provider's prompt count leave the cached parts out, they are added back,
    so cached tokens are never billed twice nor dropped.
    """
    details = _get(usage, "prompt_tokens_details")
    out_details = _get(usage, "completion_tokens_details")
    cache_read = _int(usage, "cache_read_input_tokens") or _int(details, "cached_tokens")
    cache_write = _int(usage, "cache_creation_input_tokens") or _int(details, "cache_creation_tokens") \
        or _int(details, "cache_write_tokens")
    prompt = _int(usage, "prompt_tokens")
    if cache_read + cache_write > prompt:
        prompt += cache_read + cache_write
    output = _int(usage, "completion_tokens")
    reasoning = min(_int(out_details, "reasoning_tokens"), output)
    return Usage(
        input_tokens=prompt, output_tokens=output, cache_read_tokens=cache_read,
        cache_write_tokens=cache_write, reasoning_tokens=reasoning,
    )


# ---------------------------------------------------------------------- stable message objects
_FAILED: Any = object()
"""The ``response`` of a call that failed (its error is in LiteLLM's ``kwargs["exception"]``)."""


def _ending(ticket: Ticket, kwargs: dict[str, Any], response: Any) -> dict[str, Any]:
    """``settle``'s keyword arguments for a call that ended with ``response`` (or ``_FAILED``).

    Without usage in the response, the reservation is charged (never $0).
    """
    if response is _FAILED:
        return {"usage": None, "error": _error_of(kwargs)}
    usage = getattr(response, "usage", None)
    if usage is None:
        return {"usage": ticket.worst_case_usage()}
    return {"usage": usage_from_litellm(usage), "tool_calls": _tool_calls(response)}


def _patched(kwargs: dict[str, Any], model: str, patch: Patch) -> dict[str, Any] | None:
    """An async call's kwargs with the ticket's patch applied, ``None`` when there is none.

    The model keeps its LiteLLM route prefix (``openai/``); the reasoning
    effort is lowered only where the caller set one, and never raised.
    """
    if not patch:
        return None
    kwargs = dict(kwargs)
    if patch.model is not None:
        prefix = kwargs["model"][: len(kwargs["model"]) - len(model)]
        kwargs["model"] = prefix + patch.model
    if patch.max_output_tokens is not None:
        field = next((c for c in _CAPS if kwargs.get(c) is not None), "max_tokens")
        kwargs[field] = patch.max_output_tokens
    if patch.reasoning_effort is not None and kwargs.get("reasoning_effort") is not None:
        kwargs["reasoning_effort"] = lower_effort(kwargs["reasoning_effort"], patch.reasoning_effort)
    return kwargs


_DISTINCT = ("tool_choice", "response_format")


def _distinct(params: dict[str, Any]) -> Any:
    """What besides the content makes two requests different ones (another forced tool, another output
    schema), folded into the fingerprint as the SDK layer folds it: a hash, never the text."""
    found = tuple((k, v if isinstance(v, str) else hash(measure(v)[2])) for k in _DISTINCT
                  if (v := params.get(k)) is not None)
    return found or None


def _error_of(kwargs: dict[str, Any]) -> BaseException:
    error = kwargs.get("exception")
    return error if isinstance(error, BaseException) else RuntimeError(str(error))


def _split(model: str, provider: str | None) -> tuple[str, str | None]:
    """``("gpt-4o", "openai")`` from ``"openai/gpt-4o"``, as LiteLLM routes it."""
    try:
        name, found, _, _ = litellm.get_llm_provider(model=model, custom_llm_provider=provider)
        return name, found
    except Exception:
        return model, provider


def _seen_by_sdk_layer(guard: Breaker, kwargs: dict[str, Any]) -> bool:
    """Whether ``guard.instrument()`` will see this call: LiteLLM sends OpenAI and Azure calls with the OpenAI SDK.

    (Since 1.110 it posts them with the client's ``post``, below ``create``;
    ``instrument()`` patches that too. Its Anthropic route speaks HTTP itself,
    so the plugin admits those.)
    """
    if not guard.instrumented:
        return False
    provider = kwargs.get("custom_llm_provider") or (kwargs.get("litellm_params") or {}).get("custom_llm_provider")
    return provider in ("openai", "azure") and not (kwargs.get("litellm_params") or {}).get("mock_response")


def _call_id(kwargs: dict[str, Any]) -> str | None:
    key = kwargs.get("litellm_call_id") or (kwargs.get("litellm_params") or {}).get("litellm_call_id")
    return str(key) if key else None


def _max_output(model: str, provider: str | None) -> int | None:
    """The most output tokens the model can produce, from LiteLLM's local model table."""
    try:
        info = litellm.get_model_info(model, custom_llm_provider=provider)
    except Exception:
        return None
    value = info.get("max_output_tokens") or info.get("max_tokens")
    return int(value) if isinstance(value, int) and value > 0 else None


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _int(obj: Any, name: str) -> int:
    value = _get(obj, name)
    return int(value) if isinstance(value, (int, float)) and value > 0 else 0


def _tool_name(tool: Any) -> str:
    fn = _get(tool, "function")
    return str(_get(fn, "name") if fn is not None else _get(tool, "name"))


def _tool_calls(response: Any) -> tuple[tuple[str, str], ...]:
    calls = []
    for choice in _get(response, "choices") or ():
        message = _get(choice, "message")
        for call in _get(message, "tool_calls") or ():
            fn = _get(call, "function")
            calls.append((str(_get(fn, "name")), args_fingerprint(_get(fn, "arguments"))))
    return tuple(calls)
