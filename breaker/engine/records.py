"""The ledger's history row for one call (``CallRecord``): attribution and figures, never text."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..ledgers.base import CallRecord
from ..usage import Usage

if TYPE_CHECKING:
    from ..session import Session

__all__ = ["call_record"]

_ONE_REQUEST = Usage(requests=1)


def call_record(
    session: Session, model: str, provider: str | None, usage: Usage | None, cost: int | None,
    now: float, outcome: str, degraded: bool, price_variant: str | None = None,
) -> CallRecord:
    u = usage or _ONE_REQUEST
    tripped = session.state.tripped
    return CallRecord(
        now, session.id, session.feature, session.user, model, provider, u.input_tokens, u.output_tokens,
        u.cache_read_tokens, u.cache_write_tokens, u.reasoning_tokens, cost, outcome, degraded,
        tripped.reason if tripped else None, dict(session.tags), price_variant,
    )
