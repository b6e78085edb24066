"""Patching the SDKs: what is patched, and how.

``instrument(guard)`` patches the installed SDKs' classes, ``uninstrument(guard)``
restores the exact original attributes, ``wrap(guard, client)`` instruments
one client object only (so two guards can live in one process).

What is patched, and why each: every method that sends a
model request on its own. ``create`` covers plain and ``stream=True`` calls
and the SDK ``.stream()`` helpers of OpenAI (they call ``create``); OpenAI's
``parse`` and Anthropic's ``parse`` and ``stream`` post to the HTTP layer
themselves, so they are patched too. Below them, each SDK client's ``post``
is patched for the model routes: a caller that posts a model request itself
(LiteLLM's OpenAI route does, since 1.110) is seen there, while a request sent
through a patched method above is already in flight and passes straight
through. SDK-level HTTP retries happen inside one patched call: one call is
one admission, never billed twice.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
import sys
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable

import wrapt

from ..errors import ConfigError
from . import _shapes
from .attempt import Adapter
from .drivers import open_stream, run_async, run_sync

if TYPE_CHECKING:
    from ..adapter import Guard

__all__ = ["instrument", "uninstrument", "wrap"]

log = logging.getLogger("breaker")

# (module, class, method, adapter key, kind): kind "call" for request methods, "manager" for Anthropic
# stream(), "http" for a client's post() (the key names the SDK's model routes in _ROUTES).
_OPENAI_CHAT = "openai.resources.chat.completions.completions"
_OPENAI_RESP = "openai.resources.responses.responses"
_ANTHROPIC = "anthropic.resources.messages.messages"
_ANTHROPIC_BETA = "anthropic.resources.beta.messages.messages"

TARGETS: tuple[tuple[str, str, str, str, str], ...] = (
    *((_OPENAI_CHAT, cls, m, "chat", "call") for cls in ("Completions", "AsyncCompletions") for m in ("create", "parse")),
    *((_OPENAI_RESP, cls, m, "responses", "call") for cls in ("Responses", "AsyncResponses") for m in ("create", "parse")),
    *((mod, cls, m, "messages", "manager" if m == "stream" else "call")
      for mod in (_ANTHROPIC, _ANTHROPIC_BETA) for cls in ("Messages", "AsyncMessages")
      for m in ("create", "parse", "stream")),
    *((f"{sdk}._base_client", cls, "post", sdk, "http") for sdk in ("openai", "anthropic")
      for cls in ("SyncAPIClient", "AsyncAPIClient")),
)

# The paths (query string dropped) that carry a model request, per SDK, and the adapter that reads it.
_ROUTES: dict[str, dict[str, str]] = {
    "openai": {"/chat/completions": "chat", "/responses": "responses"},
    "anthropic": {"/v1/messages": "messages"},
}

# Client attribute paths for wrap(): (path to the resource, methods, adapter key).
_CLIENT_RESOURCES: tuple[tuple[tuple[str, ...], tuple[str, ...], str], ...] = (
    (("chat", "completions"), ("create", "parse"), "chat"),
    (("responses",), ("create", "parse"), "responses"),
    (("messages",), ("create", "parse", "stream"), "messages"),
    (("beta", "messages"), ("create", "parse", "stream"), "messages"),
)

_lock = threading.Lock()
_installed: dict[str, Any] = {"guard": None, "patches": []}
_sentinels_ready: set[str] = set()  # the SDK "_types" modules already registered


def _adapters() -> dict[str, Adapter]:
    from .anthropic import MessagesAdapter
    from .openai import ChatAdapter, ResponsesAdapter

    return {"chat": ChatAdapter(), "responses": ResponsesAdapter(), "messages": MessagesAdapter()}


def _load_sentinels(sdk: str | None = None) -> None:
    """Learn the SDKs' "argument not given" types. For ``wrap(client)`` only the
    client's own SDK (and any already imported) is loaded: importing a whole
    SDK the program never uses costs seconds at start-up."""
    for name in ("openai", "anthropic"):
        module = f"{name}._types"
        if module in _sentinels_ready or (sdk is not None and name != sdk and name not in sys.modules):
            continue
        try:
            _shapes.register_sentinels(importlib.import_module(module))
        except ImportError:
            pass
        _sentinels_ready.add(module)


class _Switch:
    """Lets a patch that cannot be removed (someone wrapped over it) turn itself off."""

    __slots__ = ("on",)

    def __init__(self) -> None:
        self.on = True


def _post_body(wrapped: Callable[..., Any], args: tuple, kwargs: dict, **body: Any) -> Any:
    """Send ``body`` (the request, patched) with the rest of the original ``post`` arguments."""
    return wrapped(*args, **{**kwargs, "body": body})


_MODEL_TYPES: dict[Any, bool] = {}


def _parses_a_model(cast_to: Any) -> bool:
    """Whether ``post(cast_to=...)`` parses the answer as a model result (a pydantic model class).

    A caller that posts to a model route for the raw answer (``cast_to=httpx.Response``,
    ``object``, ``dict``) reads the body itself: breaker could only meter it by reading it
    first, which changes what the caller gets, so such posts pass through.
    """
    known = _MODEL_TYPES.get(cast_to)
    if known is None:
        known = _MODEL_TYPES[cast_to] = isinstance(cast_to, type) and hasattr(cast_to, "model_fields")
    return known


def _make_http_wrapper(guard: Guard, routes: dict[str, Adapter], is_async: bool, switch: _Switch) -> Callable[..., Any]:
    """Wrap a client's ``post``: a model request not already in flight goes through the pipeline."""
    run = run_async if is_async else run_sync

    def http_wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        if guard.inflight() is not None or not switch.on:  # the common case first: sent by a patched method
            return wrapped(*args, **kwargs)
        body = kwargs.get("body")
        if not isinstance(body, Mapping) or not _parses_a_model(kwargs.get("cast_to")):
            return wrapped(*args, **kwargs)
        path = args[0] if args else kwargs.get("path")
        adapter = routes.get(path.partition("?")[0]) if isinstance(path, str) else None
        if adapter is None:
            return wrapped(*args, **kwargs)
        return run(guard, adapter, functools.partial(_post_body, wrapped, args, kwargs), (), dict(body))

    return http_wrapper


