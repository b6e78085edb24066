"""Patching boto3 ``bedrock-runtime`` clients: per client object, and why.

**Why per client object.** botocore builds every client's class at run time
(``ClientCreator`` makes a new class per client, with ``converse`` & co. as
generated functions), so unlike OpenAI and Anthropic there is no SDK class to
patch once. breaker sets wrapped methods on each client object instead (as
``wrap()`` does for the other SDKs' resources) and sends each call through the
same drivers (``run_sync``) as every other adapter: admitted before anything is
sent, the request patched (a lowered ``inferenceConfig.maxTokens``), sent inside
``guard.sending(ticket)`` so it is counted once, settled exactly once whatever
happens (the drivers' one code path for errors, responses and streams).

**Why not botocore's event hooks.** ``before-parameter-build``, ``before-call``
and ``after-call`` split one call over several handlers that share only a
``context`` dict: the in-flight marker could not enclose the send, and an error
raised between two of them (parameter validation runs after
``before-parameter-build``; ``after-call-error`` is emitted only for errors of
the HTTP send) would leave a reservation unsettled, so exactly-once settlement
would have to be rebuilt across handlers rather than reused. They are per
client too (a client copies its session's emitter at creation), so they reach
no further than methods set on the client. ``creating-client-class`` (where a
handler may add a mixin base or replace the generated methods) fires per
botocore session before the class exists: it cannot reach clients made
already, and every session a program makes would need it registered.

**instrument().** One public method is patched, ``botocore.session.Session.create_client``
(boto3's ``client()`` and every boto3 ``Session`` go through it): each
``bedrock-runtime`` client made afterwards is wrapped as it is made. Clients
made before are found once, at ``instrument()``, among the referrers of the
live client classes (``_live_clients``), so an agent that built its client first
is covered too. ``uninstrument()`` restores
``create_client``, removes the methods it set on every client (they fall back
to the class's own), and turns its switch off for any copy held elsewhere.

**What is wrapped.** ``converse``, ``converse_stream``, ``invoke_model`` and
``invoke_model_with_response_stream`` (shapes in ``bedrock.py``). The streamed
ones return botocore's dict whose ``stream`` / ``body`` is an ``EventStream``:
breaker puts the metered proxy in its place (``isinstance`` still an
``EventStream``, the same events, ``close()``) and returns that same dict.
``invoke_model``'s body is read when the answer arrives and replaced by a
``StreamingBody`` over the same bytes, so the caller reads it as before.
Async clients (aiobotocore) are not supported yet: ``wrap`` says so.
"""

from __future__ import annotations

import gc
import importlib
import inspect
import io
import sys
import weakref
from typing import TYPE_CHECKING, Any, Callable

import wrapt

from ..errors import ConfigError
from .attempt import Adapter
from .bedrock import ConverseAdapter, InvokeAdapter, Invoked
from .drivers import run_sync
from .streams import GuardedStream

if TYPE_CHECKING:
    from ..adapter import Guard

__all__ = ["SERVICE", "instrument", "is_client", "uninstrument", "wrap_client"]

SERVICE = "bedrock-runtime"

# method -> (adapter, where the answer's event stream is: None for a plain answer, "" for invoke_model's body)
_METHODS: tuple[tuple[str, Adapter, str | None], ...] = (
    ("converse", ConverseAdapter(), None),
    ("converse_stream", ConverseAdapter(stream=True), "stream"),
    ("invoke_model", InvokeAdapter(), ""),
    ("invoke_model_with_response_stream", InvokeAdapter(stream=True), "body"),
)

# The clients instrument() wrapped: client -> (guard, [(method, patched)]). Weak: a client dropped is forgotten.
_INSTRUMENTED: weakref.WeakKeyDictionary[Any, tuple[Any, list[tuple[str, Any]]]] = weakref.WeakKeyDictionary()


def is_client(obj: Any) -> bool:
    """Whether ``obj`` is a botocore (boto3) client (``botocore`` already imported: a client exists only then)."""
    module = sys.modules.get("botocore.client")
    return module is not None and isinstance(obj, module.BaseClient)


def _service(client: Any) -> str | None:
    try:
        return str(client.meta.service_model.service_name)
    except AttributeError:
        return None


class _Events(wrapt.ObjectProxy):  # type: ignore[misc]
    """An ``EventStream`` as the iterator ``GuardedStream`` meters: ``__next__`` over its events;
    everything else (``close``, ``get_initial_response``, ``isinstance``) is the ``EventStream``'s."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._self_events = iter(stream)

    def __iter__(self) -> _Events:
        return self

    def __next__(self) -> Any:
        return next(self._self_events)


def _read_body(response: Any) -> Any:
    """``invoke_model``'s answer with its body read into memory (see the module docstring)."""
    from botocore.response import StreamingBody  # type: ignore[import-untyped]

    data = response["body"].read()
    response["body"] = StreamingBody(io.BytesIO(data), len(data))
    return Invoked(response, data)


