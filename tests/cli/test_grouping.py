"""The aggregation behind ``breaker report``, on records a real guard kept in a Memory ledger."""

from __future__ import annotations

from breaker.cli.report import group_records, trip_reason
from breaker.ledgers import Memory
from breaker.ledgers.base import CallRecord
from tests.cli.history import populate


def test_groups_sum_to_the_totals_for_every_grouping():
    ledger = Memory(keep_records=1000, idle_ttl="30d")
    truth = populate(ledger)
    records, outcomes = ledger.records(), ledger.outcomes()
    for by in ("session", "feature", "user", "model"):
        groups = group_records(records, outcomes, by)
        assert sum(g.cost_nano for g in groups) == truth.total
        assert sum(g.calls for g in groups) == len(records)
        assert [g.cost_nano for g in groups] == sorted((g.cost_nano for g in groups), reverse=True)
    by_model = group_records(records, outcomes, "model")
    assert all(not g.outcomes for g in by_model)  # outcomes belong to sessions, not models
    by_user = {g.key: g for g in group_records(records, outcomes, "user")}
    assert by_user["(none)"].outcomes == {"resolved": 1}  # a session without a user still gets its outcome


def test_a_tripped_session_counts_once_whatever_its_records_say():
    def rec(session: str, **kw) -> CallRecord:
        return CallRecord(1.0, session, "support", "acme", "gpt-4o-mini", "openai", 10, 5, cost_nano=100, **kw)

    records = [rec("a"), rec("a", tripped="budget"), rec("a", tripped="budget"), rec("b", outcome="refused"), rec("c")]
    (group,) = group_records(records, [], "feature")
    assert group.tripped == {"a": "budget", "b": "refused"} and group.row()["trips"] == 2
    assert group.calls == 4 and group.cost_nano == 400  # the refused call was never sent
    assert trip_reason(rec("c")) is None
