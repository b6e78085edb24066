"""``BreakerMiddleware``: budgets, degradation and the kill for ``langchain.agents.create_agent``.

LangChain v1 can cap how many model and tool calls an agent makes, but not
what they cost, and LangGraph's recursion limit is effectively unbounded.
This middleware wraps every model call of the agent: it reserves the call's
worst-case cost before the request is sent (refusing or degrading it when a
budget cannot pay), and settles the exact cost from ``AIMessage.usage_metadata``
after.

It keeps no per-run state on the instance: the ticket of a call lives in the
frame of that call's ``_steps`` (the one body both ``wrap_model_call`` and
``awrap_model_call`` drive), and the session (budgets, loop memory, sticky
trips) is the ``guard.session(...)`` the agent runs in, carried by
``contextvars`` — so one middleware object serves concurrent runs and
threads without mixing them.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Generator, Literal, Mapping

from breaker import Breaker, ConfigError, Tripped
from breaker.adapter import Call, Patch, Ticket
from breaker.adapter import lower_effort

from ._messages import CAP_FIELDS, NAME_FIELDS, describe, identity, tool_calls_of, usage_or_bound
from ._require import require

require("langchain.agents.middleware", "BreakerMiddleware needs LangChain v1 (langchain>=1.0)")

from langchain.agents.middleware import AgentMiddleware  # noqa: E402
from langchain.agents.middleware.types import ExtendedModelResponse, ModelRequest, ModelResponse  # noqa: E402
from langchain_core.messages import AIMessage  # noqa: E402
from langgraph.types import Command  # noqa: E402

__all__ = ["BreakerMiddleware", "stop_message"]


class BreakerMiddleware(AgentMiddleware):
    """Enforce a ``breaker.Breaker``'s budgets and loop checks on an agent's model calls.

    Args:
        guard: the engine whose budgets apply (calls are attributed to the
            ``guard.session(...)`` the agent is invoked in).
        exit_behavior: on a kill, ``"end"`` ends the run with an ``AIMessage``
            that says which limit stopped it (the session stays tripped, so
            ``session.tripped`` tells the caller); ``"error"`` raises the
            ``breaker.Tripped``, which retry policies cannot swallow and the
            session boundary turns into ``SessionKilled``.
        models: chat models to degrade to, by model name
            (``{"gpt-4o-mini": ChatOpenAI(model="gpt-4o-mini")}``). Without an
            entry, the agent's own chat model is copied with the cheaper
            model name, keeping its credentials, base URL and settings.
        model: the model name to price calls with, for chat models that do
            not report one (or report a deployment name).

    Example:
        ```python
        agent = create_agent("openai:gpt-4o", tools, middleware=[BreakerMiddleware(guard)])
        with guard.session("ticket-42") as s:
            agent.invoke({"messages": [...]})
        ```
    """

    def __init__(
        self,
        guard: Breaker,
        exit_behavior: Literal["end", "error"] = "end",
        *,
        models: Mapping[str, Any] | None = None,
        model: str | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(guard, Breaker):
            raise ConfigError(f"BreakerMiddleware needs a breaker.Breaker, got {guard!r}")
        if exit_behavior not in ("end", "error"):
            raise ConfigError(f"exit_behavior={exit_behavior!r}: use 'end' (finish with a message) or 'error' (raise)")
        self.guard = guard
        self.exit_behavior = exit_behavior
        self.models = dict(models or {})
        self.model = model

    # ------------------------------------------------------------------ hooks
    def wrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]
    ) -> ModelResponse | AIMessage | ExtendedModelResponse:
        guard = self.guard
        return _run(self._steps(request, guard.admit, handler, guard.settle))

    async def awrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], Awaitable[ModelResponse]]
    ) -> ModelResponse | AIMessage | ExtendedModelResponse:
        guard = self.guard
        return await _run_async(self._steps(request, guard.admit_async, handler, guard.settle_async))

    def _steps(self, request: ModelRequest, admit: Callable[..., Any], send: Callable[..., Any],
               settle: Callable[..., Any]) -> _Steps:
        """One model call, written once for both hooks: yields each I/O step and is sent back its result.

        ``admit``, ``send`` and ``settle`` are the guard's and the handler's
        sync or async callables; ``_run`` calls each step, ``_run_async``
        awaits it, and a step that raised is thrown back in here.
        """
        if self.guard.inflight() is not None:  # an outer layer already counts this call
            return (yield _do(send, request))
        try:
            ticket = yield _do(admit, self._describe(request))
        except Tripped as trip:
            return self._stop(trip)
        with self.guard.sending(ticket):
            try:
                response = yield _do(send, self._patched(request, ticket))
            except BaseException as exc:
                yield _do(settle, ticket, error=exc)  # a cancellation bills the input bound (Breaker.settle)
                raise
        yield _do(settle, ticket, **_settlement(ticket, response))
        return response

    # ------------------------------------------------------------------ steps
    def _describe(self, request: ModelRequest) -> Call:
        name, provider, cap = identity(request.model, request.model_settings, model=self.model)
        messages = [request.system_message, *request.messages] if request.system_message else request.messages
        return describe(name, provider, messages, request.tools, max_output_tokens=cap,
                        strict=self.guard.input_estimate != "loose")

    def _stop(self, trip: Tripped) -> ExtendedModelResponse:
        if self.exit_behavior == "error":
            raise trip
        message = stop_message(trip)
        return ExtendedModelResponse(
            model_response=ModelResponse(result=[message]), command=Command(update={"jump_to": "end"})
        )

    def _patched(self, request: ModelRequest, ticket: Ticket) -> ModelRequest:
        """The request with the ticket's patch applied (or the request itself when there is none).

        A patch that cannot be applied releases the reservation and raises:
        sending the expensive model on the cheap model's reservation would
        break the budget the reservation protects.
        """
        patch = ticket.patch
        if not patch:
            return request
        try:
            return _apply(request, patch, ticket, self.models)
        except BaseException:
            self.guard.release(ticket)
            raise


# ---------------------------------------------------------------------- I/O
_Step = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]
_Steps = Generator[_Step, Any, Any]


def _do(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> _Step:
    return fn, args, kwargs


def _resume(steps: _Steps, result: Any = None, error: BaseException | None = None) -> tuple[bool, Any]:
    """Hand ``steps`` the last step's result (or throw its error in): ``(True, value)`` once it returns,
    else ``(False, next step)``."""
    try:
        return False, (steps.send(result) if error is None else steps.throw(error))
    except StopIteration as done:
        return True, done.value


def _call(step: _Step) -> tuple[Any, BaseException | None]:
    fn, args, kwargs = step
    try:
        return fn(*args, **kwargs), None
    except BaseException as exc:
        return None, exc


async def _call_async(step: _Step) -> tuple[Any, BaseException | None]:
    fn, args, kwargs = step
    try:
        return await fn(*args, **kwargs), None
    except BaseException as exc:
        return None, exc


def _run(steps: _Steps) -> Any:
    done, step = _resume(steps)
    while not done:
        done, step = _resume(steps, *_call(step))
    return step


async def _run_async(steps: _Steps) -> Any:
    done, step = _resume(steps)
    while not done:
        done, step = _resume(steps, *await _call_async(step))
    return step


def _settlement(ticket: Ticket, response: Any) -> dict[str, Any]:
    """``settle``'s keyword arguments for a call that returned ``response``."""
    messages = _result_messages(response)
    return {"usage": usage_or_bound(messages, ticket.call), "tool_calls": tool_calls_of(messages)}


