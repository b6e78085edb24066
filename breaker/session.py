"""Sessions: who a call is attributed to, carried by ``contextvars``.

``Breaker.session(...)`` is a sync and async context manager and a
decorator. Entering it makes a ``Session`` current for the code inside,
including asyncio tasks it creates and threads started with
``contextvars.copy_context().run``. Sessions nest: an inner session inherits
the outer one's feature, user and tags (unless it names its own), and its
calls count against the outer session's budgets too.
"""

from __future__ import annotations

import functools
import inspect
import threading
import uuid
import weakref
from asyncio import _get_running_loop, current_task
from contextvars import ContextVar
from typing import Any, Callable, Literal, Protocol, TypeVar

from .errors import SessionKilled, Tripped

__all__ = ["OpenStream", "Session", "SessionHost", "SessionScope", "State", "new_session_id", "reader_here",
           "stopped_streams", "track_stream"]

F = TypeVar("F", bound=Callable[..., Any])


class State:
    """In-process state of one session id, shared by every ``with`` block using it.

    ``touched`` is stamped with the guard's clock by the session registry.
    """

    __slots__ = ("id", "lock", "loops", "tripped", "unpriced", "degrade_hint", "loop_degrade", "open", "touched", "outcomes",
                 "streams")

    def __init__(self, session_id: str, loops: Any, now: float) -> None:
        self.id = session_id
        self.lock = threading.Lock()
        self.loops = loops
        self.tripped: Tripped | None = None
        self.unpriced = 0
        self.degrade_hint = False
        self.loop_degrade = False
        self.open = 0
        self.touched = now
        self.outcomes: list[str] | tuple[str, ...] = ()  # a list once the session records one (most never do)
        self.streams: weakref.WeakSet[OpenStream] | None = None  # its calls' unfinished streams: track_stream


class SessionHost(Protocol):
    """What sessions need from the engine (its session registry implements it)."""

    current: ContextVar[Session | None]

    def open(self, session_id: str | None, feature: str | None, user: str | None,
             tags: dict[str, str] | None) -> Session: ...

    def close(self, session: Session, exc: BaseException | None) -> None: ...

    def totals(self, session: Session) -> tuple[int, int, int]: ...

    def remaining_usd(self, session: Session) -> float | None: ...

    def add_outcome(self, session: Session, name: str) -> None: ...


class Session:
    """A unit of agent work: live figures and attribution.

    ``cost_usd``, ``tokens`` and ``calls`` are read from the ledger (so with a
    shared ledger they include other processes' calls in the same session).
    """

    __slots__ = ("id", "feature", "user", "tags", "parent", "ancestors", "host", "state", "plan", "anonymous",
                 "__weakref__")

    def __init__(
        self,
        host: SessionHost,
        session_id: str,
        *,
        feature: str | None,
        user: str | None,
        tags: dict[str, str],
        parent: Session | None,
        state: State,
    ) -> None:
        self.id = session_id
        self.feature = feature
        self.user = user
        self.tags = tags
        self.parent = parent
        self.ancestors: tuple[Session, ...] = (parent, *parent.ancestors) if parent is not None else ()
        self.host = host  # the engine's session registry: figures come from the ledger through it
        self.state = state
        # The engine's ``Plan`` (its budgets' counters for this session), made on first use.
        # Typed loosely: sessions sit below the engine and do not import it.
        self.plan: Any = None
        self.anonymous = False  # the scope of calls made outside any ``guard.session()``

    def __repr__(self) -> str:
        return f"Session({self.id!r}, feature={self.feature!r}, user={self.user!r}, cost_usd={self.cost_usd:.6f})"

    @property
    def chain(self) -> list[Session]:
        """This session and its parents, innermost first."""
        return [self, *self.ancestors]

    @property
    def cost_usd(self) -> float:
        """USD settled in this session (priced calls only)."""
        return self.host.totals(self)[0] / 1_000_000_000

    @property
    def tokens(self) -> int:
        """Input plus output tokens settled in this session."""
        return self.host.totals(self)[1]

    @property
    def calls(self) -> int:
        """Requests sent in this session, failed ones included."""
        return self.host.totals(self)[2]

    @property
    def unpriced_calls(self) -> int:
        """Calls whose model had no price (only with ``unknown_price="warn"``)."""
        return self.state.unpriced

    @property
    def remaining_usd(self) -> float | None:
        """What the tightest USD budget that applies can still pay for (``None``: no USD budget)."""
        return self.host.remaining_usd(self)

    @property
    def tripped(self) -> Tripped | None:
        """The trip that stopped this session, if any."""
        return self.state.tripped

    def outcome(self, name: str) -> None:
        """Record an outcome (``"resolved"``, ``"escalated"``…) for cost-per-outcome reports."""
        if not isinstance(name, str) or not name:
            raise ValueError("Session.outcome(name) needs a non-empty string, e.g. 'resolved'")
        state = self.state
        with state.lock:
            outcomes = state.outcomes
            if type(outcomes) is not list:
                outcomes = state.outcomes = list(outcomes)
            outcomes.append(name)
        self.host.add_outcome(self, name)


