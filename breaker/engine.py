"""The engine: turns budgets into ledger counters, admits and settles calls.

One call's life (see DESIGN.md): an adapter describes the request as a
``Call``; ``admit`` runs the loop checks, prices the worst case, and asks
the ledger to reserve it on every budget that applies, atomically; the
adapter applies the ``Ticket``'s patch and sends; ``settle`` replaces the
reservation with the exact cost and fires thresholds, degradation and trips.

Money is integers here (nano-USD, tokens, calls); USD floats only appear in
the public figures and messages.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterable, Iterator, Mapping, Sequence

from .budgets import CALLS, METRICS, TOKENS, USD, Budget, format_amount, format_seconds, parse_window
from .call import Call, Outcome, Patch, Ticket
from .degrade import Degrade
from .errors import BudgetExceeded, ConfigError, LedgerError, LoopDetected, Tripped, UnknownPrice
from .events import Event
from .ledgers.base import Ask, CallRecord, Counter, Ledger, Limit
from .ledgers.memory import Memory
from .loops import Detection, LoopPolicy
from .pricing import NANO, Price, PriceBook
from .scope import Session, SessionScope, _State, new_session_id
from .telemetry import make_telemetry
from .usage import Usage

__all__ = ["Breaker", "Spend", "DEFAULT_OUTPUT_BOUND"]

log = logging.getLogger("breaker")

DEFAULT_OUTPUT_BOUND = 131_072
"""Worst-case output tokens for a request with no output cap and a model of unknown context window."""

_DEFAULT = object()
_ZERO = (0, 0, 0)


@dataclass(frozen=True, slots=True)
class Spend:
    """Totals read from the ledger."""

    usd: float
    tokens: int
    calls: int


class _Line:
    """One budget limit bound to one scope key, with its thresholds as integers."""

    __slots__ = (
        "budget", "per", "key", "counter", "metric", "limit", "hard", "warn", "degrade_at", "watch", "index",
    )

    def __init__(self, budget: Budget, per: str, key: str | None, counter: int, metric: int, limit: int) -> None:
        self.budget = budget
        self.per = per
        self.key = key
        self.counter = counter
        self.metric = metric
        self.limit = limit
        self.hard = budget.hard
        fractions = budget.warn_at + ((1.0,) if not budget.hard and 1.0 not in budget.warn_at else ())
        self.warn = tuple((int(limit * f), f) for f in fractions)
        self.degrade_at = int(limit * budget.degrade_at) if budget.degrade_at is not None else None
        watch = [limit + 1]
        if self.warn:
            watch.append(self.warn[0][0])
        if self.degrade_at is not None:
            watch.append(self.degrade_at)
        self.watch = min(watch)
        self.index = 0

    def who(self) -> str:
        if self.per == "session":
            return f"Session {self.key!r}"
        if self.per == "global":
            return "The global scope"
        if self.per in ("feature", "user"):
            return f"{self.per.capitalize()} {self.key!r}"
        return f"Tag {self.per}={self.key!r}"


class _Plan:
    """Counters and limits for one session (computed once per session object)."""

    __slots__ = ("counters", "lines", "limits", "hard", "hard_lines", "degrading")

    def __init__(self, counters: tuple[Counter, ...], lines: list[_Line]) -> None:
        self.counters = counters
        for i, line in enumerate(lines):
            line.index = i
        self.lines = tuple(lines)
        self.limits = tuple(Limit(l.counter, l.metric, l.limit) for l in lines)
        self.hard_lines = tuple(l for l in lines if l.hard)
        self.hard = tuple(Limit(l.counter, l.metric, l.limit) for l in self.hard_lines)
        self.degrading = any(l.degrade_at is not None for l in self.hard_lines)


class Breaker:
    """The engine: thread-safe and asyncio-safe.

    Args:
        budgets: the ``Budget`` objects to enforce.
        loops: a ``LoopPolicy`` (on by default); ``None`` turns loop detection off.
        degrade: what degrading a call does (needed by budgets with
            ``degrade_at`` or ``on_exceed="degrade"``).
        alerts: sinks (``alerts.Log()`` by default; any callable taking an ``Event``).
        ledger: where counters live: ``ledgers.Memory()`` (default),
            ``ledgers.SQLite(path)`` or ``ledgers.Redis(url)`` to share budgets.
        prices: user prices, ``{"model": {"input": 3.0, "output": 12.0}}`` in
            USD per million tokens; they override the bundled ones.
        unknown_price: ``"error"`` raises ``UnknownPrice`` before a call to a
            model with no price; ``"warn"`` sends it, enforces token and call
            budgets and counts it in ``Session.unpriced_calls``.
        telemetry: ``True`` for OpenTelemetry spans and metrics (a no-op
            without an SDK), ``False`` for none, or a telemetry object.
        min_output_tokens: a call whose budget cannot pay for at least this
            many output tokens is refused rather than sent with a uselessly
            small cap.
        reservation_wait: seconds a call may wait for other calls' in-flight
            reservations to settle before it gives up (without tripping).
        session_ttl: forget the in-process state (loop memory) of a session
            closed and idle this long.
        on_ledger_error: ``"closed"`` refuses calls while a shared ledger is
            unreachable, ``"open"`` lets them through and alerts.
        input_estimate: ``"strict"`` bounds a request's input by its UTF-8
            bytes (no tokenizer yields more tokens than bytes), which makes
            overshoot impossible; ``"loose"`` guesses a quarter of that: it
            refuses fewer calls near the limit but gives up the zero-overshoot
            guarantee.
        clock: seconds since the epoch; replaceable for tests and simulations.
    """

    def __init__(
        self,
        budgets: Sequence[Budget] = (),
        loops: LoopPolicy | None = _DEFAULT,  # type: ignore[assignment]
        degrade: Degrade | None = None,
        alerts: Sequence[Any] | None = None,
        ledger: Ledger | None = None,
        prices: Mapping[str, Mapping[str, Any]] | None = None,
        unknown_price: str = "error",
        telemetry: Any = True,
        *,
        min_output_tokens: int = 16,
        reservation_wait: float = 60.0,
        session_ttl: str | timedelta | int = "1h",
        on_ledger_error: str = "closed",
        input_estimate: str = "strict",
        clock: Any = time.time,
    ) -> None:
        if isinstance(budgets, Budget):
            budgets = [budgets]
        for b in budgets:
            if not isinstance(b, Budget):
                raise ConfigError(f"budgets must be Budget objects, got {b!r}; write budgets=[Budget(usd=2.0)]")
        if loops is _DEFAULT:
            loops = LoopPolicy()
        if loops is not None and not isinstance(loops, LoopPolicy):
            raise ConfigError(f"loops must be a LoopPolicy or None, got {loops!r}")
        if degrade is not None and not isinstance(degrade, Degrade):
            raise ConfigError(f"degrade must be a Degrade, got {degrade!r}; write degrade=Degrade(model_map={{...}})")
        for b in budgets:
            if (b.degrade_at is not None or b.on_exceed == "degrade") and degrade is None:
                raise ConfigError(
                    f"{b!r} degrades calls, but Breaker(degrade=...) is not set: add "
                    f"degrade=Degrade(model_map={{'gpt-5': 'gpt-5-mini'}}, max_output_tokens=1024)"
                )
        if unknown_price not in ("error", "warn"):
            raise ConfigError(f"unknown_price={unknown_price!r}: use 'error' or 'warn'")
        if on_ledger_error not in ("closed", "open"):
            raise ConfigError(f"on_ledger_error={on_ledger_error!r}: use 'closed' (refuse calls) or 'open' (allow, alert)")
        if input_estimate not in ("strict", "loose"):
            raise ConfigError(f"input_estimate={input_estimate!r}: use 'strict' (no overshoot) or 'loose'")
        if type(min_output_tokens) is not int or min_output_tokens < 1:
            raise ConfigError(f"min_output_tokens={min_output_tokens!r} must be a whole number of at least 1")
        if alerts is None:
            from .alerts import Log

            alerts = [Log()]
        alerts = list(alerts)
        for sink in alerts:
            if not callable(sink):
                raise ConfigError(f"alerts must be callables taking an Event, got {sink!r}")
        if ledger is None:
            ledger = Memory()
        for method in ("reserve", "settle", "trip", "read"):
            if not callable(getattr(ledger, method, None)):
                raise ConfigError(f"ledger {ledger!r} lacks {method}(); use breaker.ledgers.Memory(), SQLite(path) or Redis(url)")

        self.budgets = tuple(budgets)
        self.loops = loops
        self.degrade = degrade
        self.alerts = alerts
        # [issue 6] a shared ledger (SQLite, Redis) survives outages: journal + once-per-outage event
        from .ledgers.resilient import resilient

        self.ledger = resilient(ledger, mode=on_ledger_error, on_event=self._emit)
        # A store behind I/O answers in a round trip: async callers wait for it off the event loop.
        self._offload = not isinstance(self.ledger, Memory)
        # Two pools: settlements (which free reservations) never queue behind admissions
        # retrying while reservations stand in their way.
        self._executors: dict[str, ThreadPoolExecutor] = {}
        # [/issue 6]
        self.unknown_price = unknown_price
        self.on_ledger_error = on_ledger_error
        self.min_output_tokens = min_output_tokens
        self.input_estimate = input_estimate
        self.reservation_wait = float(reservation_wait)
        self.session_ttl = parse_window(session_ttl, what="session_ttl")
        self.prices = PriceBook(prices)
        self.telemetry = make_telemetry(telemetry)
        self._clock = clock

        self._current: ContextVar[Session | None] = ContextVar(f"breaker_session_{id(self):x}", default=None)
        self._inflight: ContextVar[Ticket | None] = ContextVar(f"breaker_inflight_{id(self):x}", default=None)
        self._lock = threading.Lock()
        self._states: OrderedDict[str, _State] = OrderedDict()
        self._anonymous: Session | None = None
        self._fired: OrderedDict[tuple[Any, ...], None] = OrderedDict()
        self._unknown_models: set[tuple[str, str | None]] = set()
        self._instrumented = False

    # ------------------------------------------------------------------ scopes
    def session(
        self,
        id: str | None = None,
        *,
        feature: str | None = None,
        user: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> SessionScope:
        """Attribute every call inside to a session (context manager, async context manager, decorator).

        ``id=None`` makes a fresh id (per call, when used as a decorator).
        """
        for name, value in (("id", id), ("feature", feature), ("user", user)):
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"session({name}={value!r}) must be a non-empty string")
        if tags is not None and not all(isinstance(k, str) and isinstance(v, str) for k, v in dict(tags).items()):
            raise ConfigError(f"session(tags={tags!r}) must map strings to strings")
        return SessionScope(self, id, feature, user, dict(tags) if tags else None)

    def current_session(self) -> Session:
        """The session calls are attributed to right now (the anonymous one outside any)."""
        return self._current.get() or self._anonymous_session()

    def _anonymous_session(self) -> Session:
        session = self._anonymous
        if session is None:
            session = self._anonymous = Session(
                self, "anonymous", feature=None, user=None, tags={}, parent=None, state=self._state_for("anonymous")
            )
        return session

    def _state_for(self, session_id: str) -> _State:
        with self._lock:
            state = self._states.get(session_id)
            now = self._clock()
            if state is None:
                state = self._states[session_id] = _State(
                    session_id, self.loops.new_state() if self.loops is not None else None
                )
                if len(self._states) & 255 == 0:
                    self._sweep_states(now)
            else:
                self._states.move_to_end(session_id)
            state.touched = now
            return state

    def _sweep_states(self, now: float) -> None:
        horizon = now - self.session_ttl
        idle = [sid for sid, st in self._states.items() if st.open == 0 and st.touched < horizon and sid != "anonymous"]
        for sid in idle:
            del self._states[sid]
        if idle:
            self._states = OrderedDict(self._states)  # give the emptied table back

    def _open_session(
        self, session_id: str | None, feature: str | None, user: str | None, tags: dict[str, str] | None
    ) -> Session:
        parent = self._current.get()
        sid = session_id or new_session_id()
        if parent is not None:
            feature = feature if feature is not None else parent.feature
            user = user if user is not None else parent.user
            tags = {**parent.tags, **(tags or {})}
        state = self._state_for(sid)
        with state.lock:
            state.open += 1
        return Session(self, sid, feature=feature, user=user, tags=tags or {}, parent=parent, state=state)

    def _close_session(self, session: Session, exc: BaseException | None) -> None:
        state = session._state
        with state.lock:
            state.open -= 1
            state.touched = self._clock()
        try:
            usd, tokens, calls = self._session_totals(session)
        except Exception as e:  # the ledger being down must not hide the agent's own outcome
            log.warning("could not read session totals at session end: %s", e)
            return
        trip = state.tripped if state.tripped is not None else (exc if isinstance(exc, Tripped) else None)
        message = (
            f"Session {session.id!r} ended: {calls} calls, {tokens:,} tokens, ${usd / NANO:,.4f}"
            + (f"; stopped: {trip.reason}" if trip is not None else "")
            + (f"; outcome {state.outcomes[-1]!r}" if state.outcomes else "")
        )
        self._emit(
            Event(
                "session_end", message, scope="session", key=session.id, session=session.id,
                feature=session.feature, user=session.user, spent_usd=usd / NANO,
                data={
                    "calls": calls, "tokens": tokens, "cost_usd": usd / NANO,
                    "unpriced_calls": state.unpriced, "outcomes": list(state.outcomes),
                    "tripped": trip.reason if trip is not None else None,
                },
            )
        )

    def sweep(self) -> None:
        """Forget idle state now: closed sessions idle past ``session_ttl`` and, for
        the Memory ledger, counters idle past its ``idle_ttl``. Both also happen on
        their own as new sessions arrive; call this from a timer in a server that
        goes quiet for long stretches."""
        now = self._clock()
        with self._lock:
            self._sweep_states(now)
        sweep = getattr(self.ledger, "sweep", None)
        if sweep is not None:
            sweep(now)

    # ------------------------------------------------------------------ plans
    def _plan(self, session: Session) -> _Plan:
        plan = session._plan
        if plan is None:
            plan = session._plan = self._make_plan(session)
        return plan

    def _make_plan(self, session: Session) -> _Plan:
        counters: dict[tuple[str, int], int] = {}

        def counter(key: str, window: int = 0) -> int:
            return counters.setdefault((key, window), len(counters))

        chain = session.chain
        for s in chain:
            counter(f"session:{s.id}")
        if session.feature is not None:
            counter(f"feature:{session.feature}")
        if session.user is not None:
            counter(f"user:{session.user}")
        counter("global")

        lines: list[_Line] = []
        for budget in self.budgets:
            per = budget.per
            if per == "session":
                keys = [s.id for s in chain]
            elif per == "global":
                keys = [None]
            elif per == "feature":
                keys = [session.feature] if session.feature is not None else []
            elif per == "user":
                keys = [session.user] if session.user is not None else []
            else:
                keys = [session.tags[per]] if per in session.tags else []
            for key in keys:
                if budget.key is not None and key != budget.key:
                    continue
                if per == "global":
                    name = "global"
                elif per in ("session", "feature", "user"):
                    name = f"{per}:{key}"
                else:
                    name = f"tag:{per}={key}"
                index = counter(name, budget.window_s)
                for metric, limit in budget.limits:
                    lines.append(_Line(budget, per, key, index, metric, limit))
        ordered = tuple(Counter(k, w) for (k, w), _ in sorted(counters.items(), key=lambda kv: kv[1]))
        return _Plan(ordered, lines)

    # ------------------------------------------------------------------ admission
    def admit(self, call: Call, session: Session | None = None) -> Ticket:
        """Admit ``call``: loop checks, then an atomic reservation of its worst case.

        Returns a ``Ticket`` whose ``patch`` the adapter must apply. Raises
        ``LoopDetected`` / ``BudgetExceeded`` (both ``Tripped``) to refuse, or
        ``UnknownPrice`` for a model with no price. Waits (bounded by
        ``reservation_wait``) while only other calls' reservations stand in the way.
        """
        session = session or self._current.get() or self._anonymous_session()
        force = self._precheck(call, session)
        ticket = self._admit_step(call, session, force, False)
        if ticket is None:
            for delay, final in self._retries():
                time.sleep(delay)
                ticket = self._admit_step(call, session, force, final)
                if ticket is not None:
                    break
        return ticket  # type: ignore[return-value]

    async def admit_async(self, call: Call, session: Session | None = None) -> Ticket:
        """``admit`` for event loops: waits with ``asyncio.sleep``, and a SQLite or Redis ledger's
        round trip runs in a worker thread, so the loop keeps serving other tasks meanwhile."""
        session = session or self._current.get() or self._anonymous_session()
        force = self._precheck(call, session)
        ticket = await self._admit_step_async(call, session, force, False)
        if ticket is None:
            for delay, final in self._retries():
                await asyncio.sleep(delay)
                ticket = await self._admit_step_async(call, session, force, final)
                if ticket is not None:
                    break
        return ticket  # type: ignore[return-value]

    def _retries(self) -> Iterator[tuple[float, bool]]:
        """The slow path of admission, when only in-flight reservations stand in the way:
        ``(seconds to wait, final)`` before each new attempt, the last one ``final`` (it
        refuses rather than wait). One schedule for the sync and the async callers."""
        delay = 0.002
        deadline = time.monotonic() + self.reservation_wait
        while True:
            now = time.monotonic()
            if now >= deadline:
                yield 0.0, True
                return
            yield min(delay, deadline - now), False
            delay = min(delay * 2, 0.05)

    async def _admit_step_async(self, call: Call, session: Session, force: bool, final: bool) -> Ticket | None:
        if not self._offload:
            return self._admit_step(call, session, force, final)
        return await self._off_loop("admit", functools.partial(self._admit_step, call, session, force, final),
                                    orphan=self.release)

    def _pool(self, purpose: str) -> ThreadPoolExecutor:
        pool = self._executors.get(purpose)
        if pool is None:
            with self._lock:
                pool = self._executors.get(purpose)
                if pool is None:
                    pool = self._executors[purpose] = ThreadPoolExecutor(
                        max_workers=8, thread_name_prefix=f"breaker-{purpose}")
        return pool

    async def _off_loop(self, purpose: str, fn: Any, *, orphan: Any = None) -> Any:
        """Run ``fn()`` (a ledger round trip) in one of the engine's worker pools and await it.

        The work is shielded: a cancelled caller does not interrupt a reservation or a
        settlement halfway. A ticket whose caller is gone by the time it is granted is given
        back by ``orphan`` (``release``), so a cancellation never leaks a reservation.
        """
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool(purpose), contextvars.copy_context().run, fn)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if orphan is not None:
                def give_back(done: asyncio.Future[Any]) -> None:
                    if not done.cancelled() and done.exception() is None and done.result() is not None:
                        self._pool("settle").submit(orphan, done.result())

                future.add_done_callback(give_back)
            raise

    def _precheck(self, call: Call, session: Session) -> bool:
        """Sticky trips and loop checks (before any budget). Returns whether to force degradation."""
        state = session._state
        if state.tripped is not None:
            raise _again(state.tripped)
        for parent in session.ancestors:
            if parent._state.tripped is not None:
                raise _again(parent._state.tripped)
        if self.loops is None:
            return False
        found = self.loops.check(state.loops, call, self._clock())
        if found is not None:
            self._on_detection(found, session, call)
        return state.loop_degrade

    def _on_detection(self, found: Detection, session: Session, call: Call | None) -> None:
        state = session._state
        message = f"Session {session.id!r}: {found.message}"
        self._emit(self._event("loop", message, session, scope="session", key=session.id,
                               data={"signal": found.signal, "action": found.action, "count": found.count,
                                     "limit": found.limit, "model": call.model if call else None}))
        if found.action == "kill":
            trip = LoopDetected(
                f"Session {session.id!r} was stopped by loop detection: {found.message}. Every later call "
                f"in this session is refused before it is sent; start a new session once the agent is fixed.",
                scope="session", key=session.id, reason=f"loop:{found.signal}", metric="calls",
                spent=float(found.count), limit=float(found.limit), session=session.id,
            )
            state.tripped = trip
            self._emit(self._event("tripped", trip.message, session, scope="session", key=session.id,
                                   data={"reason": trip.reason}))
            if call is not None:
                self._record_refusal(session, call.model, call.provider, trip, self._clock())
            raise trip
        if found.action == "degrade" and not state.loop_degrade:
            state.loop_degrade = True
            if self.degrade is not None:
                self._emit(self._event("degraded", f"{message}; later calls are degraded", session,
                                       scope="session", key=session.id, data={"reason": f"loop:{found.signal}"}))

    def _admit_step(self, call: Call, session: Session, force_degrade: bool, final: bool) -> Ticket | None:
        plan = session._plan or self._plan(session)
        state = session._state
        degraded = (force_degrade or state.degrade_hint) and self.degrade is not None
        now = self._clock()
        provider = call.provider
        for _attempt in (0, 1):
            patch = self.degrade.patch(call) if degraded else _NO_PATCH  # type: ignore[union-attr]
            model = patch.model or call.model
            price = self.prices.lookup(model, provider)
            if price is None:
                self._unpriced(model, provider, session)
            natural = call.max_output_tokens
            if natural is None:
                natural = (price.context_window if price is not None else None) or DEFAULT_OUTPUT_BOUND
            cap = patch.max_output_tokens
            units_max = natural if cap is None or cap >= natural else cap
            if patch.keep_last_messages is not None and call.trimmed_input is not None:
                # the degraded request drops old messages: reserve what it will send
                call.input_tokens = min(call.input_tokens, call.trimmed_input(patch.keep_last_messages))
            input_tokens = call.input_tokens
            if price is not None:
                fixed_usd, per_usd = price.worst_case(input_tokens)
            else:
                fixed_usd = per_usd = 0
            fixed = (fixed_usd, input_tokens, 1)
            per_unit = (per_usd, 1, 0)
            units_min = self.min_output_tokens
            ask = Ask(plan.counters, plan.hard, fixed, per_unit, units_max,
                      units_min if units_min < units_max else units_max, not final)
            try:
                grant = self.ledger.reserve(ask, now)
            except LedgerError as e:  # [issue 6] the store is down, on_ledger_error="closed": refuse, don't trip
                raise BudgetExceeded(
                    str(e), scope="ledger", key=None, reason="ledger_unavailable", session=session.id, sticky=False,
                ) from e
            status = grant.status
            if status == "ok":
                if plan.degrading:
                    crossing = any(
                        l.degrade_at is not None and grant.settled[i] >= l.degrade_at
                        for i, l in enumerate(plan.hard_lines)
                    )
                    if crossing and not degraded and self.degrade is not None:
                        self.ledger.settle(grant.handle, plan.counters, (), _ZERO, now)
                        self._mark_degraded(session, "budget past degrade_at")
                        degraded = True
                        continue
                    if not crossing and state.degrade_hint:
                        state.degrade_hint = False  # the window freed: the next call goes undegraded
                units = grant.units
                if units < natural:
                    patch = Patch(patch.model, units, patch.reasoning_effort, patch.keep_last_messages, patch.hook)
                ticket = Ticket(call, session, model, price, patch, degraded, plan.counters, plan.limits,
                                units, grant.handle, now)
                ticket.span = self.telemetry.start(call, session)
                return ticket
            if status == "busy":
                if final:
                    line = plan.hard_lines[grant.blocked]
                    raise BudgetExceeded(
                        f"{line.who()}: calls in flight hold {format_amount(line.metric, grant.reserved)} of its "
                        f"budget of {line.budget.describe()} and did not settle within {self.reservation_wait:g}s; "
                        f"this call was refused without tripping the budget.",
                        scope=line.per, key=line.key, reason="busy", metric=METRICS[line.metric],
                        spent=_edge(line.metric, grant.settled[grant.blocked]), limit=_edge(line.metric, line.limit),
                        session=session.id, sticky=False,
                    )
                return None
            line = plan.hard_lines[grant.blocked]
            if status == "over" and line.budget.on_exceed == "degrade" and not degraded and self.degrade is not None:
                self._mark_degraded(session, f"{line.who()} cannot pay for the full call")
                degraded = True
                continue
            needed = fixed[line.metric] + per_unit[line.metric] * ask.units_min
            already = status == "tripped"
            trip = self._trip(line, grant.settled[grant.blocked], needed, session, model, already, now)
            if not already:
                self._record_refusal(session, model, call.provider, trip, now)
            raise trip
        raise AssertionError("unreachable")  # pragma: no cover

    def _mark_degraded(self, session: Session, why: str) -> None:
        state = session._state
        if not state.degrade_hint:
            state.degrade_hint = True
            self._emit(self._event("degraded", f"Session {session.id!r} is now degraded: {why}", session,
                                   scope="session", key=session.id, data={"reason": why}))

    def _trip(
        self, line: _Line, settled: int, needed: int, session: Session, model: str, already: bool, now: float
    ) -> BudgetExceeded:
        counter = session._plan.counters[line.counter]  # type: ignore[union-attr]
        window = line.budget.window_s
        spent = format_amount(line.metric, settled)
        if already:
            message = (
                f"{line.who()} is stopped: its budget of {line.budget.describe()} has run out "
                f"({spent} spent). The call to {model} was refused before it was sent."
            )
        else:
            left = format_amount(line.metric, max(line.limit - settled, 0))
            message = (
                f"{line.who()} was stopped: its budget of {line.budget.describe()} cannot pay for the next "
                f"call ({spent} spent, {left} left; the call to {model} could cost up to "
                f"{format_amount(line.metric, needed)})."
            )
        message += (
            f" Calls resume once the {format_seconds(window)} window frees enough."
            if window else " Every later call in this scope is refused; raise the budget or start a new scope."
        )
        trip = BudgetExceeded(
            message, scope=line.per, key=line.key, reason="budget", metric=METRICS[line.metric],
            spent=_edge(line.metric, settled), limit=_edge(line.metric, line.limit), session=session.id,
        )
        if not already:
            self.ledger.trip(counter, line.metric, needed, now)
            if not window and line.per == "session" and line.key == session.id:
                session._state.tripped = trip
            if self._once(("trip", counter.key, window, line.metric, int(now // window) if window else 0)):
                event = self._budget_event("tripped", message, session, line, settled)
                event.data["reason"] = trip.reason  # like loop trips: sinks and telemetry read the reason here
                self._emit(event)
        return trip

    def _record_refusal(self, session: Session, model: str, provider: str | None, trip: Tripped, now: float) -> None:
        """Keep the call that tripped a scope in the ledger's history (nothing spent), so
        reports show trips. Only ledgers that keep records; only the first refusal."""
        if not self.ledger.wants_records:
            return
        record = self._record(session, model, provider, None, 0, now, "refused", False)
        record.tripped = trip.reason
        self.ledger.settle(None, self._plan(session).counters, (), _ZERO, now, record)

    # ------------------------------------------------------------------ settlement
    def settle(
        self,
        ticket: Ticket,
        usage: Usage | None = None,
        *,
        error: BaseException | None = None,
        tool_calls: Sequence[tuple[str, str]] = (),
        sent: bool = True,
    ) -> int | None:
        """Replace ``ticket``'s reservation with the real cost (idempotent).

        ``usage=None`` with ``sent=True`` records a failed call (no tokens, one
        call); ``sent=False`` releases the reservation as if nothing happened.
        An ``error`` that is not an ``Exception`` (``CancelledError``,
        ``KeyboardInterrupt``) with no usage means the call was abandoned
        mid-request: the provider may have read the input, so the input bound is
        billed, and it is not counted as a failure. Returns the cost in nano-USD
        (``None`` when the model has no price).
        """
        if ticket.settled:
            return None
        ticket.settled = True
        if usage is None and error is not None and not isinstance(error, Exception):
            usage, error = Usage(input_tokens=ticket.call.input_tokens), None
        now = self._clock()
        price = ticket.price
        session = ticket.session
        if usage is not None:
            cost = price.cost(usage) if price is not None else None
            actual = (cost or 0, usage.input_tokens + usage.output_tokens, 1 if sent else 0)
        else:
            cost = 0 if price is not None else None
            actual = (0, 0, 1 if sent else 0)
        record = None
        if self.ledger.wants_records and sent:
            record = self._record(session, ticket.model, ticket.call.provider, usage, cost, now,
                                  "error" if error is not None else ("ok" if usage is not None else "error"),
                                  ticket.degraded)
        settled = self.ledger.settle(ticket.reservation, ticket.counters, ticket.limits, actual, now, record)
        plan = session._plan
        if plan is not None:
            self._after_settle(session, plan, settled, now, ticket.model)
        if usage is not None and price is None and sent:
            with session._state.lock:
                session._state.unpriced += 1
        if self.loops is not None and sent:
            found = self.loops.observe(
                session._state.loops, ticket.call,
                Outcome(error is None and usage is not None, usage, cost, tuple(tool_calls), error), now,
            )
            if found is not None:
                self._emit(self._event("loop", f"Session {session.id!r}: {found.message}", session,
                                       scope="session", key=session.id,
                                       data={"signal": found.signal, "action": found.action}))
        self.telemetry.end(ticket, usage, cost, error)
        return cost

    async def settle_async(
        self,
        ticket: Ticket,
        usage: Usage | None = None,
        *,
        error: BaseException | None = None,
        tool_calls: Sequence[tuple[str, str]] = (),
        sent: bool = True,
    ) -> int | None:
        """``settle`` for event loops: a SQLite or Redis ledger's round trip runs in a worker thread."""
        if not self._offload:
            return self.settle(ticket, usage, error=error, tool_calls=tool_calls, sent=sent)
        return await self._off_loop(
            "settle", functools.partial(self.settle, ticket, usage, error=error, tool_calls=tool_calls, sent=sent)
        )

    def release(self, ticket: Ticket) -> None:
        """Give a reservation back for a call that was never sent."""
        self.settle(ticket, None, sent=False)

    def require_unpatched(self, ticket: Ticket, *, layer: str, model_fix: str, cap_fix: str) -> None:
        """For layers that see a request too late to change it (framework hooks and callbacks).

        If admission fitted the call only by patching it (a cheaper model, a
        lower output cap), sending it unchanged could spend more than was
        reserved: the reservation is given back and the call refused with a
        non-sticky ``BudgetExceeded`` that says how to fix it (``model_fix`` /
        ``cap_fix``); a later call that needs no patch goes through.
        """
        patch, call = ticket.patch, ticket.call
        if patch.model is None and patch.max_output_tokens is None:
            return
        self.release(ticket)
        if patch.model is not None:
            why = f"the budget asks to degrade {call.model} to {patch.model}, but {layer} cannot change the model; {model_fix}"
        else:
            why = (f"the budget can pay for {patch.max_output_tokens} output tokens but the call may produce "
                   f"{call.max_output_tokens or 'its whole context window of'} tokens, and {layer} cannot lower "
                   f"that; {cap_fix}")
        session = ticket.session
        raise BudgetExceeded(
            f"Session {session.id!r}: the call to {call.model} was refused before it was sent: {why}.",
            scope="session", key=session.id, reason="budget", metric="usd", session=session.id, sticky=False,
        )

    def record(
        self, model: str, usage: Usage, *, provider: str | None = None, session: Session | None = None
    ) -> float | None:
        """Account for a call made outside the patched clients. Returns its cost in USD.

        Spend that passes a hard limit trips the scope (the next call is
        refused). A model with no price still has its tokens and call counted;
        then ``UnknownPrice`` is raised unless ``unknown_price="warn"``.
        """
        if not isinstance(usage, Usage):
            raise TypeError(f"record() needs a breaker.Usage, got {type(usage).__name__}")
        session = session or self._current.get() or self._anonymous_session()
        plan = self._plan(session)
        now = self._clock()
        price = self.prices.lookup(model, provider)
        cost = price.cost(usage) if price is not None else None
        actual = (cost or 0, usage.input_tokens + usage.output_tokens, 1)
        record = self._record(session, model, provider, usage, cost, now, "ok", False) if self.ledger.wants_records else None
        settled = self.ledger.settle(None, plan.counters, plan.limits, actual, now, record)
        self._after_settle(session, plan, settled, now, model)
        if price is None:
            with session._state.lock:
                session._state.unpriced += 1
            if self.unknown_price == "error":
                raise UnknownPrice(model, provider)
            self._warn_unknown(model, provider, session)
            return None
        return cost / NANO  # type: ignore[operator]

    def _after_settle(self, session: Session, plan: _Plan, settled: Sequence[int], now: float, model: str) -> None:
        for line in plan.lines:
            s = settled[line.index]
            if s < line.watch:
                continue
            window = line.budget.window_s
            epoch = int(now // window) if window else 0
            counter = plan.counters[line.counter]
            crossed = [f for t, f in line.warn if s >= t]
            if crossed and self._once(("warn", counter.key, window, line.metric, epoch, crossed[-1])):
                fraction = s / line.limit
                self._emit(self._budget_event(
                    "threshold",
                    f"{line.who()} has spent {fraction:.0%} of its budget of {line.budget.describe()} "
                    f"({format_amount(line.metric, s)}).",
                    session, line, s,
                ))
            if line.degrade_at is not None and s >= line.degrade_at and self.degrade is not None:
                self._mark_degraded(session, f"{line.who()} passed {line.budget.degrade_at:.0%} of its budget")
            if line.hard and s > line.limit:
                # Only possible when a call cost more than its reservation (an
                # unbounded fee, usage the request could not bound): stop the next one.
                self._trip(line, s, 0, session, model, False, now)

    # ------------------------------------------------------------------ figures
    def spent(self, per: str = "session", key: str | None = None, *, window: str | timedelta | None = None) -> Spend:
        """Totals from the ledger for one scope key (``per="global"`` needs no key).

        ``window`` reads a rolling counter, which exists only for windows some budget uses.
        """
        if per == "global":
            name = "global"
        elif key is None:
            raise ConfigError(f"spent(per={per!r}) needs key=..., e.g. spent(per='user', key='acme')")
        elif per in ("session", "feature", "user"):
            name = f"{per}:{key}"
        else:
            name = f"tag:{per}={key}"
        totals = self.ledger.read([Counter(name, parse_window(window))], self._clock())[0]
        usd, tokens, calls = totals.settled
        return Spend(usd / NANO, tokens, calls)

    def _session_totals(self, session: Session) -> tuple[int, int, int]:
        return self.ledger.read([Counter(f"session:{session.id}")], self._clock())[0].settled

    def _remaining_usd(self, session: Session) -> float | None:
        plan = self._plan(session)
        lines = [l for l in plan.hard_lines if l.metric == USD]
        if not lines:
            return None
        totals = self.ledger.read(plan.counters, self._clock())
        left = min(l.limit - totals[l.counter].settled[USD] - totals[l.counter].reserved[USD] for l in lines)
        return max(left, 0) / NANO

    def _add_outcome(self, session: Session, name: str) -> None:
        add = getattr(self.ledger, "add_outcome", None)
        if add is not None:
            add(session.id, session.feature, session.user, name, self._clock())

    # ------------------------------------------------------------------ instrumentation
    def instrument(self) -> Breaker:
        """Patch the installed OpenAI and Anthropic SDKs (idempotent; SDKs not installed are skipped)."""
        from .providers import instrument

        instrument(self)
        return self

    def uninstrument(self) -> None:
        """Restore the SDKs' original methods."""
        from .providers import uninstrument

        uninstrument(self)

    def wrap(self, client: Any) -> Any:
        """Instrument one OpenAI / Anthropic client object (sync or async) and return it."""
        from .providers import wrap

        return wrap(self, client)

    def inflight(self) -> Ticket | None:
        """The ticket of the call this context is inside, if any (so nested layers count a call once)."""
        return self._inflight.get()

    # ------------------------------------------------------------------ helpers
    def _unpriced(self, model: str, provider: str | None, session: Session) -> None:
        """A call to a model with no price: refuse it (``unknown_price="error"``) or warn once."""
        if self.unknown_price == "error":
            raise UnknownPrice(model, provider)
        self._warn_unknown(model, provider, session)

    def _warn_unknown(self, model: str, provider: str | None, session: Session) -> None:
        key = (model, provider)
        if key in self._unknown_models:
            return
        with self._lock:
            if key in self._unknown_models:
                return
            self._unknown_models.add(key)
        self._emit(self._event(
            "unknown_price",
            f"No price is known for model {model!r}; its calls are sent and their tokens and calls are "
            f"enforced, but their USD cost is not counted. Add Breaker(prices={{{model!r}: {{'input': ..., "
            f"'output': ...}}}}).",
            session, data={"model": model, "provider": provider},
        ))

    def _record(
        self, session: Session, model: str, provider: str | None, usage: Usage | None, cost: int | None,
        now: float, outcome: str, degraded: bool,
    ) -> CallRecord:
        u = usage or Usage(requests=1)
        return CallRecord(
            now, session.id, session.feature, session.user, model, provider, u.input_tokens, u.output_tokens,
            u.cache_read_tokens, u.cache_write_tokens, u.reasoning_tokens, cost, outcome, degraded,
            session._state.tripped.reason if session._state.tripped else None, dict(session.tags),
        )

    def _once(self, key: tuple[Any, ...]) -> bool:
        with self._lock:
            if key in self._fired:
                return False
            self._fired[key] = None
            if len(self._fired) > 100_000:
                self._fired.popitem(last=False)
            return True

    def _event(self, kind: str, message: str, session: Session, **kw: Any) -> Event:
        return Event(kind, message, session=session.id, feature=session.feature, user=session.user,
                     at=self._clock(), **kw)

    def _budget_event(self, kind: str, message: str, session: Session, line: _Line, settled: int) -> Event:
        usd = line.metric == USD
        return self._event(
            kind, message, session, scope=line.per, key=line.key,
            spent_usd=settled / NANO if usd else None, limit_usd=line.limit / NANO if usd else None,
            fraction=settled / line.limit,
            data={"metric": METRICS[line.metric], "spent": settled, "limit": line.limit,
                  "window": line.budget.window_s or None, "on_exceed": line.budget.on_exceed},
        )

    def _emit(self, event: Event) -> None:
        for sink in self.alerts:
            try:
                sink(event)
            except Exception:  # a failing sink never breaks the agent or another sink
                log.exception("alert sink %r failed on a %s event", sink, event.kind)
        try:
            self.telemetry.event(self._inflight.get(), event)
        except Exception:
            log.exception("telemetry failed on a %s event", event.kind)


_NO_PATCH = Patch()


def _edge(metric: int, amount: int) -> float:
    """An integer amount as shown at the edges (USD for money)."""
    return amount / NANO if metric == USD else float(amount)


def _again(trip: Tripped) -> Tripped:
    """A fresh copy of a sticky trip (re-raising one instance grows its traceback forever)."""
    again = type(trip)(
        trip.message, scope=trip.scope, key=trip.key, reason=trip.reason, metric=trip.metric,
        spent=trip.spent, limit=trip.limit, session=trip.session, sticky=trip.sticky,
    )
    return again
