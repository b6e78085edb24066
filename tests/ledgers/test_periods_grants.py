"""Calendar periods and operator grants on every ledger (Memory, SQLite, Redis), with real calls through
the OpenAI SDK against FakeLLM and the guard's clock set by the test (``clock=``).

A monthly budget resets at 00:00 on the first in its zone (New York, across a DST change: not at
midnight UTC, not at a fixed offset), and a trip ends with its period. A grant adds exactly its amount
of headroom to one scope, lifts its trip in every process sharing the ledger, leaves the reported spend
whole, and is logged. What was refused is counted where it would have arrived: ``fake.count``.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from breaker import Breaker, Budget, BudgetExceeded, ConfigError, Tripped
from breaker.ledgers import Memory
from breaker.ledgers.redis import Redis
from breaker.ledgers.sqlite import SQLite
from breaker.pricing import NANO
from breaker.testing import Reply
from tests.conftest import Clock
from tests.ledgers.conftest import MODEL, PRICE, SERVED, ask

NY = ZoneInfo("America/New_York")
UTC = ZoneInfo("UTC")


def at(*args: int, tz: ZoneInfo = NY) -> float:
    return datetime(*args, tzinfo=tz).timestamp()


def guard_on(ledger, clock, *budgets: Budget) -> Breaker:
    return Breaker(budgets=list(budgets), ledger=ledger, alerts=[], loops=None, telemetry=False, clock=clock,
                   reservation_wait=0.2)


def twin(ledger):
    """Another handle on the same store, as another process opens it."""
    if isinstance(ledger, Memory):
        return ledger
    if isinstance(ledger, SQLite):
        return SQLite(ledger.path)
    assert isinstance(ledger, Redis)
    return Redis(ledger.client, prefix=ledger.prefix)


def served_fake(fake):
    fake.default = Reply(text=" ".join(["word"] * SERVED.output_tokens), input_tokens=SERVED.input_tokens,
                         output_tokens=SERVED.output_tokens)
    return fake


def send(guard, fake, session: str, *, feature: str = "reports", most: int = 40) -> tuple[int, BudgetExceeded | None]:
    """Calls in ``session`` until one is refused (or ``most``): how many reached the fake, and the refusal."""
    client = guard.wrap(fake.openai(max_retries=0))
    before = fake.count
    with guard.session(session, feature=feature):
        for i in range(most):
            try:
                ask(client, f"{session}-{i}")
            except BudgetExceeded as trip:
                return fake.count - before, trip
    return fake.count - before, None


def test_a_monthly_budget_resets_at_midnight_on_the_first_in_its_zone(make_ledger, fake):
    ledger = make_ledger()
    clock = Clock(at(2026, 10, 31, 19))  # 23:00 UTC: midnight UTC is an hour away, New York's five
    guard = guard_on(ledger, clock, Budget(calls=3, per="feature", period="month", tz="America/New_York"))
    try:
        assert send(guard, fake, "oct-a")[0] == 3
        sent, trip = send(guard, fake, "oct-b")
        assert sent == 0 and trip is not None and trip.scope == "feature" and trip.key == "reports"
        assert "until its month ends, at 2026-11-01 00:00 America/New_York" in str(trip)
        for now in (at(2026, 11, 1, tz=UTC), at(2026, 11, 1) - 1):  # midnight UTC; a second before New York's
            clock.now = now
            assert send(guard, fake, f"late-{now}")[0] == 0
        clock.now = at(2026, 11, 1)  # 04:00 UTC (EDT): the November period, new counters
        assert send(guard, fake, "nov-a")[0] == 3
        assert send(guard, fake, "nov-b")[0] == 0
        # across the DST change (EDT -> EST on Nov 1): December starts at 05:00 UTC, not 04:00; and a
        # month's counter is kept however long it sits idle (Memory forgets other idle counters after a day)
        clock.now = at(2026, 12, 1, 4, tz=UTC)
        assert send(guard, fake, "dec-early")[0] == 0
        clock.now = at(2026, 12, 1)
        assert datetime.fromtimestamp(clock.now, UTC).hour == 5
        assert send(guard, fake, "dec-a")[0] == 3
        assert fake.count == 9
        if not isinstance(ledger, Memory):  # (Memory forgets a whole-life counter idle for a day)
            assert guard.spent("feature", "reports").calls == 9  # the whole-life figure counts every period
    finally:
        guard.ledger.close()


def test_a_trip_ends_with_its_period_even_a_sessions(make_ledger, fake):
    """A weekly per-session budget: the tripped session goes on the next Monday at 00:00 in its zone, in
    the same process (the trip is not kept past its period) and through the same ledger."""
    ledger = make_ledger()
    clock = Clock(at(2026, 11, 8, 23, 30))  # Sunday night in New York
    guard = guard_on(ledger, clock, Budget(calls=2, period="week", tz="America/New_York"))
    try:
        assert send(guard, fake, "agent")[0] == 2
        sent, trip = send(guard, fake, "agent")
        assert sent == 0 and trip is not None and "until its week ends, at 2026-11-09 00:00" in str(trip)
        marks = guard.ledger.trips(clock())
        assert [m.counter.key for m in marks] == ["session:agent@week:2026-11-02:America/New_York"]
        clock.now = at(2026, 11, 9) - 1
        assert send(guard, fake, "agent")[0] == 0
        clock.now = at(2026, 11, 9)  # Monday 00:00
        assert send(guard, fake, "agent")[0] == 2
        assert fake.count == 4
    finally:
        guard.ledger.close()


def test_a_grant_adds_exactly_its_headroom_lifts_the_trip_and_keeps_the_spend(make_ledger, fake):
    served_fake(fake)
    ledger = make_ledger()
    clock = Clock()
    limit, grant = 500_000, 300_000  # nano-USD: $0.0005, and $0.0003 more
    guard = guard_on(ledger, clock, Budget(usd=limit / NANO))
    try:
        first, trip = send(guard, fake, "ticket-42")
        assert first >= 2 and trip is not None
        with guard.session("ticket-42") as s:
            assert s.tripped is not None
        assert send(guard, fake, "ticket-42")[0] == 0  # sticky
        record = guard.grant(usd=grant / NANO, key="ticket-42", by="alice")
        assert (record.scope, record.usd_nano, record.by, record.lifted) == ("session:ticket-42", grant, "alice", 1)
        with guard.session("ticket-42") as s:
            assert s.tripped is None  # lifted at once in this process
            assert round(s.remaining_usd * NANO) == limit + grant - first * PRICE  # the grant is headroom
        more, trip = send(guard, fake, "ticket-42")
        assert trip is not None and trip.scope == "session"
        # Exactly the grant's headroom: the calls it lets through cost more than the grant less one call
        # (the first stop was within one call of the limit: the same bound stops the second), and no more
        # than the grant plus what the limit had left.
        assert grant - PRICE < more * PRICE <= grant + (limit - first * PRICE)
        spent = guard.spent("session", "ticket-42")
        assert spent.calls == first + more and round(spent.usd * NANO) == (first + more) * PRICE  # the true spend
        assert limit < round(spent.usd * NANO) <= limit + grant
        assert [(g.scope, g.usd_nano, g.by) for g in guard.ledger.grants()] == [("session:ticket-42", grant, "alice")]
        assert fake.count == first + more
    finally:
        guard.ledger.close()


def test_a_grant_through_the_shared_ledger_lifts_another_processes_trip(make_ledger, fake):
    """Guard A's session is tripped (and kept tripped in A's memory); guard B, on another handle of the same
    store, grants: A's next call goes through without A being told anything."""
    served_fake(fake)
    ledger = make_ledger()
    clock = Clock()
    worker = guard_on(ledger, clock, Budget(calls=2), Budget(usd=10, per="global"))
    operator = guard_on(twin(ledger), clock)  # no budgets of its own: a grant needs only the ledger
    try:
        assert send(worker, fake, "job-7")[0] == 2
        assert send(worker, fake, "job-7")[0] == 0
        marks = operator.ledger.trips(clock())
        assert [(m.counter.key, m.metric, m.settled) for m in marks] == [("session:job-7", 2, 2)]
        assert marks[0].at == clock()
        operator.grant(calls=1, key="job-7")
        assert operator.ledger.trips(clock()) == []
        assert send(worker, fake, "job-7")[0] == 1  # exactly the one granted call
        assert send(worker, fake, "job-7")[0] == 0
        assert fake.count == 3 and worker.spent("session", "job-7").calls == 3
        assert operator.ledger.grants()[0].by  # the login name, or "unknown" where there is none
    finally:
        worker.ledger.close()
        if operator.ledger is not worker.ledger:
            operator.ledger.close()