def stop_message(trip: Tripped) -> AIMessage:
    """The ``AIMessage`` that ends a stopped run: says which limit stopped it, carries no prompt text."""
    return AIMessage(
        content=f"Stopped by agent-cost-breaker: {trip.message}",
        name="breaker",
        response_metadata={
            "breaker": {
                "reason": trip.reason, "scope": trip.scope, "key": trip.key, "metric": trip.metric,
                "spent": trip.spent, "limit": trip.limit, "session": trip.session,
            }
        },
    )


def _result_messages(response: Any) -> list[Any]:
    if isinstance(response, ExtendedModelResponse):
        response = response.model_response
    if isinstance(response, ModelResponse):
        return [m for m in response.result if isinstance(m, AIMessage)]
    if isinstance(response, AIMessage):
        return [response]
    return []


def _apply(request: ModelRequest, patch: Patch, ticket: Ticket, models: Mapping[str, Any]) -> ModelRequest:
    model = request.model
    settings = dict(request.model_settings)
    changes: dict[str, Any] = {}
    if patch.model is not None:
        model = _cheaper(model, ticket.call.model, patch.model, models)
    copy: dict[str, Any] = {}
    fields = getattr(type(model), "model_fields", {})
    if patch.max_output_tokens is not None:
        in_settings = [f for f in CAP_FIELDS if f in settings]
        if in_settings:
            settings[in_settings[0]] = patch.max_output_tokens
        else:
            field = next((f for f in CAP_FIELDS if f in fields), None)
            if field is not None:
                copy[field] = patch.max_output_tokens
            else:
                settings["max_tokens"] = patch.max_output_tokens
    if patch.reasoning_effort is not None and "reasoning_effort" in fields:
        copy["reasoning_effort"] = lower_effort(getattr(model, "reasoning_effort", None), patch.reasoning_effort)
    if copy:
        model = model.model_copy(update=copy)
    if model is not request.model:
        changes["model"] = model
    if settings != request.model_settings:
        changes["model_settings"] = settings
    if patch.keep_last_messages is not None:
        from langchain_core.messages import trim_messages

        changes["messages"] = trim_messages(
            request.messages, max_tokens=patch.keep_last_messages, token_counter=len,
            strategy="last", start_on="human", include_system=True,
        )
    return request.override(**changes) if changes else request


def _cheaper(model: Any, current: str, target: str, models: Mapping[str, Any]) -> Any:
    """The chat model to send a degraded call to."""
    if target in models:
        return models[target]
    fields = getattr(type(model), "model_fields", {})
    for field in NAME_FIELDS:
        if field in fields and getattr(model, field, None) == current:
            return model.model_copy(update={field: target})
    raise ConfigError(
        f"Cannot switch {type(model).__name__} from {current!r} to {target!r}: pass the cheaper chat model, "
        f"BreakerMiddleware(guard, models={{{target!r}: <chat model for {target}>}})"
    )
