"""Notification: events to the alert sinks and telemetry, each threshold once.

Every stage that has something to tell people (a threshold crossed, a call
degraded, a trip, a loop, an unknown price, a session's end) builds an
``Event`` here and ``emit``s it. A failing sink never breaks the agent or
another sink. ``once`` is the per-process de-duplication that makes a
threshold fire once per scope key per window and a trip once.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..budgets import METRICS, USD
from ..events import Event
from ..pricing import NANO

if TYPE_CHECKING:
    from ..adapter import Ticket
    from ..session import Session
    from .plan import Line

__all__ = ["Notifier"]

log = logging.getLogger("breaker")

_ONCE_KEYS = 100_000  # de-duplication memory, oldest forgotten first


class Notifier:
    """Builds and delivers events."""

    __slots__ = ("sinks", "telemetry", "clock", "inflight", "_fired", "_unknown", "_lock")

    def __init__(
        self, sinks: Sequence[Callable[[Event], Any]], telemetry: Any, clock: Callable[[], float],
        inflight: Callable[[], Ticket | None],
    ) -> None:
        self.sinks = list(sinks)
        self.telemetry = telemetry
        self.clock = clock
        self.inflight = inflight  # the call being sent, if any: telemetry puts the event on its span
        self._fired: OrderedDict[tuple[Any, ...], None] = OrderedDict()
        self._unknown: set[tuple[str, str | None]] = set()
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        for sink in self.sinks:
            try:
                sink(event)
            except Exception:  # a failing sink never breaks the agent or another sink
                log.exception("alert sink %r failed on a %s event", sink, event.kind)
        try:
            self.telemetry.event(self.inflight(), event)
        except Exception:
            log.exception("telemetry failed on a %s event", event.kind)

    def once(self, key: tuple[Any, ...]) -> bool:
        """True the first time ``key`` is seen (in this process)."""
        with self._lock:
            if key in self._fired:
                return False
            self._fired[key] = None
            if len(self._fired) > _ONCE_KEYS:
                self._fired.popitem(last=False)
            return True

    def event(self, kind: str, message: str, session: Session, **kw: Any) -> Event:
        return Event(kind, message, session=session.id, feature=session.feature, user=session.user,
                     at=self.clock(), **kw)

    def budget_event(self, kind: str, message: str, session: Session, line: Line, settled: int) -> Event:
        usd = line.metric == USD
        return self.event(
            kind, message, session, scope=line.per, key=line.key,
            spent_usd=settled / NANO if usd else None, limit_usd=line.limit / NANO if usd else None,
            fraction=settled / line.limit,
            data={"metric": METRICS[line.metric], "spent": settled, "limit": line.limit,
                  "window": line.window or None, "on_exceed": line.budget.on_exceed},
        )

    def unknown_price(self, model: str, provider: str | None, session: Session) -> None:
        """One ``unknown_price`` event per (model, provider)."""
        key = (model, provider)
        if key in self._unknown:
            return
        with self._lock:
            if key in self._unknown:
                return
            self._unknown.add(key)
        self.emit(self.event(
            "unknown_price",
            f"No price is known for model {model!r}; its calls are sent and their tokens and calls are "
            f"enforced, but their USD cost is not counted. Add Breaker(prices={{{model!r}: {{'input': ..., "
            f"'output': ...}}}}).",
            session, data={"model": model, "provider": provider},
        ))
