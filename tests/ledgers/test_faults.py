"""Store faults (issue 19): every failure of SQLite and Redis classified, no settlement lost.

Each fault is a real one: a real redis-server that runs out of memory, loses its data, is
given a wrong password or an eviction policy; a real SQLite file that is garbage or gets
corrupted; real provider calls through the real SDK against FakeLLM, whose reply breaks the
store *while the call is being served*. Checked every time: the caller gets the served
response, the settlement is journaled and replayed exactly once (spend equals what was
served, to the nano-dollar), no reservation is left behind, and calls the store cannot
vouch for are refused before they reach the provider (``fake.count``).
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import uuid

import pytest
import redis

from breaker import Breaker, Budget, ConfigError, LedgerError, SessionKilled
from breaker.adapter import Call
from breaker.ledgers.base import Ask, Counter, LedgerMisconfigured, Limit
from breaker.ledgers.redis import MAX_EXACT, Redis
from breaker.ledgers.sqlite import MAX_INT, SQLite
from breaker.pricing import NANO
from tests.ledgers.conftest import PRICE, SERVED, ask, guard_on, journaled, served

CALL = Call("gpt-4o-mini", "openai", input_tokens=1000, max_output_tokens=200)
T0 = 1_800_000_000.0


def nano(usd: float) -> int:
    return round(usd * NANO)


def serve_during(guard, fake, fault, tag):
    """One call through the real SDK whose store breaks while the provider serves it: it must return."""
    fake.push(served(fault))
    client = guard.wrap(fake.openai(max_retries=0))
    with guard.session(tag):
        response = ask(client, tag)
    assert response.choices[0].message.content.split()[0] == "word"  # the caller got what was served
    assert response.usage.prompt_tokens == SERVED.input_tokens
    return client


def refused(guard, client, tag, reason):
    with pytest.raises(SessionKilled) as info:
        with guard.session(tag):
            ask(client, tag)
    assert info.value.reason == reason
    return str(info.value)


def errors(events: list) -> list:
    return [e for e in events if e.kind == "ledger_error"]


def settled_clean(guard) -> tuple[int, tuple[int, int, int]]:
    totals = guard.ledger.read([Counter("global")], guard.clock())[0]
    return totals.settled[0], totals.reserved


# ------------------------------------------------------------------ Redis: unavailable
def test_redis_out_of_memory_is_an_outage_and_the_served_call_is_counted_once(own_redis, tmp_path, fake):
    """noeviction + maxmemory reached: OutOfMemoryError on every write. It used to escape into the call."""
    admin = redis.Redis.from_url(own_redis.url)
    events: list = []
    ledger = journaled(Redis(own_redis.url, prefix="oom:", timeout=1), tmp_path)
    guard = guard_on(ledger, events=events)
    client = serve_during(guard, fake, lambda: admin.config_set("maxmemory", "1"), "oom-1")
    assert len(ledger.journal) == 1  # journaled, not lost
    assert [e.data["state"] for e in errors(events)] == ["out of memory"]
    assert "maxmemory" in errors(events)[0].message
    assert "out of memory" in refused(guard, client, "oom-2", "ledger_unavailable")
    assert fake.count == 1  # closed: nothing the shared budget cannot see was sent
    admin.config_set("maxmemory", "0")
    assert nano(guard.spent("global").usd) == PRICE  # replayed once the store takes writes again
    assert len(ledger.journal) == 0 and settled_clean(guard) == (PRICE, (0, 0, 0))
    assert ledger.replay() == 0 and len(errors(events)) == 1


def test_redis_that_lost_its_data_is_an_outage_until_restored_never_a_silent_reset(own_redis, tmp_path, fake):
    """A restart without persistence (here FLUSHALL while a call is served) forgot every counter:
    it used to reset budgets silently. The generation key is gone: one event, calls refused,
    reads fail, until the data is back (an RDB backup here); then the journal is replayed."""
    admin = redis.Redis.from_url(own_redis.url)
    events: list = []
    ledger = journaled(Redis(own_redis.url, prefix="gen:", timeout=1), tmp_path)
    guard = guard_on(ledger, events=events)
    client = serve_during(guard, fake, None, "before")
    admin.save()  # the backup: holds the first call's spend and the store's generation
    serve_during(guard, fake, admin.flushall, "during")
    assert len(ledger.journal) == 1
    (event,) = errors(events)
    assert "lost its data" in event.message and event.data["state"] == "lost its data"
    for n in range(3):  # never admitted against a budget that restarted from $0
        assert "lost its data" in refused(guard, client, f"after-{n}", "ledger_unavailable")
    assert fake.count == 2
    with pytest.raises(LedgerError):  # never a silent $0
        guard.spent("global")
    own_redis.proc.kill()  # restore: a restart that loads the backup (no save of the empty store)
    own_redis.proc.wait()
    own_redis.proc = None
    own_redis.start()
    assert nano(guard.spent("global").usd) == 2 * PRICE  # restored + the journaled call, once
    assert settled_clean(guard)[1] == (0, 0, 0) and len(ledger.journal) == 0
    serve_during(guard, fake, None, "restored")
    assert nano(guard.spent("global").usd) == 3 * PRICE and len(errors(events)) == 1


def test_a_redis_restarted_without_persistence_does_not_forget_a_tripped_budget(own_redis, tmp_path, fake):
    """Counters and trip markers were forgotten by a restart without persistence: 2x a budget spent."""
    events: list = []
    ledger = journaled(Redis(own_redis.url, prefix="rs:", timeout=1), tmp_path)
    # one call fits (its input bound, 2,000 tokens, and some output); after it, not even the input bound
    guard = guard_on(ledger, events=events, usd=350_000 / NANO)
    client = serve_during(guard, fake, None, "spent")
    refused(guard, client, "over", "budget")  # the budget is spent: tripped
    own_redis.proc.kill()  # no persistence: an empty store comes back
    own_redis.proc.wait()
    shutil.rmtree(own_redis.dir)
    os.mkdir(own_redis.dir)
    own_redis.proc = None
    own_redis.start()
    for n in range(3):
        assert "lost its data" in refused(guard, client, f"again-{n}", "ledger_unavailable")
    assert fake.count == 1 and len(errors(events)) == 1  # nothing sent against a budget reset to $0


def test_a_loss_accepted_starts_a_new_generation_with_the_journaled_calls(own_redis, tmp_path, fake):
    admin = redis.Redis.from_url(own_redis.url)
    events: list = []
    ledger = journaled(Redis(own_redis.url, prefix="acc:", timeout=1), tmp_path)
    guard = guard_on(ledger, events=events)
    serve_during(guard, fake, None, "before")
    client = serve_during(guard, fake, admin.flushall, "during")
    refused(guard, client, "refused", "ledger_unavailable")
    ledger.inner.accept_data_loss()  # the operator decides not to restore
    serve_during(guard, fake, None, "after")
    assert nano(guard.spent("global").usd) == 2 * PRICE  # the journaled call and the new one; the lost one is gone
    assert len(errors(events)) == 1 and settled_clean(guard)[1] == (0, 0, 0)


def test_a_reset_seen_only_through_a_new_generation_is_still_reported_once(own_redis, tmp_path, fake):
    """Another process started against the emptied store (and made a new generation) before this
    one noticed: this process reports the loss once, then uses the store again."""
    admin = redis.Redis.from_url(own_redis.url)
    events: list = []
    ledger = journaled(Redis(own_redis.url, prefix="new:", timeout=1), tmp_path)
    guard = guard_on(ledger, events=events)
    client = serve_during(guard, fake, None, "before")
    admin.flushall()
    other = Redis(own_redis.url, prefix="new:", timeout=1)
    other.settle(None, (Counter("global"),), (), (5, 0, 0), T0)  # a fresh process: a new generation
    assert "was reset" in refused(guard, client, "noticed", "ledger_unavailable")
    serve_during(guard, fake, None, "again")
    assert len(errors(events)) == 1 and "was reset" in errors(events)[0].message
    assert nano(guard.spent("global").usd) == 5 + PRICE  # the new generation's only


def test_amounts_past_what_redis_counts_exactly_never_fail_a_write(redis_server):
    """"value is not an integer or out of range" (a Lua double past 1e17 passed to HINCRBY) used to
    fail the settlement, and at admission could fail the script after it had added the hold."""
    ledger = Redis(redis_server.url, prefix=f"big{uuid.uuid4().hex[:8]}:")
    c = Counter("global")
    assert ledger.settle(None, (c,), (Limit(0, 1, 10),), (10**20, 10**30, 1), T0) == (MAX_EXACT,)
    ledger.settle(None, (c,), (), (10**20, 10**30, 1), T0)
    s0, s1, s2 = ledger.read([c], T0)[0].settled
    assert s1 >= MAX_EXACT and s1 < 2**63 and s2 == 2  # saturated, not overflowed
    d = Counter("session:huge-cap")
    huge = Ask((d,), (Limit(0, 2, 10),), (100, 1000, 1), (1, 1, 0), 10**18, 1)  # a cap of 10**18 tokens
    grant = ledger.reserve(huge, T0)
    assert grant.status == "ok" and 0 < grant.units <= MAX_EXACT - 1000  # lowered to what it counts
    assert ledger.read([d], T0)[0].reserved == (100 + grant.units, 1000 + grant.units, 1)
    ledger.settle(grant.handle, (d,), (), (0, 0, 1), T0)
    assert ledger.read([d], T0)[0].reserved == (0, 0, 0)


# ------------------------------------------------------------------ Redis: misconfigured
@pytest.mark.parametrize("mode", ["closed", "open"])
def test_a_wrong_redis_password_is_a_configuration_error_not_an_outage(own_redis, tmp_path, fake, mode, caplog):
    """It used to be an outage: in open mode every process then enforced only its own spend, for good."""
    caplog.set_level(logging.DEBUG)
    redis.Redis.from_url(own_redis.url).config_set("requirepass", "the-right-one")
    try:
        wrong_password(own_redis, tmp_path, fake, mode, caplog)
    finally:  # the fixture stops the server without a password
        redis.Redis.from_url(own_redis.url, password="the-right-one").config_set("requirepass", "")


def wrong_password(own_redis, tmp_path, fake, mode, caplog):
    url = f"redis://:wrong-S3CRET@127.0.0.1:{own_redis.port}/0"
    events: list = []
    ledger = journaled(Redis(url, prefix="auth:", timeout=1), tmp_path)
    guard = guard_on(ledger, events=events, mode=mode)
    client = guard.wrap(fake.openai(max_retries=0))
    messages = [refused(guard, client, f"s{n}", "ledger_misconfigured") for n in range(3)]
    assert fake.count == 0  # refused in both modes: open mode does not let calls through on it
    assert "credentials" in messages[0] and "not an outage" in messages[0]
    assert ledger.outages == 0 and not ledger.down
    assert [e.data["kind"] for e in errors(events)] == ["misconfigured"]  # once, not per call
    with pytest.raises(LedgerMisconfigured):
        guard.spent("global")
    shown = caplog.text + "".join(messages) + str([(e.message, e.data) for e in events]) + repr(ledger)
    assert "wrong-S3CRET" not in shown and ":***@" in shown


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-lru", "volatile-ttl"])
def test_an_eviction_policy_that_can_delete_budget_keys_is_refused(own_redis, tmp_path, fake, policy):
    """allkeys-lru evicted counters (4.2x a lifetime budget spent); volatile-* evicts the keys with a
    TTL: rolling windows and settlement ids. Refused at first use, before any call is sent."""
    redis.Redis.from_url(own_redis.url).config_set("maxmemory-policy", policy)
    guard = guard_on(journaled(Redis(own_redis.url, prefix="ev:", timeout=1), tmp_path))
    client = guard.wrap(fake.openai(max_retries=0))
    message = refused(guard, client, "ev", "ledger_misconfigured")
    assert f"maxmemory-policy {policy!r}" in message and "noeviction" in message
    assert fake.count == 0
    with pytest.raises(LedgerMisconfigured, match="maxmemory-policy"):
        Redis(own_redis.url, prefix="ev:").read([Counter("global")], T0)


def test_a_redis_password_never_appears_in_what_the_library_shows(own_redis, tmp_path, fake, caplog):
    caplog.set_level(logging.DEBUG)
    admin = redis.Redis.from_url(own_redis.url)
    admin.execute_command("ACL", "SETUSER", "agent", "on", ">pw-hunter2", "~*", "&*", "+@all")
    url = f"redis://agent:pw-hunter2@127.0.0.1:{own_redis.port}/0"
    events: list = []
    ledger = journaled(Redis(url, prefix="sec:", timeout=0.5), tmp_path)
    guard = guard_on(ledger, events=events)
    client = serve_during(guard, fake, own_redis.stop, "outage")  # an outage: messages quote the store
    message = refused(guard, client, "refused", "ledger_unavailable")
    with pytest.raises(LedgerError) as read:
        guard.spent("global")
    shown = [caplog.text, message, str(read.value), repr(ledger), repr(ledger.inner), ledger.inner.store_id,
             *(e.message + str(e.data) for e in events)]
    assert all("pw-hunter2" not in text for text in shown)
    assert "agent:***@127.0.0.1" in message and errors(events)


# ------------------------------------------------------------------ data errors
@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_a_session_id_that_is_not_valid_unicode_is_refused_before_the_call(kind, tmp_path, fake, redis_server):
    """A lone surrogate (text decoded with errors='surrogateescape') raised a raw UnicodeEncodeError."""
    inner = SQLite(tmp_path / "l.sqlite") if kind == "sqlite" else Redis(redis_server.url,
                                                                          prefix=f"u{uuid.uuid4().hex[:8]}:")
    guard = Breaker(budgets=[Budget(usd=1.0)], ledger=journaled(inner, tmp_path), alerts=[], loops=None,
                    telemetry=False)
    client = guard.wrap(fake.openai(max_retries=0))
    message = refused(guard, client, "ticket-\udcff", "ledger_data")
    assert "not valid Unicode" in message and fake.count == 0
    with guard.session("ticket-\udcff"):  # accounting after the fact is never refused: stored escaped
        cost = guard.record("gpt-4o-mini", SERVED)
    assert nano(cost) == PRICE and nano(guard.spent("session", "ticket-\udcff").usd) == PRICE
    with guard.session("ticket-ok"):
        ask(client, "ok")
    assert fake.count == 1 and guard.ledger.down is False and len(guard.ledger.journal) == 0


def test_amounts_past_what_sqlite_holds_saturate_instead_of_overflowing(tmp_path):
    """OverflowError ("Python int too large to convert to SQLite INTEGER") failed the settlement."""
    ledger = SQLite(tmp_path / "l.sqlite")
    c = Counter("global", 60)
    assert ledger.settle(None, (c,), (Limit(0, 0, 10),), (2**70, 2**70, 1), T0) == (MAX_INT,)
    ledger.settle(None, (c,), (), (2**63 - 1, 5, 1), T0)
    assert ledger.read([c], T0)[0].settled == (MAX_INT, MAX_INT, 2)
    d = Counter("session:huge-cap")
    grant = ledger.reserve(Ask((d,), (Limit(0, 2, 10),), (100, 1000, 1), (1, 1, 0), 2**70, 1), T0)
    assert grant.status == "ok" and grant.units <= MAX_INT - 1000
    ledger.settle(grant.handle, (d,), (), (0, 0, 1), T0)
    assert ledger.read([d], T0)[0].reserved == (0, 0, 0)


# ------------------------------------------------------------------ SQLite
def test_a_garbage_file_is_refused_at_construction_with_a_clear_error(tmp_path):
    path = tmp_path / "not-a-ledger.sqlite"
    path.write_bytes(os.urandom(8192))
    with pytest.raises(ConfigError) as info:  # LedgerMisconfigured is a ConfigError
        SQLite(path)
    assert isinstance(info.value, LedgerMisconfigured) and "not a SQLite database" in str(info.value)


def test_a_sqlite_file_corrupted_mid_run_is_an_outage_and_the_settlement_survives_it(tmp_path, fake):
    path = tmp_path / "l.sqlite"
    events: list = []
    guard = guard_on(journaled(SQLite(path), tmp_path), events=events)
    for n in range(50):  # enough rows for pages beyond the first
        guard.ledger.inner.settle(None, (Counter(f"session:pad-{n}"),), (), (1, 1, 1), T0)
    client = serve_during(guard, fake, None, "before")
    side = sqlite3.connect(path, check_same_thread=False)
    side.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy(path, tmp_path / "backup.sqlite")

    def corrupt() -> None:
        with open(path, "r+b") as f:
            for page in range(1, os.path.getsize(path) // 4096):
                f.seek(page * 4096 + 8)
                f.write(os.urandom(4000))
        side.execute("PRAGMA user_version = 7")  # a real write: other connections drop their cached pages

    serve_during(guard, fake, corrupt, "during")
    assert len(guard.ledger.journal) == 1
    assert [e.data["state"] for e in errors(events)] == ["corrupt"] and ".recover" in errors(events)[0].message
    refused(guard, client, "refused", "ledger_unavailable")
    assert fake.count == 2
    side.close()
    guard.ledger.inner.close()
    for suffix in ("", "-wal", "-shm"):  # the operator restores the backup and restarts the process
        if os.path.exists(f"{path}{suffix}"):
            os.remove(f"{path}{suffix}")
    shutil.copy(tmp_path / "backup.sqlite", path)
    again = guard_on(journaled(SQLite(path), tmp_path))  # the same journal: the dead process's entry
    assert nano(again.spent("global").usd) == 2 * PRICE and len(again.ledger.journal) == 0


def test_a_store_error_nobody_classified_is_journaled_not_raised_in_the_call(tmp_path, fake, caplog):
    """A user's store whose settle raises something unexpected: the served response still returns,
    the error is logged with its traceback and treated as an outage, the settlement replayed once."""

    class Flaky(SQLite):
        failures = 1

        def settle(self, *a, **kw):
            if Flaky.failures:
                Flaky.failures -= 1
                raise KeyError("a store bug")
            return super().settle(*a, **kw)

    events: list = []
    guard = guard_on(journaled(Flaky(tmp_path / "l.sqlite"), tmp_path), events=events)
    serve_during(guard, fake, None, "flaky")
    assert [e.data["state"] for e in errors(events)] == ["failing"]  # an outage: on_ledger_error applied
    assert "unexpected KeyError" in caplog.text and "Traceback" in caplog.text
    assert nano(guard.spent("global").usd) == PRICE and len(guard.ledger.journal) == 0  # replayed once


def test_a_locked_sqlite_store_while_a_call_is_served(tmp_path, fake):
    path = tmp_path / "l.sqlite"
    guard = guard_on(journaled(SQLite(path, busy_timeout=0.05), tmp_path))
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    serve_during(guard, fake, lambda: holder.execute("BEGIN IMMEDIATE"), "locked")
    assert len(guard.ledger.journal) == 1
    holder.execute("ROLLBACK")
    assert nano(guard.spent("global").usd) == PRICE and settled_clean(guard) == (PRICE, (0, 0, 0))


def test_outcomes_and_trip_markers_the_store_refuses_are_journaled_too(own_redis, tmp_path):
    admin = redis.Redis.from_url(own_redis.url)
    ledger = journaled(Redis(own_redis.url, prefix="tr:", timeout=1), tmp_path)
    ledger.settle(None, (Counter("global"),), (), (1, 1, 1), T0)
    admin.config_set("maxmemory", "1")
    ledger.trip(Counter("global"), 0, 5, T0)  # no raise
    ledger.add_outcome("s", None, None, "resolved", T0)
    assert len(ledger.journal) == 2
    admin.config_set("maxmemory", "0")
    assert ledger.replay() == 2
    assert [o[1:] for o in ledger.outcomes()] == [("s", None, None, "resolved")]
    grant = ledger.reserve(Ask((Counter("global"),), (Limit(0, 0, 10**9),), (1, 1, 1), (0, 0, 0), 1, 1), T0)
    assert grant.status == "tripped"