def test_a_grant_to_a_feature_lifts_its_period_trip_for_that_period_only(make_ledger, fake):
    ledger = make_ledger()
    clock = Clock(at(2026, 11, 20))
    guard = guard_on(ledger, clock, Budget(calls=2, per="feature", period="month", tz="America/New_York"))
    try:
        assert send(guard, fake, "a")[0] == 2
        assert send(guard, fake, "b")[0] == 0
        record = guard.grant(calls=3, per="feature", key="reports")
        assert record.counters == 2 and record.lifted == 1  # the whole-life counter and November's
        assert send(guard, fake, "c")[0] == 3
        clock.now = at(2026, 12, 1)  # December: the grant ended with November
        assert send(guard, fake, "d")[0] == 2
        assert fake.count == 7
    finally:
        guard.ledger.close()


def test_grant_arguments_are_checked():
    guard = Breaker(alerts=[], telemetry=False)
    for kw, needle in ((dict(usd=1), "needs key="), (dict(usd=1, per="global", key="x"), "takes no key"),
                       (dict(key="s"), "needs an amount"), (dict(usd=-1, key="s"), "more than 0"),
                       (dict(usd=1, key="s", per="sesion"), "grant.per='sesion'.*did you mean per='session'"),
                       (dict(usd=1, key="s", by=""), "who grants")):
        with pytest.raises(ConfigError, match=needle):
            guard.grant(**kw)
    assert guard.grant(usd=1, per="global").scope == "global"


