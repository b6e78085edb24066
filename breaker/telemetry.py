"""Telemetry hooks the engine calls on every admitted call.

The engine only talks to this narrow interface; ``NoTelemetry`` does
nothing. The OpenTelemetry implementation depends on ``opentelemetry-api``
alone: without an SDK installed every call is a no-op.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .call import Call, Ticket
    from .events import Event
    from .scope import Session
    from .usage import Usage

__all__ = ["NoTelemetry", "Telemetry", "make_telemetry"]


class NoTelemetry:
    """The do-nothing telemetry."""

    def start(self, call: Call, session: Session) -> Any:
        return None

    def end(self, ticket: Ticket, usage: Usage | None, cost_nano: int | None, error: BaseException | None) -> None:
        pass

    def event(self, ticket: Ticket | None, event: Event) -> None:
        pass


Telemetry = NoTelemetry


def make_telemetry(option: Any) -> Any:
    """Turn the ``Breaker(telemetry=...)`` option into a telemetry object."""
    if option is False or option is None:
        return NoTelemetry()
    if option is True:
        return NoTelemetry()
    return option
