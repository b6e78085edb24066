"""Alert sinks: anything callable with an ``Event`` is a sink.

``Log`` (the default) writes to the ``breaker`` logger; ``Callback`` wraps a
function; ``Webhook`` posts JSON or Slack messages off the calling thread.
A failing sink never breaks the agent or another sink: the engine catches
and logs what a sink raises.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from ..events import Event
from ..redact import scrub

__all__ = ["Callback", "Log", "Sink", "Webhook"]

Sink = Callable[[Event], Any]

_LEVELS = {
    "tripped": logging.ERROR,
    "loop": logging.WARNING,
    "ledger_error": logging.ERROR,
    "unknown_price": logging.WARNING,
    "threshold": logging.WARNING,
    "degraded": logging.WARNING,
    "session_end": logging.INFO,
}


class Log:
    """Write events to a logger (``breaker`` by default), at a level by kind."""

    def __init__(self, logger: str | logging.Logger = "breaker", *, session_end: bool = True) -> None:
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        self.session_end = session_end

    def __call__(self, event: Event) -> None:
        if event.kind == "session_end" and not self.session_end:
            return
        # scrub: a message quoting a store's URL must not put its password in a log store
        self.logger.log(_LEVELS.get(event.kind, logging.WARNING), "%s: %s", event.kind, scrub(event.message))


class Callback:
    """Call ``fn(event)``, optionally only for some kinds."""

    def __init__(self, fn: Callable[[Event], Any], *, kinds: tuple[str, ...] | None = None) -> None:
        if not callable(fn):
            from ..errors import ConfigError

            raise ConfigError(f"Callback({fn!r}) needs a function taking an Event")
        self.fn = fn
        self.kinds = kinds

    def __call__(self, event: Event) -> None:
        if self.kinds is None or event.kind in self.kinds:
            self.fn(event)


def __getattr__(name: str) -> Any:
    if name == "Webhook":
        from .webhook import Webhook

        return Webhook
    raise AttributeError(name)
