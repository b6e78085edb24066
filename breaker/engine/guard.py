"""``Breaker``: the user's object, wiring the engine's stages together.

Each stage is its own module and receives what it needs explicitly:
``config`` checks the arguments, ``plan`` turns budgets into ledger counters,
``sessions`` keeps per-session state, ``admission`` and ``settlement`` are the
two ends of a call, ``trips`` decides stops and degrades, ``notify`` delivers
events, ``offload`` keeps async callers off a blocking ledger. This class only
builds them and offers the public methods; the provider adapters and plugins
reach it through ``breaker.adapter``'s ``Guard`` protocol.
"""

from __future__ import annotations

import functools
import os
import time
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Mapping, Sequence

from ..adapter import Call, Ticket
from ..budgets import Budget, parse_window
from ..degrade import Degrade
from ..errors import BudgetExceeded, ConfigError
from ..ledgers.base import Counter, GrantRecord, Ledger
from ..loops import LoopPolicy
from ..pricing import NANO, PriceBook
from ..session import Session, SessionScope
from ..telemetry import make_telemetry
from ..usage import Usage
from .admission import Admission
from .config import DEFAULT, check_degrade_targets, configure, route_rule
from .notify import Notifier
from .offload import Offload
from .plan import Plans, counter_key
from .sessions import Sessions
from .settlement import Settlement
from .trips import Stops, raise_if_tripped

__all__ = ["Breaker", "Spend"]


@dataclass(frozen=True, slots=True)
class Spend:
    """Totals read from the ledger."""

    usd: float
    tokens: int
    calls: int


