"""Content-free fingerprints of the tool calls a model asked for.

The loop detector counts repeats of ``(tool name, arguments fingerprint)``;
it must see the same fingerprint for the same arguments however the model
spaced or ordered its JSON, and never the arguments themselves.
"""

from __future__ import annotations

import json
from typing import Any

from ..estimate import measure

__all__ = ["args_fingerprint"]


def args_fingerprint(arguments: Any) -> str:
    """A short hex digest of tool-call arguments (a JSON string or an already-parsed value)."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            return format(hash(arguments) & 0xFFFFFFFFFFFFFFFF, "016x")
    return format(hash(measure(arguments)[2]) & 0xFFFFFFFFFFFFFFFF, "016x")
