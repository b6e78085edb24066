"""``BreakerCallbackHandler``: budgets and loop detection for any LangChain runnable or legacy agent.

Callbacks see every chat-model call of a runnable, whatever builds it
(LCEL chains, ``AgentExecutor``, LangGraph graphs), but only *around* the
call: they can refuse it (``on_chat_model_start`` runs before the request is
sent) and account for it (``on_llm_end``), not change it. So a call that the
budget can pay only if it were degraded or had a lower ``max_tokens`` is
refused rather than sent unchanged; use ``BreakerMiddleware`` with
``create_agent`` for degradation.

Under ``guard.instrument()`` the layer that can cap decides: a chat model that
sends through the patched OpenAI or Anthropic SDK (its ``ls_provider`` is one
of ``SDK_PROVIDERS``) is admitted, capped or degraded and counted by the SDK
layer, and the handler stands aside rather than refuse a call it cannot lower
the cap of. Should no SDK layer count such a call after all (a custom chat
model that reports ``"openai"`` but speaks HTTP itself), the handler records
it from the model's usage after the fact (``Breaker.record``), logs it once,
and admits that model's later calls itself.

LangChain swallows exceptions raised in handlers unless ``raise_error`` is
set; with it set, ``UnknownPrice`` reaches the caller, and a ``Tripped`` (a
``BaseException``) passes any ``except Exception`` on the way. The handler
runs inline (``run_inline``), in the context of the model call, so it can
mark the call as counted for an SDK layer (``guard.instrument()``) below.
"""

from __future__ import annotations

import logging
import threading
from contextlib import AbstractContextManager
from typing import Any, NamedTuple
from uuid import UUID

from breaker import Breaker, ConfigError, Session, Usage
from breaker.adapter import Ticket
from breaker.adapter import stream_overrun

from ._messages import CAP_FIELDS, describe, provider_of, tool_calls_of, usage_from_message, usage_or_bound
from ._require import require

require("langchain_core.callbacks", "BreakerCallbackHandler needs langchain-core")

from langchain_core.callbacks import BaseCallbackHandler  # noqa: E402

__all__ = ["SDK_PROVIDERS", "BreakerCallbackHandler"]

log = logging.getLogger("breaker.langchain")

SDK_PROVIDERS = frozenset({"openai", "azure", "azure_openai", "anthropic", "deepseek", "xai"})
"""LangSmith ``ls_provider`` names of the chat models that send through the OpenAI or Anthropic
SDK (langchain-openai's ``ChatOpenAI`` / ``AzureChatOpenAI`` and the models built on it,
langchain-anthropic's ``ChatAnthropic``): under ``guard.instrument()`` their calls are admitted,
capped and counted by the SDK layer."""


class _Aside(NamedTuple):
    """A call the handler left to the SDK layer, and what tells whether that layer counted it."""

    session: Session
    calls_before: int
    model: str | None
    provider: str | None
    kind: tuple[Any, ...]