def test_a_loop_trip_is_not_lifted_by_a_grant(fake):
    from breaker import LoopPolicy

    guard = Breaker(alerts=[], telemetry=False, loops=LoopPolicy(max_identical=1))
    client = guard.wrap(fake.openai(max_retries=0))
    with guard.session("looping") as s:
        ask(client, "same")
        with pytest.raises(Tripped):
            ask(client, "same")
    guard.grant(calls=5, key="looping")
    with guard.session("looping") as s:
        with pytest.raises(Tripped):
            ask(client, "other")
        assert s.tripped is not None and s.tripped.reason.startswith("loop")
    assert fake.count == 1


def test_a_grant_reaches_exactly_its_scopes_counters(make_ledger):
    """The scope's whole-life and period counters get the headroom, its window's marker is lifted too;
    a scope whose key merely starts the same (or holds glob characters) is not touched."""
    from breaker.ledgers.base import Ask, Counter, Limit

    ledger = make_ledger()
    now = 1_800_000_000.0
    scope = "user:a*[b]?"
    mine = [Counter(scope), Counter(f"{scope}@month:2027-01-01:UTC"), Counter(scope, 3600)]
    others = [Counter(f"{scope}x"), Counter(f"{scope}x@month:2027-01-01:UTC"), Counter("user:a")]
    try:
        for c in mine + others:
            g = ledger.reserve(Ask((c,), (Limit(0, 2, 5),), (0, 0, 1), (0, 0, 0), 1, 1), now)
            ledger.settle(g.handle, (c,), (), (0, 0, 1), now)
            ledger.trip(c, 2, 1, now)
        record = ledger.grant(scope, (0, 0, 3), now, "alice")
        assert (record.counters, record.lifted) == (2, 3)
        assert sorted(m.counter.key for m in ledger.trips(now)) == sorted(c.key for c in others)
        limit = (Limit(0, 2, 1),)  # one call allowed, one already settled: only a grant lets another through
        for c in mine[:2]:
            assert ledger.reserve(Ask((c,), limit, (0, 0, 1), (0, 0, 0), 1, 1), now).status == "ok"
        assert ledger.reserve(Ask((mine[2],), limit, (0, 0, 1), (0, 0, 0), 1, 1), now).status == "over"
        for c in others:
            assert ledger.reserve(Ask((c,), limit, (0, 0, 1), (0, 0, 0), 1, 1), now).status == "tripped"
        totals = ledger.read([mine[0], mine[2], others[0]], now)
        assert [t.settled for t in totals] == [(0, 0, 1)] * 3  # the spend itself is untouched
        assert [t.granted for t in totals] == [(0, 0, 3), (0, 0, 0), (0, 0, 0)]
        assert [(g.scope, g.calls, g.by, g.counters, g.lifted) for g in ledger.grants()] == [(scope, 3, "alice", 2, 3)]
    finally:
        ledger.close()


@pytest.mark.parametrize("mode", ["closed", "open"])
def test_while_the_store_is_down_a_trip_stands_and_a_grant_fails_loudly(own_redis, tmp_path, fake, mode):
    """A tripped session is never let go because the store could not be asked (in either mode); a
    grant that cannot be written says so; once it is written, the trip lifts."""
    from breaker import LedgerError
    from breaker.ledgers.resilient import Resilient

    served_fake(fake)
    ledger = Resilient(Redis(own_redis.url, prefix="down:", timeout=0.5), journal=tmp_path / "j.sqlite",
                       retry_every=0)
    guard = Breaker(budgets=[Budget(calls=1)], ledger=ledger, alerts=[], loops=None, telemetry=False,
                    on_ledger_error=mode, reservation_wait=0.2)
    try:
        assert send(guard, fake, "s")[0] == 1
        assert send(guard, fake, "s")[0] == 0
        own_redis.stop()
        assert send(guard, fake, "s")[0] == 0  # the store cannot say the trip was lifted: it stands
        with pytest.raises(LedgerError, match="The grant to session:s was not recorded"):
            guard.grant(calls=1, key="s")
        own_redis.start()
        Breaker(ledger=Redis(own_redis.url, prefix="down:"), alerts=[], telemetry=False).grant(calls=1, key="s")
        assert send(guard, fake, "s")[0] == 1
        assert fake.count == 2
    finally:
        guard.ledger.close()