def _bind_descriptor(descriptor: Any, obj: Any) -> Any:
    """``descriptor`` (a class's function, or whatever wraps it) bound to ``obj``."""
    return descriptor.__get__(obj, type(obj))


def _call_layer(wrapper: Callable[..., Any], wrapped: Callable[..., Any], instance: Any, *args: Any, **kw: Any) -> Any:
    return wrapper(wrapped, instance, args, kw)


def _bind_layer(wrapper: Callable[..., Any], inner: Callable[[Any], Any], obj: Any) -> Any:
    """A ``wrap()`` stream patch, with what it wraps, bound to ``obj`` (for a second guard's ``wrap``)."""
    return functools.partial(_call_layer, wrapper, inner(obj), obj)


def _stream_binder(resource: Any, method: str) -> Callable[[Any], Any] | None:
    """How ``wrap()``'s stream patch calls ``resource.method`` bound to a copy of ``resource``.

    ``open_stream`` runs the SDK's ``stream()`` on a copy of the resource (see
    there), through whatever wraps it: the class's attribute (the SDK's function,
    ``instrument()``'s patch, another instrumentation's wrapper), or another
    guard's ``wrap()`` of this same client. ``None`` when something else replaced
    the method on this very object (a test's mock): it cannot be re-bound, so
    such calls pass straight through to it, with a warning now.
    """
    own = vars(resource).get(method)
    if own is None:
        return functools.partial(_bind_descriptor, inspect.getattr_static(type(resource), method))
    layer = getattr(own, "_self_breaker_bind", None)
    if layer is not None:
        return layer
    if inspect.ismethod(own) and own.__self__ is resource:
        return functools.partial(_bind_descriptor, own.__func__)
    log.warning(
        "breaker.wrap(): this client's %s.%s was replaced on the object by something else; calls to it pass "
        "through unmetered. Wrap the client before replacing it, or use guard.instrument().",
        type(resource).__name__, method,
    )
    return None


def _make_wrapper(
    guard: Guard, adapter: Adapter, kind: str, is_async: bool, switch: _Switch,
    bind: Callable[[Any], Any] | None = None,
) -> Callable[..., Any]:
    """The wrapt wrapper of one patched method; ``bind`` (for ``"manager"``, Anthropic's ``stream()``)
    gives the method bound to another object, as ``open_stream`` needs."""
    if kind == "manager":

        def stream_wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
            if not switch.on or bind is None:
                return wrapped(*args, **kwargs)
            return open_stream(guard, adapter, bind, instance, args, kwargs, is_async)

        return stream_wrapper
    if is_async:

        def async_wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
            if not switch.on:
                return wrapped(*args, **kwargs)
            return run_async(guard, adapter, wrapped, args, kwargs)

        return async_wrapper

    def sync_wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        if not switch.on:
            return wrapped(*args, **kwargs)
        return run_sync(guard, adapter, wrapped, args, kwargs)

    return sync_wrapper


