"""Admission: the checks before a call is sent, and its atomic reservation.

Order (DESIGN.md): sticky trips, then loop checks, then budgets. The budget
check asks the ledger to reserve the call's worst case on every counter that
applies, atomically, granting as many output tokens as every limit can pay
for (that is how ``max_tokens`` is lowered without a race). A refusal trips
only on *settled* spend: when other calls' in-flight reservations are what
stand in the way, the call waits (bounded by ``reservation_wait``) for them
to settle and asks again.

A route rule (``Breaker(route=...)``, ``breaker.routing``) is asked once per
call, after the loop checks and before the budgets: the reservation is for the
model it names, carried to the adapter as ``Patch(model=...)`` like a degrade.
What settlement records about the call's path (the route, a loop verdict that
let it through) rides on ``Call.attrs`` under ``ROUTED`` and ``LOOP_FLAG``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Iterator

from ..adapter import Call, Patch, Ticket
from ..budgets import CALLS, METRICS, format_amount
from ..errors import BudgetExceeded, ConfigError, LedgerError, UnknownPrice
from ..ledgers.base import Ask, Ledger
from ..limits import max_output_tokens, same_tokenizer
from ..pricing import MAX_NANO, PriceBook
from .notify import Notifier
from .offload import Offload
from .plan import Plan, Plans
from .records import LOOP_FLAG, ROUTED
from .sessions import Sessions
from .trips import Stops, edge, raise_if_tripped

if TYPE_CHECKING:
    from ..degrade import Degrade
    from ..loops import LoopPolicy
    from ..session import Session

__all__ = ["DEFAULT_OUTPUT_BOUND", "NO_PATCH", "Admission"]

DEFAULT_OUTPUT_BOUND = 131_072
"""Worst-case output tokens for a request with no output cap, for a model of unknown maximum output
and unknown context window."""

NO_PATCH = Patch()
"""The patch of a call sent as written (one object, so that settlement can tell by identity)."""
_ZERO = (0, 0, 0)


class Admission:
    """``admit``: loop checks, then the reservation; returns the ``Ticket`` or raises the refusal."""

    def __init__(
        self, *, ledger: Ledger, prices: PriceBook, plans: Plans, stops: Stops, notifier: Notifier,
        offload: Offload, telemetry: Any, clock: Callable[[], float], degrade: Degrade | None,
        loops: LoopPolicy | None, unknown_price: str, min_output_tokens: int, reservation_wait: float,
        release: Callable[[Ticket], None], sessions: Sessions,
        route: Callable[[Call], str | None] | None = None,
    ) -> None:
        self.ledger = ledger
        self.prices = prices
        self.plans = plans
        self.stops = stops
        self.notifier = notifier
        self.offload = offload
        self.telemetry = telemetry
        self.clock = clock
        self.degrade = degrade
        self.loops = loops
        self.unknown_price = unknown_price
        self.min_output_tokens = min_output_tokens
        self.reservation_wait = reservation_wait
        self.release = release  # gives back a ticket granted to a caller that was cancelled meanwhile
        self.route = route
        self.current = sessions.current.get
        self.anonymous = sessions.anonymous

    def admit(self, call: Call, session: Session | None = None) -> Ticket:
        if session is None:
            session = self.current() or self.anonymous()
        now = self.clock()  # read once for the loop checks and the reservation
        force = self.precheck(call, session, now)
        routed = None if self.route is None else self.routed(call)
        ticket = self.step(call, session, force, False, routed, now)
        if ticket is None:
            for delay, final in self.retries():
                time.sleep(delay)
                ticket = self.step(call, session, force, final, routed, self.clock())
                if ticket is not None:
                    break
        return ticket  # type: ignore[return-value]

    async def admit_async(self, call: Call, session: Session | None = None) -> Ticket:
        """``admit`` for event loops: waits with ``asyncio.sleep``, and a blocking ledger's
        round trip runs in a worker thread, so the loop keeps serving other tasks meanwhile."""
        if session is None:
            session = self.current() or self.anonymous()
        now = self.clock()
        force = self.precheck(call, session, now)
        routed = None if self.route is None else self.routed(call)
        ticket = await self._step_async(call, session, force, False, routed, now)
        if ticket is None:
            for delay, final in self.retries():
                await asyncio.sleep(delay)
                ticket = await self._step_async(call, session, force, final, routed, self.clock())
                if ticket is not None:
                    break
        return ticket  # type: ignore[return-value]

    def retries(self) -> Iterator[tuple[float, bool]]:
        """The slow path, when only in-flight reservations stand in the way: ``(seconds to
        wait, final)`` before each new attempt, the last one ``final`` (it refuses rather
        than wait). One schedule for the sync and the async callers."""
        delay = 0.002
        deadline = time.monotonic() + self.reservation_wait
        while True:
            now = time.monotonic()
            if now >= deadline:
                yield 0.0, True
                return
            yield min(delay, deadline - now), False
            delay = min(delay * 2, 0.05)

    async def _step_async(
        self, call: Call, session: Session, force: bool, final: bool, routed: str | None, now: float,
    ) -> Ticket | None:
        if not self.offload.blocking:
            return self.step(call, session, force, final, routed, now)
        return await self.offload.run(  # type: ignore[no-any-return]
            "admit", functools.partial(self.step, call, session, force, final, routed, now), orphan=self.release)

    def precheck(self, call: Call, session: Session, now: float) -> bool:
        """Sticky trips and loop checks (before any budget). Returns whether to force degradation."""
        state = session.state
        if state.tripped is not None or session.ancestors:  # the common case, a live top session, inline
            raise_if_tripped(session)
        if self.loops is None or session.anonymous:  # loop detection is per agent run: sessions only
            return False
        found = self.loops.check(state.loops, call, now)
        if found is not None:
            self.stops.loop(found, session, call, now)
            call.attrs[LOOP_FLAG] = found.signal  # not killed: sent past the verdict (warn, degrade)
        return state.loop_degrade

    def routed(self, call: Call) -> str | None:
        """The model the route rule sends ``call`` to, or ``None`` to send it as requested.

        A rule that raises or answers something other than a model name refuses the call
        (``ConfigError``, nothing sent): a routing bug must not pass for a routing decision.
        """
        try:
            model = self.route(call)  # type: ignore[misc]
        except Exception as e:
            raise ConfigError(
                f"Breaker(route=...) raised {type(e).__name__} for a call to {call.model!r}, so the call was not "
                f"sent: {e}. Fix the rule; it must return a model name, or None to keep the requested model."
            ) from e
        if model is None or model == call.model:
            return None
        if not isinstance(model, str) or not model.strip():
            raise ConfigError(
                f"Breaker(route=...) returned {model!r} for a call to {call.model!r}, so the call was not sent; "
                f"a route returns a model name (str), or None to keep the requested model.")
        call.attrs[ROUTED] = model
        return model

    def patch(self, call: Call, routed: str | None, degraded: bool) -> Patch:
        """What to change in the request: the route's model, and on top of it the degrade
        (whose ``model_map`` is then read for the routed model: the model being sent)."""
        if not degraded:
            return NO_PATCH if routed is None else Patch(routed)
        patch = self.degrade.patch(call)  # type: ignore[union-attr]
        if routed is None:
            return patch
        target = (self.degrade.model_map or {}).get(routed) or routed  # type: ignore[union-attr]
        return Patch(target if target != call.model else None, patch.max_output_tokens, patch.reasoning_effort,
                     patch.keep_last_messages, patch.hook)

    def unpriced(self, model: str, provider: str | None, session: Session) -> None:
        """A call to a model with no price: refuse it (``unknown_price="error"``) or warn once."""
        if self.unknown_price == "error":
            raise UnknownPrice(model, provider, self.prices.why(model, provider))
        self.notifier.unknown_price(model, provider, session)

    def step(
        self, call: Call, session: Session, force_degrade: bool, final: bool, routed: str | None, now: float,
    ) -> Ticket | None:
        """One reservation attempt at ``now``: a ticket, ``None`` (busy: wait and try again) or a refusal."""
        plan = session.plan or self.plans.of(session)
        state = session.state
        degrade = self.degrade
        degraded = (force_degrade or state.degrade_hint) and degrade is not None
        provider = call.provider
        for _attempt in (0, 1):
            if routed is None:
                patch = degrade.patch(call) if degraded else NO_PATCH  # type: ignore[union-attr]
            else:
                patch = self.patch(call, routed, degraded)
            model = patch.model or call.model
            price = self.prices.lookup(model, provider, None, call.price_context, call.strict_provider)
            if price is None:
                self.unpriced(model, provider, session)
            natural = call.max_output_tokens
            if natural is None:  # no cap: the model's own ceiling (limits.py), else its context window
                natural = (max_output_tokens(model) or (price.context_window if price is not None else None)
                           or DEFAULT_OUTPUT_BOUND)
            cap = patch.max_output_tokens
            units_max = natural if cap is None or cap >= natural else cap
            if patch.keep_last_messages is not None and call.trimmed_input is not None:
                # the degraded request drops old messages: reserve what it will send
                call.input_tokens = min(call.input_tokens, call.trimmed_input(patch.keep_last_messages))
            elif patch.model is not None and call.input_bytes is not None and not same_tokenizer(call.model, model):
                # a learned bound holds for the requested model's tokenizer, not another one's
                call.input_tokens = max(call.input_tokens, call.input_bytes)
            input_tokens = call.input_tokens
            if price is not None:
                fixed_usd, per_usd = price.worst_case(input_tokens, call.text_only)
                if call.units:
                    fixed_usd += price.units_cost(call.units)
                if fixed_usd + per_usd * units_max > MAX_NANO:
                    raise BudgetExceeded(
                        f"The worst case of this {model!r} request (input bound {input_tokens:,} tokens, "
                        f"up to {units_max:,} output tokens) is more than a ledger can hold (2^63 nano-USD, "
                        f"about $9.2 billion), so it was not sent. Set max_tokens, or send less input.",
                        scope="request", key=None, reason="too_large", session=session.id, sticky=False,
                    )
            else:
                fixed_usd = per_usd = 0
            fixed = (fixed_usd, input_tokens, 1)
            per_unit = (per_usd, 1, 0)
            units_min = self.min_output_tokens
            ask = Ask(plan.counters, plan.hard, fixed, per_unit, units_max,
                      units_min if units_min < units_max else units_max, not final)
            try:
                grant = self.ledger.reserve(ask, now)
            except LedgerError as e:  # down (on_ledger_error="closed"), misconfigured, or data it cannot hold:
                raise BudgetExceeded(  # refuse before sending, don't trip
                    str(e), scope="ledger", key=None, reason=getattr(e, "reason", "ledger_unavailable"),
                    session=session.id, sticky=False,
                ) from e
            status = grant.status
            if status == "ok":
                if plan.degrading:
                    crossing = _past_degrade_at(plan, grant.settled)
                    if crossing and not degraded and degrade is not None:
                        self.ledger.settle(grant.handle, plan.counters, (), _ZERO, now)
                        self.stops.degraded(session, "budget past degrade_at")
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
                    logging.getLogger("breaker").warning("breaker: %s: a call waited %gs for calls in flight to settle, then was refused without tripping the budget (an unfinished stream still referenced holds its reservation until read to the end or closed)", line.who(), self.reservation_wait)  # noqa: E501
                    raise BudgetExceeded(
                        f"{line.who()}: calls in flight hold {format_amount(line.metric, grant.reserved)} of its "
                        f"budget of {line.budget.describe()} and did not settle within {self.reservation_wait:g}s; "
                        f"this call was refused without tripping the budget.",
                        scope=line.per, key=line.key, reason="busy", metric=METRICS[line.metric],
                        spent=edge(line.metric, grant.settled[grant.blocked]), limit=edge(line.metric, line.limit),
                        session=session.id, sticky=False,
                    )
                return None
            line = plan.hard_lines[grant.blocked]
            if status == "over" and line.budget.on_exceed == "degrade" and not degraded and degrade is not None:
                self.stops.degraded(session, f"{line.who()} cannot pay for the full call")
                degraded = True
                continue
            metric = line.metric
            needed = fixed[metric] + per_unit[metric] * ask.units_min
            already = status == "tripped"
            why = _needs(call, input_tokens, ask.units_min, fixed[metric], per_unit[metric] * ask.units_min, metric)
            trip = self.stops.budget(line, grant.settled[grant.blocked], needed, session, model, already, now, why)
            if not already:
                self.stops.refused(session, model, call.provider, trip, now)
            raise trip
        raise AssertionError("unreachable")  # pragma: no cover


def _past_degrade_at(plan: Plan, settled: tuple[int, ...]) -> bool:
    """Whether a granted call's settled totals reach a hard limit's ``degrade_at``. Apart from
    ``step`` so that its generator makes no closure cell there on every call."""
    return any(l.degrade_at is not None and settled[i] >= l.degrade_at for i, l in enumerate(plan.hard_lines))


def _needs(call: Call, input_tokens: int, output_tokens: int, input_part: int, output_part: int, metric: int) -> str:
    """What a refused call needs at least, and which bound decided, for the kill message."""
    if metric == CALLS:
        return ""
    source = ("the provider's count of the conversation so far plus what was appended"
              if call.input_bytes is not None and input_tokens < call.input_bytes else "its text's bytes")
    decided = "input" if input_part >= output_part else "output"
    return (f": {input_tokens:,} input tokens at most (bounded by {source}), {format_amount(metric, input_part)}, "
            f"and at least {output_tokens:,} output tokens (min_output_tokens), {format_amount(metric, output_part)}; "
            f"the {decided} bound decided")
