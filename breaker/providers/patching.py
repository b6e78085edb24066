"""Patching the SDKs: what is patched, and how.

``instrument(guard)`` patches the SDKs' classes (each module when the program
imports it: ``instrument()`` itself imports none), ``uninstrument(guard)``
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
one admission, never billed twice. boto3 ``bedrock-runtime`` clients have no SDK
class to patch: ``bedrock_client.py`` wraps each client object, and says why.
google-genai is patched one level below its public methods, at the one-request
``Models._generate_content(_stream)``, since ``generate_content`` may send several
requests (automatic function calling, continuation): ``gemini.py`` says more.
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
from . import _shapes, openai_routes
from .attempt import Adapter
from .drivers import open_stream, run_async, run_sync
from . import gemini  # google-genai: its targets, wrap() resources and adapters
from . import bedrock_client  # boto3 bedrock-runtime: per client object (see there)

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
    *openai_routes.TARGETS,  # embeddings, images, speech, transcription, translation
    *gemini.TARGETS,  # google-genai Models / AsyncModels, one request each (see providers/gemini.py)
)

# The paths (query string dropped) that carry a model request, per SDK, and the adapter that reads it.
_ROUTES: dict[str, dict[str, str]] = {
    "openai": {"/chat/completions": "chat", "/responses": "responses", **openai_routes.PATHS},
    "anthropic": {"/v1/messages": "messages"},
}

# Client attribute paths for wrap(): (path to the resource, methods, adapter key).
_CLIENT_RESOURCES: tuple[tuple[tuple[str, ...], tuple[str, ...], str], ...] = (
    (("chat", "completions"), ("create", "parse"), "chat"),
    (("responses",), ("create", "parse"), "responses"),
    (("messages",), ("create", "parse", "stream"), "messages"),
    (("beta", "messages"), ("create", "parse", "stream"), "messages"),
    *openai_routes.CLIENT_RESOURCES,
    *gemini.CLIENT_RESOURCES,  # a genai.Client's models and aio.models
)

_lock = threading.Lock()
_installed: dict[str, Any] = {"guard": None, "patches": []}
_sentinels_ready: set[str] = set()  # the SDK "_types" modules already registered


def _adapters() -> dict[str, Adapter]:
    from .anthropic import MessagesAdapter
    from .openai import ChatAdapter, ResponsesAdapter

    return {"chat": ChatAdapter(), "responses": ResponsesAdapter(), "messages": MessagesAdapter(),
            **openai_routes.adapters(), **gemini.adapters()}


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
        path = args[0] if args else kwargs.get("path")
        route = path.partition("?")[0] if isinstance(path, str) else ""
        cast_to = kwargs.get("cast_to")
        if not isinstance(body, Mapping) or not (_parses_a_model(cast_to) or openai_routes.sdk_parsed(route, cast_to)):
            return wrapped(*args, **kwargs)
        adapter = routes.get(route)
        if adapter is None:
            return wrapped(*args, **kwargs)
        if kwargs.get("files") is not None:  # multipart (an upload): openai_routes
            return run(guard, for_client(adapter, instance, instance), functools.partial(openai_routes.post_form,
                       wrapped, args, kwargs), (), openai_routes.form_kwargs(body, kwargs["files"]))
        return run(guard, for_client(adapter, instance, instance), functools.partial(_post_body, wrapped, args, kwargs),
                   (), dict(body))

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
            return open_stream(guard, for_client(adapter, instance), bind, instance, args, kwargs, is_async)

        return stream_wrapper
    if is_async:

        def async_wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
            if not switch.on:
                return wrapped(*args, **kwargs)
            return run_async(guard, for_client(adapter, instance), wrapped, args, kwargs)

        return async_wrapper

    def sync_wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        if not switch.on:
            return wrapped(*args, **kwargs)
        return run_sync(guard, for_client(adapter, instance), wrapped, args, kwargs)

    return sync_wrapper


_VARIANTS: dict[tuple[int, str], Adapter] = {}


def for_client(adapter: Adapter, resource: Any, client: Any = None) -> Adapter:
    """``adapter`` for the provider that serves ``resource``'s client (its ``base_url`` host).

    An OpenAI client pointed at ``https://api.groq.com/openai/v1`` calls Groq, which bills
    Groq's prices: the host names the provider by genai-prices' own URL patterns
    (``breaker.pricing.provider_for_url``), found once per client and kept on it. A host
    none of them claims (a local server, a proxy) keeps the adapter's default provider as
    a hint. The SDK resources keep their client as ``_client`` (every Stainless SDK
    does); a resource without one is left as it is. ``client``: the API client itself
    (a patched ``post``'s own object, whose ``_client`` is its HTTP client).
    """
    if client is None:
        client = getattr(resource, "_client", resource)
    state = getattr(client, "__dict__", None)
    if state is None:
        return adapter
    provider = state.get("_breaker_provider", _UNSEEN)
    if provider is _UNSEEN:
        from ..pricing import provider_for_url

        provider = state["_breaker_provider"] = provider_for_url(str(getattr(client, "base_url", "") or ""))
    if provider is None:
        return adapter
    key = (id(adapter), provider)
    variant = _VARIANTS.get(key)
    if variant is None:
        variant = _VARIANTS[key] = adapter.for_provider(provider)
    return variant


_UNSEEN = object()


def _is_async(cls_name: str, fn: Any) -> bool:
    return cls_name.startswith("Async") or inspect.iscoroutinefunction(fn)


# The modules instrument() patches, each with its targets; botocore's is bedrock_client's.
_BY_MODULE: dict[str, list[tuple[str, str, str, str, str]]] = {}
for _target in TARGETS:
    _BY_MODULE.setdefault(_target[0], []).append(_target)
_BOTOCORE = "botocore.session"
_hooked: set[str] = set()  # modules given a post-import hook (once a process: wrapt cannot take one back)


def instrument(guard: Guard) -> None:
    """Patch every SDK method that sends a model request (idempotent), lazily.

    What is imported already is patched now; every other target module is patched when
    the program imports it (a ``wrapt`` post-import hook), so ``instrument()`` imports no
    SDK: a program that uses only OpenAI never loads Anthropic's, google-genai's or
    botocore's (seconds of start-up), nor the OpenAI resources it never touches.
    """
    with _lock:
        if _installed["guard"] is guard:
            return
        _refuse_another(guard)
    for name in [*_BY_MODULE, _BOTOCORE]:  # outside _lock: these may wait for an import under way
        module = sys.modules.get(name)
        if module is not None:
            if getattr(getattr(module, "__spec__", None), "_initializing", False):
                importlib.import_module(name)  # another thread is importing it: wait for the whole module
        elif name not in _hooked:
            _hooked.add(name)
            wrapt.register_post_import_hook(_imported, name)
    with _lock:
        if _installed["guard"] is guard:
            return
        _refuse_another(guard)
        _installed.update(guard=guard, patches=[], switch=_Switch(), adapters=_adapters(), done=set())
        for name in [*_BY_MODULE, _BOTOCORE]:
            module = sys.modules.get(name)
            if module is not None:
                _patch_module(name, module)


def _refuse_another(guard: Guard) -> None:
    if _installed["guard"] is not None:
        raise ConfigError(
            "Another Breaker already instrumented the SDKs in this process. Call "
            "other.uninstrument() first, or give the second guard its own clients with guard.wrap(client)."
        )


def _imported(module: Any) -> None:
    """The post-import hook of a target module: patched for the guard instrumented now, if any."""
    if getattr(getattr(module, "__spec__", None), "_initializing", False):
        module = importlib.import_module(module.__name__)  # fired early, by another thread's import: wait
    with _lock:
        if _installed["guard"] is not None:
            _patch_module(module.__name__, module)


def _patch_module(name: str, module: Any) -> None:
    """Patch ``module``'s targets (those it defines: a half-imported module is patched by its hook)
    for the installed guard, each once; under ``_lock``."""
    guard, switch, adapters, done, patches = (_installed[k] for k in ("guard", "switch", "adapters", "done", "patches"))
    if name == _BOTOCORE:
        if name not in done:
            done.add(name)
            patches += bedrock_client.instrument(guard, switch)
        return
    for sdk in ("openai", "anthropic"):  # the SDK's "not given" types: imported with its resources
        types = sys.modules.get(f"{sdk}._types")
        if types is not None and f"{sdk}._types" not in _sentinels_ready:
            _shapes.register_sentinels(types)
            _sentinels_ready.add(f"{sdk}._types")
    for _, cls_name, method, key, kind in _BY_MODULE.get(name, ()):
        cls = getattr(module, cls_name, None)
        original = cls.__dict__.get(method) if cls is not None else None
        if original is None or (cls, method) in done:
            continue
        if kind == "http":
            routes = {path: adapters[route] for path, route in _ROUTES[key].items()}
            wrapper = _make_http_wrapper(guard, routes, _is_async(cls_name, original), switch)
        else:
            bind = functools.partial(_bind_descriptor, original) if kind == "manager" else None
            wrapper = _make_wrapper(guard, adapters[key], kind, _is_async(cls_name, original), switch, bind)
        patched = wrapt.FunctionWrapper(original, wrapper)
        setattr(cls, method, patched)
        patches.append((cls, method, original, patched))
        done.add((cls, method))


def uninstrument(guard: Guard) -> bool:
    """Restore the original SDK attributes; ``False`` (a no-op) if ``guard`` did not instrument.
    (The post-import hooks stay, doing nothing until a guard instruments again.)"""
    with _lock:
        if _installed["guard"] is not guard:
            return False
        _installed["switch"].on = False  # any copy someone still holds passes straight through
        for cls, method, original, patched in _installed["patches"]:
            if cls.__dict__.get(method) is patched:
                setattr(cls, method, original)
        bedrock_client.uninstrument(guard)
        _installed["guard"] = None
        _installed["patches"] = []
        return True


def _wrap_post(guard: Guard, client: Any, routes: dict[str, Adapter], is_async: bool) -> None:
    """Patch this client's own ``post`` for the model routes, as ``instrument()`` patches the class's.

    A model request any namespace of the client sends reaches it (the SDKs'
    resources all send through ``client.post``), so ``beta.chat.completions``,
    ``beta.responses`` or a namespace a later SDK adds are metered too; a request
    a patched method sent is in flight already and passes straight through. A
    resource binds ``client.post`` when it is made: those made before this (by
    the caller, or by ``wrap()`` itself) are pointed at the patched one.
    """
    original = getattr(client, "post", None)
    if original is None:
        return
    patched = wrapt.FunctionWrapper(original, _make_http_wrapper(guard, routes, is_async, _Switch()))
    client.post = patched
    _repoint_posts(client, client, patched, set())


def _repoint_posts(obj: Any, client: Any, patched: Any, seen: set[int]) -> None:
    """Point the resources made already under ``obj`` (its public cached attributes) at ``patched``."""
    for name, value in list(getattr(obj, "__dict__", {}).items()):
        if name.startswith("_") or id(value) in seen or not hasattr(value, "__dict__"):
            continue
        seen.add(id(value))
        post = vars(value).get("_post")
        if post is not None and getattr(post, "__self__", None) is client:
            value._post = patched
        _repoint_posts(value, client, patched, seen)


def _wrap_copies(guard: Guard, client: Any, provider: str | None) -> None:
    """``copy()`` and its alias ``with_options()`` build a new client (fresh resources, none of the
    patches on this one): the copy is wrapped by the same guard, with the ``provider`` named for this
    client unless the copy is pointed at another ``base_url`` (its host decides then)."""

    def copied(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        new = wrapped(*args, **kwargs)
        same_host = str(getattr(new, "base_url", "")) == str(getattr(instance, "base_url", ""))
        return wrap(guard, new, provider if same_host else None)

    for name in ("copy", "with_options"):
        method = getattr(client, name, None)
        if callable(method):
            setattr(client, name, wrapt.FunctionWrapper(method, copied))


_KEY_SDKS = {"messages": "anthropic", **{key: "google" for key in gemini.adapters()}}
"""The SDK each ``_CLIENT_RESOURCES`` adapter key belongs to (the rest are OpenAI's)."""


def _family(client: Any) -> str | None:
    """``"openai"``, ``"anthropic"`` or ``"google"``: the SDK a client's class comes from (a subclass
    of the SDK's client included), ``None`` if none of them."""
    for cls in type(client).__mro__:
        root = getattr(cls, "__module__", "").partition(".")[0]
        if root in ("openai", "anthropic", "google"):
            return root
    return None


def wrap(guard: Guard, client: Any, provider: str | None = None) -> Any:
    """Instrument one OpenAI / Anthropic client (sync or async), or a ``google.genai.Client``
    (its ``aio`` too), and return it.

    Only this client's calls go through ``guard``; another guard can wrap
    another client in the same process. Wrapping twice with the same guard is
    a no-op. ``provider`` names whose prices apply (``"groq"`` for an OpenAI
    client pointed at Groq); without it, the client's ``base_url`` host decides
    where it can (``for_client``).

    Every namespace of an OpenAI / Anthropic client is covered, not only the
    methods named in ``_CLIENT_RESOURCES`` (``beta.chat.completions.parse``,
    ``beta.responses``, ``with_raw_response``...): ``_wrap_post``. So is every
    copy (``with_options(timeout=5)``, ``copy()``): ``_wrap_copies``.
    """
    if provider is not None:
        from ..pricing import provider_id

        named = provider_id(provider)
        if named is None:
            raise ConfigError(
                f"wrap(client, provider={provider!r}): genai-prices knows no provider {provider!r}. Use one of its "
                f"ids ('openai', 'azure', 'groq', 'together', 'openrouter', 'deepseek', 'mistral', 'x-ai', "
                f"'fireworks', 'cerebras', 'google', 'aws', ...), or leave provider out."
            )
        if hasattr(client, "__dict__"):
            client.__dict__["_breaker_provider"] = named
    if bedrock_client.is_client(client):  # a boto3 client: its methods are wrapped on the object
        return bedrock_client.wrap_client(guard, client, _Switch())
    _load_sentinels(type(client).__module__.partition(".")[0])
    marks = client.__dict__.setdefault("_breaker_guards", set()) if hasattr(client, "__dict__") else None
    if marks is None:
        raise ConfigError(f"breaker cannot wrap {type(client).__name__}: expected an OpenAI or Anthropic client")
    if id(guard) in marks:
        return client
    adapters = _adapters()
    is_async = type(client).__name__.startswith("Async")
    sdk = type(client).__module__.partition(".")[0]
    if sdk in _ROUTES:  # an OpenAI / Anthropic client: every namespace of it, and every copy of it
        _wrap_post(guard, client, {path: adapters[name] for path, name in _ROUTES[sdk].items()}, is_async)
        _wrap_copies(guard, client, provider)
    found = False
    family = _family(client)
    for path, methods, key in _CLIENT_RESOURCES:
        if family is not None and _KEY_SDKS.get(key, "openai") != family:
            continue  # another SDK's namespace: looking (client.beta) would import its modules for nothing
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
                # A sync client can hold async resources (a genai.Client's aio.models): decided per method.
                sends_async = is_async or _is_async(type(resource).__name__, bound)
                patched = wrapt.FunctionWrapper(bound, _make_wrapper(guard, adapters[key], "call", sends_async, _Switch()))
            setattr(resource, method, patched)
            found = True
    if not found:
        raise ConfigError(
            f"breaker cannot wrap {type(client).__name__}: it has none of chat.completions, responses, "
            f"messages, models. Pass an openai.OpenAI / AsyncOpenAI, anthropic.Anthropic / AsyncAnthropic "
            f"or google.genai.Client client."
        )
    marks.add(id(guard))
    return client