class BreakerCallbackHandler(BaseCallbackHandler):
    """Admit each chat-model call in ``on_chat_model_start``, meter its stream, settle it in ``on_llm_end``.

    Args:
        guard: the engine whose budgets apply (calls are attributed to the
            ``guard.session(...)`` the runnable is invoked in).
        model: the model name to price calls with, for chat models that do
            not report one in their LangSmith parameters.

    Pass it in the config: ``chain.invoke(x, config={"callbacks": [handler]})``.
    """

    raise_error = True
    run_inline = True

    def __init__(self, guard: Breaker, model: str | None = None) -> None:
        if not isinstance(guard, Breaker):
            raise ConfigError(f"BreakerCallbackHandler needs a breaker.Breaker, got {guard!r}")
        self.guard = guard
        self.model = model
        self._open: dict[UUID, tuple[Ticket, AbstractContextManager[Ticket]]] = {}
        self._aside: dict[UUID, _Aside] = {}  # calls left to the SDK layer (guard.instrument())
        self._uncounted: set[tuple[Any, ...]] = set()  # chat models the SDK layer turned out not to see
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ admission
    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[Any]], *, run_id: UUID,
        metadata: dict[str, Any] | None = None, invocation_params: dict[str, Any] | None = None, **kwargs: Any,
    ) -> None:
        guard = self.guard
        if guard.inflight() is not None:  # an outer layer (BreakerMiddleware) counts this call
            return
        metadata = metadata or {}
        params = invocation_params or kwargs.get("invocation_params") or {}
        name = self.model or metadata.get("ls_model_name") or params.get("model") or params.get("model_name")
        ls_provider = metadata.get("ls_provider")
        if guard.instrumented and ls_provider in SDK_PROVIDERS:
            kind = (tuple((serialized or {}).get("id") or ()), ls_provider)
            if kind not in self._uncounted:
                # The SDK layer below sees the exact request: it admits it, lowers its cap or degrades
                # it as the budget needs, and counts it. Stand aside (refusing a call only because a
                # callback cannot lower its cap would kill an agent its budget can still pay for).
                session = guard.current_session()
                with self._lock:
                    self._aside[run_id] = _Aside(session, session.calls, name and str(name),
                                                 provider_of(ls_provider), kind)
                return
        if not name:
            raise ConfigError(
                f"{serialized.get('name') if serialized else 'This chat model'} does not say which model it calls; "
                f"pass it: BreakerCallbackHandler(guard, model='gpt-4o')"
            )
        cap = next((params[f] for f in CAP_FIELDS if isinstance(params.get(f), int)), metadata.get("ls_max_tokens"))
        call = describe(
            str(name), provider_of(ls_provider), [m for batch in messages for m in batch],
            params.get("tools") or (), max_output_tokens=cap if isinstance(cap, int) else None,
            stream=bool(params.get("stream")), strict=guard.input_estimate != "loose",
        )
        ticket = guard.admit(call)
        guard.require_unpatched(
            ticket, layer="a callback", model_fix="use BreakerMiddleware with create_agent",
            cap_fix="set max_tokens on the chat model"
                    + (", or call guard.instrument() so the SDK layer caps it" if ls_provider in SDK_PROVIDERS else ""),
        )
        sending = guard.sending(ticket)  # exited in _finish: start and end are different callbacks
        sending.__enter__()
        with self._lock:
            self._open[run_id] = (ticket, sending)

    # ------------------------------------------------------------------ streams
    def on_llm_new_token(
        self, token: str | list[str | dict[str, Any]], *, chunk: Any = None, run_id: UUID,
        parent_run_id: UUID | None = None, tags: list[str] | None = None, **kwargs: Any,
    ) -> None:
        """Count streamed output; stop the stream once it passes what the reservation pays for.

        A chunk counts as one token unless it reports usage; providers stream
        about one token per chunk. The cut is ``breaker.adapter.stream_overrun``,
        the rule (and reason code ``"stream_cut"``) the SDK layer uses.
        """
        with self._lock:
            entry = self._open.get(run_id)
        if entry is None:
            return
        ticket = entry[0]
        message = getattr(chunk, "message", None)
        reported = (getattr(message, "usage_metadata", None) or {}).get("output_tokens")
        overrun = stream_overrun(ticket, max(ticket.streamed_output + (1 if token else 0), reported or 0))
        if overrun is not None:
            self._finish(run_id, Usage(input_tokens=ticket.call.input_tokens, output_tokens=ticket.streamed_output))
            raise overrun

    # ------------------------------------------------------------------ settlement
    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            entry = self._open.get(run_id)
            aside = self._aside.pop(run_id, None)
        if aside is not None:
            self._check_counted(aside, response)
        if entry is None:
            return
        messages = [g.message for batch in response.generations for g in batch if hasattr(g, "message")]
        self._finish(run_id, usage_or_bound(messages, entry[0].call), tool_calls_of(messages))

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            self._aside.pop(run_id, None)  # the SDK layer settled it, or it never reached the provider
        self._finish(run_id, None, error=error)

    def _check_counted(self, aside: _Aside, response: Any) -> None:
        """A call left to the SDK layer: if that layer did not count it, record it now and admit that
        chat model's later calls here (a custom model that reports an SDK provider but does not use it)."""
        if aside.session.calls > aside.calls_before:
            return
        with self._lock:
            first = aside.kind not in self._uncounted
            self._uncounted.add(aside.kind)
        messages = [g.message for batch in response.generations for g in batch if hasattr(g, "message")]
        found = [u for u in (usage_from_message(m) for m in messages) if u is not None]
        if first:
            log.warning(
                "BreakerCallbackHandler left a call of %s to guard.instrument()'s SDK layer (ls_provider %r), "
                "but that layer did not see it: this chat model does not send through the patched SDK. The call "
                "was recorded after the fact; the handler admits this model's later calls itself.",
                aside.kind[0][-1] if aside.kind[0] else "a chat model", aside.kind[1],
            )
        if found and aside.model:
            self.guard.record(aside.model, sum(found, Usage(requests=0)), provider=aside.provider,
                              session=aside.session)

    def _finish(self, run_id: UUID, usage: Usage | None, tool_calls: Any = (), error: BaseException | None = None) -> None:
        with self._lock:
            entry = self._open.pop(run_id, None)
        if entry is None:
            return
        ticket, sending = entry
        try:
            sending.__exit__(None, None, None)
        except ValueError:  # ended in another context than it started in: that context ends with its task
            pass
        self.guard.settle(ticket, usage, tool_calls=tool_calls, error=error)
