"""Settlement: a call's reservation replaced by its exact cost.

``settle`` prices the reported usage in integers, corrects the ledger in one
atomic step, then acts on what the new totals cross: a threshold (an event,
once per scope key per window), ``degrade_at`` (the session is degraded), a
hard limit passed (only possible when a call cost more than it could reserve:
the scope trips so the next call is refused). Loop detectors see the outcome,
and the telemetry span is closed. ``record`` is the same for calls made
outside the patched clients.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..adapter import Outcome, Ticket
from ..budgets import format_amount
from ..errors import UnknownPrice, UsageError
from ..ledgers.base import Ledger
from ..limits import same_tokenizer
from ..pricing import MAX_NANO, NANO, PriceBook
from ..usage import Usage
from .notify import Notifier
from .offload import Offload
from .plan import Plan, Plans
from .admission import NO_PATCH
from .records import call_record
from .trips import Stops

if TYPE_CHECKING:
    from ..loops import LoopPolicy
    from ..session import Session

__all__ = ["Settlement"]

log = logging.getLogger("breaker")


class Settlement:
    def __init__(
        self, *, ledger: Ledger, prices: PriceBook, plans: Plans, stops: Stops, notifier: Notifier,
        offload: Offload, telemetry: Any, clock: Callable[[], float], loops: LoopPolicy | None,
        unknown_price: str, degrading: bool,
    ) -> None:
        self.ledger = ledger
        self.prices = prices
        self.plans = plans
        self.stops = stops
        self.notifier = notifier
        self.offload = offload
        self.telemetry = telemetry
        self.clock = clock
        self.loops = loops
        self.unknown_price = unknown_price
        self.degrading = degrading

    def settle(
        self,
        ticket: Ticket,
        usage: Usage | None = None,
        *,
        error: BaseException | None = None,
        tool_calls: Sequence[tuple[str, str]] = (),
        sent: bool = True,
    ) -> int | None:
        if ticket.settled:
            return None
        ticket.settled = True
        if usage is None and error is not None and not isinstance(error, Exception):
            # abandoned mid-request (cancelled, interrupted): the provider may have read the input
            usage, error = Usage(input_tokens=ticket.call.input_tokens), None
        now = self.clock()
        price = ticket.price
        if ticket.served is not None:  # the response names the tier it was served at
            call = ticket.call
            price = self.prices.lookup(ticket.model, call.provider, None, ticket.served, call.strict_provider) or price
        session = ticket.session
        if usage is not None:
            if price is not None:
                cost = price.cost(usage)
                if cost > MAX_NANO:
                    cost = _held(ticket.model)
            else:
                cost = None
            actual = (cost or 0, usage.input_tokens + usage.output_tokens, 1 if sent else 0)
            call = ticket.call
            if call.learn is not None and sent:
                patch = ticket.patch
                if patch is NO_PATCH or patch.keep_last_messages is None and patch.hook is None and (
                    patch.model is None or same_tokenizer(call.model, patch.model)
                ):  # sent as described (or to a model that counts the same): its report holds
                    try:
                        call.learn(call.fingerprint, usage.input_tokens)
                    except Exception:  # a hint for later bounds: never worth a lost charge
                        log.exception("breaker: learning a request's reported input failed")
        else:
            cost = 0 if price is not None else None
            actual = (0, 0, 1 if sent else 0)
        record = None
        if self.ledger.wants_records and sent:
            record = call_record(session, ticket.model, ticket.call.provider, usage, cost, now,
                                 "error" if error is not None else ("ok" if usage is not None else "error"),
                                 ticket.degraded, price.variant if price is not None else None, ticket)
        settled = self.ledger.settle(ticket.reservation, ticket.counters, ticket.limits, actual, now, record)
        plan = session.plan
        if plan is not None:
            self.crossed(session, plan, settled, now, ticket.model)
        if usage is not None and price is None and sent:
            with session.state.lock:
                session.state.unpriced += 1
        if self.loops is not None and sent and not session.anonymous:
            found = self.loops.observe(
                session.state.loops, ticket.call,
                Outcome(error is None and usage is not None, usage, cost,
                        tool_calls if tool_calls.__class__ is tuple else tuple(tool_calls), error), now,
            )
            if found is not None:
                notifier = self.notifier
                notifier.emit(notifier.event("loop", f"Session {session.id!r}: {found.message}", session,
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
        if not self.offload.blocking:
            return self.settle(ticket, usage, error=error, tool_calls=tool_calls, sent=sent)
        return await self.offload.run(  # type: ignore[no-any-return]
            "settle", functools.partial(self.settle, ticket, usage, error=error, tool_calls=tool_calls, sent=sent)
        )

    def record(
        self, session: Session, model: str, usage: Usage, provider: str | None,
        context: tuple[tuple[str, str], ...] | None = None,
    ) -> float | None:
        plan = self.plans.of(session)
        now = self.clock()
        price = self.prices.lookup(model, provider, None, context, provider is not None)
        cost = price.cost(usage) if price is not None else None
        if cost is not None and cost > MAX_NANO:
            raise UsageError(
                f"record({model!r}, ...): this usage costs more than a ledger can hold (2^63 nano-USD, about "
                f"$9.2 billion); nothing was recorded. Record it in smaller parts."
            )
        actual = (cost or 0, usage.input_tokens + usage.output_tokens, 1)
        record = (call_record(session, model, provider, usage, cost, now, "ok", False, price.variant if price else None)
                  if self.ledger.wants_records else None)
        settled = self.ledger.settle(None, plan.counters, plan.limits, actual, now, record)
        self.crossed(session, plan, settled, now, model)
        if price is None:
            with session.state.lock:
                session.state.unpriced += 1
            if self.unknown_price == "error":
                raise UnknownPrice(model, provider, self.prices.why(model, provider))
            self.notifier.unknown_price(model, provider, session)
            return None
        return cost / NANO  # type: ignore[operator]

    def crossed(self, session: Session, plan: Plan, settled: Sequence[int], now: float, model: str) -> None:
        """Thresholds, ``degrade_at`` and hard limits the new settled totals reach."""
        notifier = self.notifier
        for line in plan.lines:
            s = settled[line.index]
            if s < line.watch:
                continue
            window = line.window
            epoch = int(now // window) if window else 0
            counter = plan.counters[line.counter]
            crossed = _reached(line.warn, s)
            if crossed and notifier.once(("warn", counter.key, window, line.metric, epoch, crossed[-1])):
                fraction = s / line.limit
                notifier.emit(notifier.budget_event(
                    "threshold",
                    f"{line.who()} has spent {fraction:.0%} of its budget of {line.budget.describe()} "
                    f"({format_amount(line.metric, s)}).",
                    session, line, s,
                ))
            if line.degrade_at is not None and s >= line.degrade_at and self.degrading:
                self.stops.degraded(session, f"{line.who()} passed {line.budget.degrade_at:.0%} of its budget")
            if line.hard and s > line.limit:
                # Only possible when a call cost more than its reservation (an
                # unbounded fee, usage the request could not bound): stop the next one.
                self.stops.budget(line, s, 0, session, model, False, now)


def _reached(warn: tuple[tuple[int, float], ...], s: int) -> list[float]:
    """The warn fractions whose thresholds ``s`` reaches. Apart from ``crossed`` so that the
    comprehension makes no closure cell there on every call (most return before reaching it)."""
    return [f for t, f in warn if s >= t]


def _held(model: str) -> int:
    """The most a ledger holds, for a cost past it (the caller checks): a sent call's charge is
    recorded, never dropped for being too large (admission refuses requests whose worst case is larger)."""
    log.error("breaker: a %r call cost more than a ledger holds (2^63 nano-USD); recorded as that maximum", model)
    return MAX_NANO