class _Sending:
    """``with guard.sending(ticket):`` marks ``ticket``'s request in flight in this context."""

    __slots__ = ("var", "ticket", "token")

    def __init__(self, var: ContextVar[Ticket | None], ticket: Ticket) -> None:
        self.var = var
        self.ticket = ticket
        self.token: Token[Ticket | None] | None = None

    def __enter__(self) -> Ticket:
        self.token = self.var.set(self.ticket)
        return self.ticket

    def __exit__(self, *exc: Any) -> None:
        self.var.reset(self.token)  # type: ignore[arg-type]


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
        stream_usage: ``True`` adds ``stream_options={"include_usage": true}`` to OpenAI
            chat streams that lack it (and hides the bare usage chunk that adds), so a
            stream is billed what the provider counted; ``False`` sends streams exactly
            as written and bills one without usage by what arrived (an upper bound:
            the text's bytes, at most the reserved output, and the input bound).
        input_estimate: ``"strict"`` bounds a request's input by its UTF-8
            bytes (no tokenizer yields more tokens than bytes), which makes
            overshoot impossible; ``"loose"`` guesses a quarter of that: it
            refuses fewer calls near the limit but gives up the zero-overshoot
            guarantee.
        route: ``route(call) -> model name or None``, or a list of ``breaker.routing.Route``
            rules: the model to send a request to instead of the one it asks for (``None``:
            as asked). Applied before the budgets (the reservation is for the routed model);
            the ledger records both models. See ``breaker.routing``.
        clock: seconds since the epoch; replaceable for tests and simulations.
    """

    def __init__(
        self,
        budgets: Sequence[Budget] = (),
        loops: LoopPolicy | None = DEFAULT,
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
        stream_usage: bool = True,
        route: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        settings = configure(
            budgets=budgets, loops=loops, degrade=degrade, alerts=alerts, ledger=ledger,
            unknown_price=unknown_price, on_ledger_error=on_ledger_error, input_estimate=input_estimate,
            min_output_tokens=min_output_tokens, reservation_wait=reservation_wait, session_ttl=session_ttl,
            stream_usage=stream_usage,
        )
        self.budgets = settings.budgets
        self.loops = settings.loops
        self.degrade = settings.degrade
        self.alerts = settings.alerts
        self.unknown_price = settings.unknown_price
        self.on_ledger_error = settings.on_ledger_error
        self.min_output_tokens = settings.min_output_tokens
        self.input_estimate = settings.input_estimate
        self.stream_usage = settings.stream_usage
        self.reservation_wait = settings.reservation_wait
        self.session_ttl = settings.session_ttl
        self.prices = PriceBook(prices)
        check_degrade_targets(settings.degrade, self.prices, settings.unknown_price)  # a typo'd target: now
        self.route = route_rule(route, self.prices, settings.unknown_price)
        self.telemetry = make_telemetry(telemetry)
        self.clock = clock
        self._inflight: ContextVar[Ticket | None] = ContextVar(f"breaker_inflight_{id(self):x}", default=None)
        self._instrumented = False

        self._notifier = Notifier(settings.alerts, self.telemetry, clock, self._inflight.get)
        # A shared ledger (SQLite, Redis) survives outages: a journal and a once-per-outage event.
        from ..ledgers.resilient import resilient

        self.ledger = resilient(settings.ledger, mode=settings.on_ledger_error, on_event=self._notifier.emit,
                                clock=clock)  # the clock: reservations of live calls are renewed on it
        offload = Offload(self.ledger.blocking)
        self._plans = plans = Plans(settings.budgets, settings.session_ttl, clock)
        degrading = settings.degrade is not None
        stops = Stops(self.ledger, plans, self._notifier, degrading)
        self._stops = stops
        self._sessions = Sessions(settings.loops, self.ledger, plans, self._notifier, clock,
                                  settings.session_ttl, f"{id(self):x}")
        common = dict(ledger=self.ledger, prices=self.prices, plans=plans, stops=stops, notifier=self._notifier,
                      offload=offload, telemetry=self.telemetry, clock=clock, loops=settings.loops,
                      unknown_price=settings.unknown_price)
        self._settlement = Settlement(degrading=degrading, **common)  # type: ignore[arg-type]
        self._admission = Admission(
            degrade=settings.degrade, min_output_tokens=settings.min_output_tokens,
            reservation_wait=settings.reservation_wait, release=self.release, sessions=self._sessions,
            route=self.route, **common,  # type: ignore[arg-type]
        )
        self._hot_path()

    def _hot_path(self) -> None:
        """Every call goes through ``inflight``, ``admit`` and ``settle``: bind them straight to
        the stage that does the work, so a call pays no facade layer (a Python frame each).

        The methods below stay the documented API (and what a subclass overrides: an
        overridden one is left in place).
        """
        cls = type(self)
        direct = {"inflight": self._inflight.get, "sending": functools.partial(_Sending, self._inflight),
                  "current_session": self._sessions.now,
                  "admit": self._admission.admit,
                  "admit_async": self._admission.admit_async, "settle": self._settlement.settle,
                  "settle_async": self._settlement.settle_async}
        for name, fn in direct.items():
            if getattr(cls, name) is getattr(Breaker, name):
                self.__dict__[name] = fn

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None, **overrides: Any) -> Breaker:
        """A Breaker from a TOML file whose keys are this constructor's arguments.

        With no ``path``, the file ``$BREAKER_CONFIG`` names. ``ledger = "memory" |
        "sqlite:///abs/path.db" | "redis://host:6379/0"``; ``[[budgets]]``, ``[loops]``,
        ``[degrade]``, ``[prices]`` and ``[[alerts]]`` tables take the parameters of
        ``Budget``, ``LoopPolicy``, ``Degrade``, the price dicts and the alert sinks
        (``type = "log" | "webhook" | "slack"``). Secrets are named, never written:
        ``url_env = "SLACK_WEBHOOK_URL"``, ``ledger_env = "BREAKER_REDIS_URL"``.
        ``overrides`` are arguments given in code (``clock=``, a custom sink): they
        replace the file's. A bad file is a ``ConfigError`` naming the key
        (``budgets[1].usd``), its value and the fix. See ``breaker.configfile``.
        """
        from ..configfile import build

        return build(cls, path, overrides)

    # ------------------------------------------------------------------ sessions
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
        return SessionScope(self._sessions, id, feature, user, dict(tags) if tags else None)

    def current_session(self) -> Session:
        """The session calls are attributed to right now (the anonymous one outside any)."""
        return self._sessions.now()

    def sweep(self) -> None:
        """Forget idle state now: closed sessions idle past ``session_ttl`` and, for
        the Memory ledger, counters idle past its ``idle_ttl``. Both also happen on
        their own as new sessions arrive; call this from a timer in a server that
        goes quiet for long stretches."""
        now = self.clock()
        self._sessions.sweep(now)
        self.ledger.sweep(now)

    # ------------------------------------------------------------------ one call
    def admit(self, call: Call, session: Session | None = None) -> Ticket:
        """Admit ``call``: loop checks, then an atomic reservation of its worst case.

        Returns a ``Ticket`` whose ``patch`` the adapter must apply. Raises
        ``LoopDetected`` / ``BudgetExceeded`` (both ``Tripped``) to refuse, or
        ``UnknownPrice`` for a model with no price. Waits (bounded by
        ``reservation_wait``) while only other calls' reservations stand in the way.
        """
        return self._admission.admit(call, session)

    async def admit_async(self, call: Call, session: Session | None = None) -> Ticket:
        """``admit`` for event loops: waits with ``asyncio.sleep``, and a SQLite or Redis ledger's
        round trip runs in a worker thread, so the loop keeps serving other tasks meanwhile."""
        return await self._admission.admit_async(call, session)

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
        return self._settlement.settle(ticket, usage, error=error, tool_calls=tool_calls, sent=sent)

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
        return await self._settlement.settle_async(ticket, usage, error=error, tool_calls=tool_calls, sent=sent)

    def release(self, ticket: Ticket) -> None:
        """Give a reservation back for a call that was never sent."""
        self._settlement.settle(ticket, None, sent=False)

    def sending(self, ticket: Ticket) -> _Sending:
        """``with guard.sending(ticket):`` around sending an admitted request.

        Inside, ``inflight()`` is ``ticket``: a layer below (the SDK patch under a
        framework plugin, the HTTP patch under an SDK method) sees the call is
        admitted already and passes it straight through, so it is counted once.
        """
        return _Sending(self._inflight, ticket)

    def inflight(self) -> Ticket | None:
        """The ticket of the call this context is sending, if any (so nested layers count a call once)."""
        return self._inflight.get()

    def require_unpatched(self, ticket: Ticket, *, layer: str, model_fix: str, cap_fix: str) -> None:
        """For layers that see a request too late to change it (framework hooks and callbacks).

        If admission fitted the call only by patching it (a cheaper model, a
        lower output cap), sending it unchanged could spend more than was
        reserved: the reservation is given back and the call refused with a
        non-sticky ``BudgetExceeded`` that says how to fix it (``model_fix`` /
        ``cap_fix``); a later call that needs no patch goes through. A model chosen by
        ``Breaker(route=...)`` cannot be sent by such a layer either: that call is refused
        with a ``ConfigError`` saying so (the reservation given back, nothing sent).
        """
        patch, call = ticket.patch, ticket.call
        if patch.model is None and patch.max_output_tokens is None:
            return
        if patch.model is not None and not ticket.degraded:  # only a route rule changes the model undegraded
            self.release(ticket)
            raise ConfigError(
                f"Breaker(route=...) sends this call to {patch.model} instead of {call.model}, but {layer} cannot "
                f"change the model, so the call was refused before it was sent. Route where the request can still "
                f"be changed: {model_fix}; or make the rule return None for this call.")
        self.release(ticket)
        if patch.model is not None:
            why = f"the budget asks to degrade {call.model} to {patch.model}, but {layer} cannot change the model; {model_fix}"
        else:
            why = (f"the budget can pay for {patch.max_output_tokens} output tokens but the call may produce "
                   f"{call.max_output_tokens or 'its maximum output of'} tokens, and {layer} cannot lower "
                   f"that; {cap_fix}")
        session = ticket.session
        raise BudgetExceeded(
            f"Session {session.id!r}: the call to {call.model} was refused before it was sent: {why}.",
            scope="session", key=session.id, reason="budget", metric="usd", session=session.id, sticky=False,
        )

    def record(
        self, model: str, usage: Usage, *, provider: str | None = None, session: Session | None = None,
        service_tier: str | None = None, batch: bool = False,
    ) -> float | None:
        """Account for a call made outside the patched clients. Returns its cost in USD.

        Spend that passes a hard limit trips the scope (the next call is
        refused). A model with no price still has its tokens and call counted;
        then ``UnknownPrice`` is raised unless ``unknown_price="warn"``. A named
        ``provider`` is priced there only (no price there is ``UnknownPrice``);
        ``service_tier`` (``"priority"``, ``"flex"``...) and ``batch=True`` (results of
        a batch job) pick genai-prices' price variant for them.
        """
        if not isinstance(usage, Usage):
            raise TypeError(f"record() needs a breaker.Usage, got {type(usage).__name__}")
        context = tuple(
            item for item in (("service_tier", service_tier), ("processing", "batch" if batch else None))
            if item[1] is not None
        )
        return self._settlement.record(
            session or self._sessions.now(), model, usage, provider, context or None  # type: ignore[arg-type]
        )

    # ------------------------------------------------------------------ retries (breaker.retry)
    def raise_if_tripped(self) -> None:
        """Raise (a fresh copy of) the trip of the current session or a parent, if any."""
        raise_if_tripped(self._sessions.now())

    def report_retry(self, error: BaseException | None) -> None:
        """Tell loop detection that the agent retries after ``error`` (a tenacity ``before_sleep``).

        Counts once as a failure for the error-storm and no-backoff signals; a
        detection whose action is kill raises its trip here.
        """
        session = self._sessions.now()
        if self.loops is None or session.anonymous:
            return
        now = self.clock()
        found = self.loops.retried(session.state.loops, error, now)
        if found is not None:
            self._stops.loop(found, session, None, now)

    def grant(
        self, usd: float | int | str | None = None, tokens: int | None = None, calls: int | None = None, *,
        per: str = "session", key: str | None = None, by: str | None = None,
    ) -> GrantRecord:
        """An operator's grant: ``usd`` / ``tokens`` / ``calls`` more headroom for one scope, its trip lifted.

        Written to the ledger, so every process sharing it sees the grant at its next call:
        the limits of the scope's lifetime budgets and of its calendar-period budgets (for the
        current period) are raised by the amount (kept as granted amounts beside the spend,
        which reports still show in full); its trip markers are lifted; rolling windows are
        left to free by themselves. Logged with ``by`` (default: the login name) and the time;
        ``breaker report`` shows grants, ``breaker grant`` does the same from a shell.
        """
        return self._stops.grant(usd, tokens, calls, per=per, key=key, by=by, now=self.clock(),
                                 state_of=self._sessions.state_for)

    # ------------------------------------------------------------------ figures
    def spent(self, per: str = "session", key: str | None = None, *, window: str | timedelta | None = None) -> Spend:
        """Totals from the ledger for one scope key (``per="global"`` needs no key).

        ``window`` reads a rolling counter, which exists only for windows some budget uses.
        """
        if per != "global" and key is None:
            raise ConfigError(f"spent(per={per!r}) needs key=..., e.g. spent(per='user', key='acme')")
        totals = self.ledger.read([Counter(counter_key(per, key), parse_window(window))], self.clock())[0]
        usd, tokens, calls = totals.settled
        return Spend(usd / NANO, tokens, calls)

    # ------------------------------------------------------------------ instrumentation
    @property
    def instrumented(self) -> bool:
        """Whether this guard patched the installed SDKs (``instrument()``)."""
        return self._instrumented

    def instrument(self) -> Breaker:
        """Patch the installed OpenAI and Anthropic SDKs (idempotent; SDKs not installed are skipped)."""
        from ..providers.patching import instrument

        instrument(self)
        self._instrumented = True
        return self

    def uninstrument(self) -> None:
        """Restore the SDKs' original methods."""
        from ..providers.patching import uninstrument

        if uninstrument(self):
            self._instrumented = False

    def wrap(self, client: Any, *, provider: str | None = None) -> Any:
        """Instrument one client object (sync or async) and return it.

        ``provider`` names whose prices apply (``"groq"``, ``"together"``, ``"azure"``...):
        its calls are priced there and never at another provider's price. Without it, the
        client's ``base_url`` host names the provider where genai-prices knows the host.
        """
        from ..providers.patching import wrap

        return wrap(self, client, provider)
