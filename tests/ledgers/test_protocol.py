"""What the engine asks every ledger, instead of asking which class it is: ``blocking``,
``sweep``, ``add_outcome``, ``records``, ``wants_records``, ``close`` exist on Memory, SQLite,
Redis and the ``Resilient`` wrapper, which answers for the store it wraps."""

from __future__ import annotations

import time

from breaker.ledgers import Memory
from breaker.ledgers import resilient as resilient_module
from breaker.ledgers.base import Ask, Counter, Hold, Ledger, LedgerBase, LedgerUnavailable, Limit, new_id
from breaker.ledgers.resilient import Resilient

T0 = 1_800_000_000.0


def spend(ledger: Ledger, counter: Counter, usd: int, now: float) -> None:
    g = ledger.reserve(Ask((counter,), (Limit(0, 0, 10**9),), (usd, 0, 1), (0, 0, 0), 1, 1), now)
    assert g.status == "ok"
    ledger.settle(g.handle, (counter,), (), (usd, 0, 1), now)


def test_every_ledger_answers_the_protocol(make_ledger, tmp_path):
    ledger = make_ledger()
    try:
        assert isinstance(ledger, Ledger) and isinstance(ledger, LedgerBase)
        assert ledger.blocking is (not isinstance(ledger, Memory))  # SQLite and Redis: one round trip per call
        spend(ledger, Counter("session:a"), 5, T0)
        ledger.add_outcome("a", None, None, "resolved", T0)
        list(ledger.records())
        assert isinstance(ledger.wants_records, bool)
        ledger.sweep(T0 + 1)  # SQLite, Redis: nothing to do; Memory: "session:a" is not idle yet
        assert ledger.read([Counter("session:a")], T0 + 1)[0].settled == (5, 0, 1)
    finally:
        ledger.close()


def test_persistent_sweep_keeps_lifetime_spend(make_ledger):
    ledger = make_ledger()
    try:
        spend(ledger, Counter("session:a"), 5, T0)
        ledger.sweep(T0 + 10**7)
        expected = (0, 0, 0) if isinstance(ledger, Memory) else (5, 0, 1)  # Memory forgets idle counters
        assert ledger.read([Counter("session:a")], T0 + 10**7)[0].settled == expected
    finally:
        ledger.close()


def test_memory_sweep_forgets_idle_counters_only():
    ledger = Memory(idle_ttl=60)
    spend(ledger, Counter("session:idle"), 1, T0)
    spend(ledger, Counter("session:busy"), 1, T0 + 50)
    ledger.sweep(T0 + 61)
    assert len(ledger) == 1
    assert ledger.read([Counter("session:busy")], T0 + 61)[0].settled == (1, 0, 1)


class _Store(LedgerBase):
    """A user's store with the four required methods and ``sweep``: LedgerBase gives it the rest."""

    def __init__(self) -> None:
        self.inner = Memory()
        self.swept: list[float] = []

    def reserve(self, ask, now, *, hold_id=None):
        return self.inner.reserve(ask, now)

    def settle(self, handle, counters, limits, actual, now, record=None, *, op=None):
        return self.inner.settle(handle, counters, limits, actual, now, record)

    def trip(self, counter, metric, needed, now):
        self.inner.trip(counter, metric, needed, now)

    def read(self, counters, now):
        return self.inner.read(counters, now)

    def sweep(self, now):
        self.swept.append(now)


def test_ledger_base_defaults():
    store = _Store()
    assert isinstance(store, Ledger)
    assert store.blocking is True and store.wants_records is False  # unknown store: kept off the event loop
    assert list(store.records()) == []
    store.add_outcome("s", None, None, "resolved", T0)
    store.close()


class _JournaledStore(_Store):
    """``journal_ops``: ``settle`` and ``add_outcome`` take the idempotency id ``op=`` (see resilient.py)."""

    journal_ops = True

    def add_outcome(self, session, feature, user, name, now, *, op=None):
        self.inner.add_outcome(session, feature, user, name, now)


def test_resilient_forwards_to_what_it_wraps(tmp_path):
    store = _JournaledStore()
    wrapped = Resilient(store, journal=tmp_path / "j.sqlite")
    assert isinstance(wrapped, Ledger)
    assert wrapped.blocking is True and wrapped.wants_records is False
    wrapped.sweep(T0)
    assert store.swept == [T0]
    assert list(wrapped.records()) == []
    wrapped.add_outcome("s", None, None, "resolved", T0)
    assert [o[1:] for o in store.inner.outcomes()] == [("s", None, None, "resolved")]
    wrapped.close()

    memory_backed = Resilient(Memory(keep_records=10), journal=tmp_path / "k.sqlite")
    assert memory_backed.blocking is False and memory_backed.wants_records is True


def test_shared_types_live_in_base_and_stay_importable_from_resilient():
    assert resilient_module.Hold is Hold and resilient_module.LedgerUnavailable is LedgerUnavailable
    assert resilient_module.new_id is new_id
    assert len(new_id()) == 32 and new_id() != new_id()
    first = new_id()
    time.sleep(0.002)
    assert first < new_id()  # time-ordered: a SQLite ledger's ops B-tree takes each new id on its last page
    assert LedgerUnavailable("x").maybe_applied is True
    assert Hold("h", None).amount is None


def test_a_user_ledger_without_sweep_behind_resilient(tmp_path):
    class Old:  # written before Ledger.sweep existed
        journal_ops = True

    wrapped = Resilient(Old(), journal=tmp_path / "j.sqlite")
    wrapped.sweep(T0)  # nothing to forward to: nothing happens
    assert wrapped.blocking is True