def _is_async(cls_name: str, fn: Any) -> bool:
    return cls_name.startswith("Async") or inspect.iscoroutinefunction(fn)


def instrument(guard: Guard) -> None:
    """Patch every installed SDK method that sends a model request (idempotent)."""
    with _lock:
        current = _installed["guard"]
        if current is guard:
            return
        if current is not None:
            raise ConfigError(
                "Another Breaker already instrumented the SDKs in this process. Call "
                "other.uninstrument() first, or give the second guard its own clients with guard.wrap(client)."
            )
        _load_sentinels()
        adapters = _adapters()
        patches = []
        switch = _Switch()
        for module_name, cls_name, method, key, kind in TARGETS:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue  # that SDK (or that version's resource) is not installed
            cls = getattr(module, cls_name, None)
            original = cls.__dict__.get(method) if cls is not None else None
            if original is None:
                continue
            if kind == "http":
                routes = {path: adapters[name] for path, name in _ROUTES[key].items()}
                wrapper = _make_http_wrapper(guard, routes, _is_async(cls_name, original), switch)
            else:
                bind = functools.partial(_bind_descriptor, original) if kind == "manager" else None
                wrapper = _make_wrapper(guard, adapters[key], kind, _is_async(cls_name, original), switch, bind)
            patched = wrapt.FunctionWrapper(original, wrapper)
            setattr(cls, method, patched)
            patches.append((cls, method, original, patched))
        _installed["guard"] = guard
        _installed["patches"] = patches
        _installed["switch"] = switch


def uninstrument(guard: Guard) -> bool:
    """Restore the original SDK attributes; ``False`` (a no-op) if ``guard`` did not instrument."""
    with _lock:
        if _installed["guard"] is not guard:
            return False
        _installed["switch"].on = False  # any copy someone still holds passes straight through
        for cls, method, original, patched in _installed["patches"]:
            if cls.__dict__.get(method) is patched:
                setattr(cls, method, original)
        _installed["guard"] = None
        _installed["patches"] = []
        return True


def wrap(guard: Guard, client: Any) -> Any:
    """Instrument one OpenAI / Anthropic client (sync or async) and return it.

    Only this client's calls go through ``guard``; another guard can wrap
    another client in the same process. Wrapping twice with the same guard is
    a no-op.
    """
    _load_sentinels(type(client).__module__.partition(".")[0])
    marks = client.__dict__.setdefault("_breaker_guards", set()) if hasattr(client, "__dict__") else None
    if marks is None:
        raise ConfigError(f"breaker cannot wrap {type(client).__name__}: expected an OpenAI or Anthropic client")
    if id(guard) in marks:
        return client
    adapters = _adapters()
    is_async = type(client).__name__.startswith("Async")
    found = False
    for path, methods, key in _CLIENT_RESOURCES:
        resource = client
        try:
            for part in path:
                resource = getattr(resource, part)
        except AttributeError:
            continue
        for method in methods:
            bound = getattr(resource, method, None)
            if bound is None:
                continue
            if key == "messages" and method == "stream":
                bind = _stream_binder(resource, method)
                wrapper = _make_wrapper(guard, adapters[key], "manager", is_async, _Switch(), bind)
                patched = wrapt.FunctionWrapper(bound, wrapper)
                if bind is not None:
                    patched._self_breaker_bind = functools.partial(_bind_layer, wrapper, bind)  # type: ignore[attr-defined]
            else:
                patched = wrapt.FunctionWrapper(bound, _make_wrapper(guard, adapters[key], "call", is_async, _Switch()))
            setattr(resource, method, patched)
            found = True
    if not found:
        raise ConfigError(
            f"breaker cannot wrap {type(client).__name__}: it has none of chat.completions, responses, "
            f"messages. Pass an openai.OpenAI / AsyncOpenAI or anthropic.Anthropic / AsyncAnthropic client."
        )
    marks.add(id(guard))
    return client