class SessionScope:
    """The object ``Breaker.session(...)`` returns: context manager (sync and async) and decorator."""

    def __init__(
        self,
        host: SessionHost,
        session_id: str | None,
        feature: str | None,
        user: str | None,
        tags: dict[str, str] | None,
    ) -> None:
        self._host = host
        self._id = session_id
        self._feature = feature
        self._user = user
        self._tags = tags
        self._tokens: list[tuple[Session, Any]] = []

    # -- context manager ------------------------------------------------
    def __enter__(self) -> Session:
        session = self._host.open(self._id, self._feature, self._user, self._tags)
        token = self._host.current.set(session)
        self._tokens.append((session, token))
        return session

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        session, token = self._tokens.pop()
        self._host.current.reset(token)
        trip = _find_trip(exc)
        self._host.close(session, trip or exc)
        if trip is not None and _owns(session, trip):
            raise SessionKilled(trip) from exc
        # A trip that was caught inside (a plugin's graceful stop, agent code
        # catching BaseException) ends the block normally: it is sticky, so
        # nothing more was spent, and ``Session.tripped`` says what happened.
        return False

    async def __aenter__(self) -> Session:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        return self.__exit__(exc_type, exc, tb)

    # -- decorator --------------------------------------------------------
    def __call__(self, fn: F) -> F:
        host, sid, feature, user, tags = self._host, self._id, self._feature, self._user, self._tags

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with SessionScope(host, sid, feature, user, tags):
                    return await fn(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with SessionScope(host, sid, feature, user, tags):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


def new_session_id() -> str:
    return uuid.uuid4().hex[:16]


def _find_trip(exc: BaseException | None) -> Tripped | None:
    """The ``Tripped`` in ``exc``: itself, or inside an exception group
    (``asyncio.TaskGroup`` wraps a ``BaseException`` raised in a task in a
    ``BaseExceptionGroup``)."""
    if exc is None or isinstance(exc, Tripped):
        return exc
    for inner in getattr(exc, "exceptions", None) or ():
        if isinstance(inner, BaseException) and (found := _find_trip(inner)) is not None:
            return found
    return None


def _owns(session: Session, trip: Tripped) -> bool:
    """Whether this session's boundary turns ``trip`` into ``SessionKilled``.

    A session trip is owned by the session it names; a trip of any other
    scope (feature, user, global, tag) by the outermost session it passes
    through, so that nested agents cannot catch it and go on.
    """
    if trip.scope == "session":
        return trip.key == session.id or not any(s.id == trip.key for s in session.ancestors)
    return session.parent is None


# ---------------------------------------------------------------------- unfinished streams
# A stream a call returned holds its reservation until it is read to the end, closed or collected. One
# its caller stopped reading (a ``break``) but still references would hold it for good, and every later
# call under a tight budget would wait for it. So a session knows its calls' unfinished streams, and
# each read of a stream notes who read it: the thread, the asyncio task, the session block. When that
# same reader starts another call of the session (or of a session inside it), or leaves the session
# block, it has stopped reading the stream: the stream is settled, billed for what arrived, and closed.
# A stream read in another thread, task or block is never cut; one not read yet is never cut (it may
# be handed to whoever reads it, a streaming HTTP response say): it settles when read, closed or collected.

_streams_lock = threading.Lock()


class OpenStream(Protocol):
    """An unfinished stream of a session's call (``providers/streams.py``)."""

    done: bool

    def stopped(self, reader: tuple[int, int, int]) -> bool:
        """Whether ``reader`` (``reader_here``) read it last and is not reading it now."""

    def stop(self) -> None:
        """Settle it for what arrived, and close it: a later read raises an error that says why."""

    async def stop_async(self) -> None:
        """``stop`` from a coroutine."""


def reader_here(block: Session | None, owner: Session) -> tuple[int, int, int]:
    """Who reads ``owner``'s stream now: this thread, the asyncio task running in it (0 outside any),
    and the session block: ``owner`` when read inside it (or inside a session within it, or outside
    any), else the ``block`` it is read in.

    Identities, not objects: a stream must not keep its reader's task or session alive.
    """
    if block is None or block is owner or owner in block.ancestors:
        block = owner
    loop = _get_running_loop()
    return threading.get_ident(), (id(current_task(loop)) if loop is not None else 0), id(block)


def track_stream(session: Session, stream: OpenStream) -> None:
    """Remember ``stream`` until it is settled or collected (held weakly: collection still settles it)."""
    state = session.state
    with _streams_lock:
        streams = state.streams
        if streams is None:
            streams = state.streams = weakref.WeakSet()
        streams.add(stream)


def stopped_streams(session: Session, enclosing: bool = True) -> list[OpenStream]:
    """The unfinished streams this reader stopped reading, as a call in ``session`` starts (with
    ``enclosing``: those of the sessions around it too, whose budgets its calls share) or as the
    ``session`` block ends (without)."""
    found: list[OpenStream] = []
    for block in (session, *session.ancestors) if enclosing and session.ancestors else (session,):
        streams = block.state.streams
        if not streams:
            continue
        reader = reader_here(block, block)
        with _streams_lock:
            for stream in list(streams):
                if stream.done:
                    streams.discard(stream)
                elif stream.stopped(reader):
                    found.append(stream)
    return found