def _wrapper(guard: Guard, adapter: Adapter, events: str | None, switch: Any) -> Callable[..., Any]:
    """The wrapt wrapper of one client method (``events`` as in ``_METHODS``)."""
    if events is None:

        def call(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
            if not switch.on:
                return wrapped(*args, **kwargs)
            return run_sync(guard, adapter, wrapped, args, kwargs)

        return call
    if not events:

        def invoke(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
            if not switch.on:
                return wrapped(*args, **kwargs)

            def send(*a: Any, **kw: Any) -> Any:
                response = wrapped(*a, **kw)
                # Admitted (in flight): read the body for its usage. A body breaker does not read passes untouched.
                return _read_body(response) if guard.inflight() is not None and "body" in response else response

            result = run_sync(guard, adapter, send, args, kwargs)
            return result.response if isinstance(result, Invoked) else result

        return invoke

    def stream(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        if not switch.on:
            return wrapped(*args, **kwargs)
        sent: list[Any] = []

        def send(*a: Any, **kw: Any) -> Any:
            response = wrapped(*a, **kw)
            sent.append(response)
            found = response.get(events) if isinstance(response, dict) else None
            return response if found is None else _Events(found)

        result = run_sync(guard, adapter, send, args, kwargs)
        if not sent:
            return result
        response = sent[0]
        if isinstance(result, GuardedStream):  # metered: the proxy takes the EventStream's place
            response[events] = result
        return response

    return stream


def _adapter_for(client: Any, adapter: Adapter) -> Adapter:
    """``adapter`` priced at the provider ``wrap(client, provider=...)`` named, if any (else ``aws``)."""
    named = client.__dict__.get("_breaker_provider")
    return adapter if named is None or named == adapter.provider else adapter.for_provider(named)


def _patch(guard: Guard, client: Any, switch: Any) -> list[tuple[str, Any]]:
    """Set the wrapped methods on ``client``; what was set (empty if ``guard`` wrapped it already)."""
    marks = client.__dict__.setdefault("_breaker_guards", set())
    if id(guard) in marks:
        return []
    patched = []
    for method, adapter, events in _METHODS:
        bound = getattr(client, method, None)
        if bound is None:
            continue  # an older botocore without this operation
        layer = wrapt.FunctionWrapper(bound, _wrapper(guard, _adapter_for(client, adapter), events, switch))
        setattr(client, method, layer)
        patched.append((method, layer))
    marks.add(id(guard))
    return patched


def wrap_client(guard: Guard, client: Any, switch: Any) -> Any:
    """``breaker.wrap()`` of a boto3 client: its Bedrock Runtime methods go through ``guard``."""
    service = _service(client)
    if service != SERVICE:
        raise ConfigError(
            f"breaker can wrap a boto3 {SERVICE!r} client, not a {service!r} one: make it with "
            f"boto3.client({SERVICE!r}, ...), or account for this service's spend with Breaker.record()."
        )
    if inspect.iscoroutinefunction(getattr(client, "converse", None)):
        raise ConfigError(
            "breaker does not meter async Bedrock clients (aiobotocore / aioboto3) yet: use a boto3 client, "
            "or account for these calls with Breaker.record()."
        )
    _patch(guard, client, switch)
    return client


def _instrument_client(guard: Guard, client: Any, switch: Any) -> None:
    patched = _patch(guard, client, switch)
    if patched:
        _INSTRUMENTED[client] = (guard, patched)


def instrument(guard: Guard, switch: Any) -> list[tuple[Any, str, Any, Any]]:
    """Patch ``Session.create_client`` and wrap the live Bedrock Runtime clients; the class patch
    made, as ``patching.instrument`` records its patches (nothing when botocore is not installed)."""
    # From sys.modules, not ``botocore.session``: called by the post-import hook, inside the import of
    # ``botocore.session``, before Python binds it as the package's attribute (reading that attribute
    # then raises "cannot access submodule 'session'", failing the program's own ``import boto3``).
    module = sys.modules.get("botocore.session")
    if module is None:
        try:
            module = importlib.import_module("botocore.session")
        except ImportError:
            return []
    session = module.Session
    original = session.__dict__.get("create_client")
    if original is None:
        return []

    def create_client(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        client = wrapped(*args, **kwargs)
        if switch.on and _service(client) == SERVICE and not inspect.iscoroutinefunction(client.converse):
            _instrument_client(guard, client, switch)
        return client

    patched = wrapt.FunctionWrapper(original, create_client)
    session.create_client = patched
    for client in _live_clients():
        _instrument_client(guard, client, switch)
    return [(session, "create_client", original, patched)]


def _live_clients() -> list[Any]:
    """The Bedrock Runtime clients made before ``instrument()``.

    botocore makes a class per client, a subclass of ``BaseClient``, which the client
    refers to: the live classes with a ``converse`` method are ``BaseClient``'s subclasses,
    and their instances are among the classes' referrers (one scan of the heap in C, none
    at all when no such client exists). Checked by exact type, never ``isinstance``, which would run the
    ``__class__`` of any lazy proxy in the heap.
    """
    classes: set[type] = set()
    seen: set[type] = set()
    todo = list(sys.modules["botocore.client"].BaseClient.__subclasses__())
    while todo:
        cls = todo.pop()
        if cls not in seen:
            seen.add(cls)
            todo.extend(cls.__subclasses__())
            if "converse" in vars(cls):  # botocore's generated methods are class attributes
                classes.add(cls)
    if not classes:
        return []
    return [
        obj for obj in gc.get_referrers(*classes)
        if type(obj) in classes and _service(obj) == SERVICE and not inspect.iscoroutinefunction(obj.converse)
    ]


def uninstrument(guard: Guard) -> None:
    """Remove the methods ``instrument(guard)`` set on clients (the class's own apply again)."""
    for client, (owner, patched) in list(_INSTRUMENTED.items()):
        if owner is not guard:
            continue
        state = client.__dict__
        for method, layer in patched:
            if state.get(method) is layer:  # not wrapped over since: remove it, else its switch is off
                del state[method]
        state.get("_breaker_guards", set()).discard(id(guard))
        del _INSTRUMENTED[client]
