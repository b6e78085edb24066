"""Runaway-loop detection, per session: one small module per signal, like tenacity's ``stop.py``.

Where each piece lives:

- ``base``: ``Detection`` (a verdict), ``LoopState`` (one session's bounded
  memory), the ``Detector`` base class and ``Detectors``, what its ``|``
  builds (several detectors run as one, the most severe verdict winning),
  plain functions as detectors (``as_detector``), and the argument checks and
  window parsing the detectors share.
- one module per detector: ``identical`` (``IdenticalRequests``),
  ``error_storm`` (``ErrorStorm``), ``no_backoff`` (``NoBackoff``),
  ``tool_thrash`` (``ToolThrash``), ``step_cap`` (``StepCap``),
  ``context_growth`` (``ContextGrowth``), ``spend_spike`` (``SpendSpike``).
- ``policy``: ``LoopPolicy``, the default detectors and their thresholds, and
  the entry points the engine calls.

``__all__`` is what it was when this was one module; ``ACTIONS``, ``CheckFn``,
``DetectorLike`` and ``as_detector`` stay importable from here too.
"""

from __future__ import annotations

from .base import ACTIONS, CheckFn, Detection, Detector, DetectorLike, Detectors, LoopState, as_detector
from .context_growth import ContextGrowth
from .error_storm import ErrorStorm
from .identical import IdenticalRequests
from .no_backoff import NoBackoff
from .policy import LoopPolicy
from .spend_spike import SpendSpike
from .step_cap import StepCap
from .tool_thrash import ToolThrash

__all__ = [
    "ContextGrowth",
    "Detection",
    "Detector",
    "Detectors",
    "ErrorStorm",
    "IdenticalRequests",
    "LoopPolicy",
    "LoopState",
    "NoBackoff",
    "SpendSpike",
    "StepCap",
    "ToolThrash",
]
