"""The engine: money and budgets, by stage (see ``docs/architecture.md``).

``guard``       the ``Breaker`` object: wires the stages, the public methods
``config``      constructor arguments checked, with the fix in each message
``plan``        budgets → ledger counters and limits, per session
``sessions``    the in-process session registry and session figures
``admission``   loop checks and the atomic worst-case reservation
``settlement``  exact cost, thresholds, degrade marks, loop outcomes
``trips``       stops and degrades: messages, ledger markers, events
``notify``      events to alert sinks and telemetry, once where they must be
``offload``     blocking ledger round trips off the event loop
``records``     the ledger's history row of a call
"""

from __future__ import annotations

from .admission import DEFAULT_OUTPUT_BOUND
from .guard import Breaker, Spend

__all__ = ["DEFAULT_OUTPUT_BOUND", "Breaker", "Spend"]
