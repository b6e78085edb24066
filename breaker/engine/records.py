"""The ledger's history row for one call (``CallRecord``): attribution and figures, never text.

Besides the figures, a row says how the call went out, for ``breaker report``'s
waste and routing figures: the model asked for when another was sent
(``requested_model``), a content-free fingerprint of the request (``fingerprint``:
the adapter's hash re-hashed with a per-process random salt, so equal requests of
one process match and no one can test a guessed prompt against it), and ``flags``:

* ``routed``: a route rule (``Breaker(route=...)``) chose the model sent;
* ``loop:<signal>``: a loop detector flagged the call before it was sent and its
  action (warn, degrade) let it through;
* ``extends``: the request extends (or repeats) an earlier one of its conversation whose
  input the provider reported, with the same model, system prompt and tools (the estimator
  checks that by content hash, ``ESTIMATOR.bounds``): it re-sent that prefix.

Admission notes the first two on ``Call.attrs`` (``ROUTED``, ``LOOP_FLAG``) as it decides them.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..ledgers.base import CallRecord, storable
from ..usage import Usage

if TYPE_CHECKING:
    from ..adapter import Ticket
    from ..session import Session

__all__ = ["LOOP_FLAG", "ROUTED", "call_record"]

ROUTED = "breaker.routed"  # Call.attrs: the model a route rule sent the call to
LOOP_FLAG = "breaker.loop"  # Call.attrs: the signal of a loop verdict (warn, degrade) the call was sent past

_ONE_REQUEST = Usage(requests=1)
_SALT = int.from_bytes(os.urandom(8), "big")
_MASK = 0xFFFFFFFFFFFFFFFF


def call_record(
    session: Session, model: str, provider: str | None, usage: Usage | None, cost: int | None,
    now: float, outcome: str, degraded: bool, price_variant: str | None = None, ticket: Ticket | None = None,
) -> CallRecord:
    u = usage or _ONE_REQUEST
    tripped = session.state.tripped
    record = CallRecord(
        now, session.id, session.feature, session.user, model, provider, u.input_tokens, u.output_tokens,
        u.cache_read_tokens, u.cache_write_tokens, u.reasoning_tokens, cost, outcome, degraded,
        tripped.reason if tripped else None, dict(session.tags), price_variant,
    )
    if ticket is not None:
        _how_sent(record, ticket)
    return record


def _how_sent(record: CallRecord, ticket: Ticket) -> None:
    call = ticket.call
    if call.model != ticket.model:
        record.requested_model = storable(call.model)
    if call.fingerprint is not None:
        record.fingerprint = format(hash((_SALT, call.fingerprint)) & _MASK, "016x")
    flags = []
    attrs = call.attrs
    if attrs:
        if ROUTED in attrs:
            flags.append("routed")
        signal = attrs.get(LOOP_FLAG)
        if signal:
            flags.append("loop:" + storable(str(signal)).replace(",", ";"))
    patch = ticket.patch
    if (call.input_bytes is not None and call.input_tokens < call.input_bytes
            and patch.keep_last_messages is None and patch.hook is None):  # sent with its history as described
        flags.append("extends")
    if flags:
        record.flags = ",".join(flags)
