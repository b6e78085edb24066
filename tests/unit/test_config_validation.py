"""Configuration that used to be accepted and then did nothing, or failed inside a call (issue 19).

Each bad input is refused at construction with a ``ConfigError`` that names the
argument and says what to write; the good inputs next to them are shown to work
through a real ``Breaker`` (calls counted, events seen), not just to construct.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta

import pytest

from breaker import Breaker, Budget, ConfigError, Degrade, LoopPolicy, Usage, UsageError
from breaker.adapter import Call
from breaker.alerts.webhook import Webhook
from breaker.engine.config import check_degrade_targets
from breaker.errors import BudgetExceeded, SessionKilled
from breaker.pricing import PriceBook
from breaker.usage import MAX_UNITS

NAN, INF = math.nan, math.inf
_fp = iter(range(10**9))


def call(model: str = "gpt-4o-mini") -> Call:
    return Call(model, "openai", input_tokens=100, max_output_tokens=50, fingerprint=next(_fp))


def run(guard: Breaker, n: int = 1) -> None:
    for _ in range(n):
        guard.settle(guard.admit(call()), Usage(100, 50))


class Sink(list):
    def __call__(self, event):
        self.append(event)


# ------------------------------------------------------------------ per: scopes and tags


@pytest.mark.parametrize("typo, meant", [
    ("sesion", "session"), ("sessions", "session"), ("Session", "session"), ("session ", "session"),
    ("users", "user"), ("usr", "user"), ("featur", "feature"), ("features", "feature"),
    ("globl", "global"), ("GLOBAL", "global"),
])
def test_a_near_miss_of_a_scope_says_the_word_meant(typo, meant):
    with pytest.raises(ConfigError, match=rf"did you mean per='{meant}'") as info:
        Budget(usd=2, per=typo)
    assert f"per='tag:{typo}'" in str(info.value)  # and how to say it really is a tag


def test_the_typo_from_the_issue_no_longer_spends_six_times_the_budget():
    # Budget(per="sesion") used to be a tag budget no session carried: it never applied.
    with pytest.raises(ConfigError, match="did you mean per='session'"):
        Breaker(budgets=[Budget(calls=1, per="sesion")], alerts=[])


def test_an_explicit_tag_budget_applies_to_sessions_carrying_the_tag():
    guard = Breaker(budgets=[Budget(calls=2, per="tag:team")], alerts=[], loops=None)
    assert guard.budgets[0].per == "team" and guard.budgets[0] == Budget(calls=2, per="team")  # same budget
    with guard.session(tags={"team": "search"}):
        run(guard, 2)
    with pytest.raises(SessionKilled, match="team='search'"):
        with guard.session(tags={"team": "search"}):
            run(guard, 1)
    with guard.session(tags={"team": "ads"}):  # another value of the tag: its own counter
        run(guard, 2)
    assert guard.spent("global").calls == 4


def test_an_explicit_tag_may_be_named_like_a_near_miss():
    guard = Breaker(budgets=[Budget(calls=1, per="tag:users")], alerts=[], loops=None)
    with guard.session(tags={"users": "a"}):
        run(guard, 1)
        with pytest.raises(BudgetExceeded):
            run(guard, 1)


@pytest.mark.parametrize("per, words", [
    ("tag:", "non-empty"), ("tag: team", "surrounding spaces"), ("tag:a=b", "without '='"),
    ("tag:user", "cannot be named like the scope 'user'"), ("", "'tag:NAME'"), (None, "'tag:NAME'"),
])
def test_bad_tag_names_are_refused(per, words):
    with pytest.raises(ConfigError, match=words):
        Budget(usd=1, per=per)


def test_an_empty_key_is_refused_rather_than_never_matching():
    with pytest.raises(ConfigError, match="non-empty string"):
        Budget(usd=1, per="user", key="")


# ------------------------------------------------------------------ amounts


def test_a_usd_limit_that_rounds_to_zero_nano_dollars_is_refused():
    with pytest.raises(ConfigError, match=r"less than one nano-dollar.*Budget\(usd=1e-9\)"):
        Budget(usd=1e-12)


def test_the_smallest_usd_limit_refuses_a_call_cleanly():
    # the issue: a limit of 0 nano-USD, then ZeroDivisionError in the call path
    guard = Breaker(budgets=[Budget(usd=1e-9)], alerts=[], loops=None)
    assert guard.budgets[0].limits == ((0, 1),)
    with pytest.raises(SessionKilled):
        with guard.session("tiny"):
            guard.admit(call())


@pytest.mark.parametrize("make, words", [
    (lambda: Budget(usd=1e10), r"\$1,000,000,000 at most"),
    (lambda: Budget(usd=INF), "more than 0"),
    (lambda: Budget(usd=NAN), "more than 0"),
    (lambda: Budget(tokens=10**19), "from 1 to 10\\*\\*18"),
    (lambda: Budget(calls=0), "from 1 to 10\\*\\*18"),
])
def test_limits_are_finite_and_within_what_a_ledger_holds(make, words):
    with pytest.raises(ConfigError, match=words):
        make()


def test_usd_limits_ignore_the_host_applications_decimal_precision():
    import decimal

    with decimal.localcontext(decimal.Context(prec=2)):
        assert Budget(usd=2.57).limits == ((0, 2_570_000_000),)


# ------------------------------------------------------------------ windows and waits


@pytest.mark.parametrize("window", ["99999999999d", "9" * 5000 + "d", "3651d", timedelta(days=999_999), 10**12])
def test_windows_past_ten_years_are_refused(window):
    with pytest.raises(ConfigError, match="from 1s to 3650d"):
        Budget(usd=1, window=window)


def test_a_ten_year_window_is_the_longest():
    assert Budget(usd=1, window="3650d").window_s == 3650 * 86_400


def test_the_message_quotes_a_huge_value_short():
    with pytest.raises(ConfigError) as info:
        Budget(usd=1, window="9" * 5000 + "d")
    assert len(str(info.value)) < 200


@pytest.mark.parametrize("value, words", [
    (NAN, "finite number of seconds"), (INF, "finite number of seconds"), (-1, "from 0 to 86400"),
    (86_401, "from 0 to 86400"), (True, "must be a number of seconds"), ("60", "must be a number of seconds"),
])
def test_reservation_wait_is_finite_and_in_range(value, words):
    with pytest.raises(ConfigError, match=rf"Breaker\(reservation_wait=.*{words}"):
        Breaker(reservation_wait=value, alerts=[])


def test_session_ttl_is_in_range():
    with pytest.raises(ConfigError, match="session_ttl='99999999999d'"):
        Breaker(session_ttl="99999999999d", alerts=[])


@pytest.mark.parametrize("value", [0, MAX_UNITS + 1, 16.0])
def test_min_output_tokens_is_in_range(value):
    with pytest.raises(ConfigError, match=r"Breaker\(min_output_tokens="):
        Breaker(min_output_tokens=value, alerts=[])


@pytest.mark.parametrize("kwargs, words", [
    ({"min_backoff": NAN}, r"LoopPolicy\(min_backoff=nan\) must be a finite number of seconds"),
    ({"min_backoff": INF}, r"LoopPolicy\(min_backoff=inf\)"),
    ({"min_backoff": 0}, r"more than 0"),
    ({"spike_factor": NAN}, r"spike_factor=nan\) must be a finite number above 1"),
    ({"spike_factor": INF}, r"spike_factor=inf"),
    ({"context_rising": 0}, r"LoopPolicy\(context_rising=0\)"),
    ({"spike_min_calls": 2.5}, r"LoopPolicy\(spike_min_calls=2.5\)"),
    ({"identical_window": "99999999999d"}, r"LoopPolicy\(identical_window='99999999999d'\)"),
    ({"error_window": NAN}, r"LoopPolicy\(error_window=nan\) is not a window"),
])
def test_loop_policy_numbers_are_finite_and_in_range(kwargs, words):
    with pytest.raises(ConfigError, match=words):
        LoopPolicy(**kwargs)


@pytest.mark.parametrize("kwargs, words", [
    ({"timeout": NAN}, r"Webhook\(timeout=nan\)"), ({"timeout": INF}, r"Webhook\(timeout=inf\)"),
    ({"backoff": NAN}, r"Webhook\(backoff=nan\)"), ({"max_backoff": -1}, r"Webhook\(max_backoff=-1\)"),
    ({"attempts": True}, r"Webhook\(attempts=True\)"),
])
def test_webhook_numbers_are_finite_and_in_range(kwargs, words):
    with pytest.raises(ConfigError, match=words):
        Webhook("https://hooks.example/x", **kwargs)


# ------------------------------------------------------------------ warn_at


def test_warn_at_takes_a_single_fraction():
    sink = Sink()
    guard = Breaker(budgets=[Budget(calls=4, warn_at=0.5)], alerts=[sink], loops=None)
    assert guard.budgets[0].warn_at == (0.5,)
    with guard.session("w"):
        run(guard, 1)
        assert [e.kind for e in sink] == []
        run(guard, 1)  # 2 of 4 calls: 50%
    assert [e.fraction for e in sink if e.kind == "threshold"] == [0.5]


def test_warn_at_none_fires_nothing():
    assert Budget(usd=1, warn_at=None).warn_at == ()


@pytest.mark.parametrize("warn_at", ["0.5", NAN, 0, 1.5, (0.5, NAN), True])
def test_bad_warn_at_is_refused(warn_at):
    with pytest.raises(ConfigError, match=r"Budget\(warn_at="):
        Budget(usd=1, warn_at=warn_at)


# ------------------------------------------------------------------ choices


@pytest.mark.parametrize("make, words", [
    (lambda: Breaker(on_ledger_error="close", alerts=[]), "did you mean 'closed'"),
    (lambda: Breaker(input_estimate="strct", alerts=[]), "did you mean 'strict'"),
    (lambda: Budget(usd=1, on_exceed="kil"), "did you mean 'kill'"),
    (lambda: Degrade(reasoning_effort="lo"), "did you mean 'low'"),
    (lambda: Degrade(model_map={"gpt-4o": ""}), "map model names to model names"),
    (lambda: Degrade(max_output_tokens=MAX_UNITS + 1), r"Degrade\(max_output_tokens="),
])
def test_a_near_miss_of_a_choice_says_the_word_meant(make, words):
    with pytest.raises(ConfigError, match=words):
        make()


# ------------------------------------------------------------------ Degrade targets priced


def test_a_typod_degrade_target_is_refused_naming_the_model_meant():
    with pytest.raises(ConfigError, match=r"no price is known for 'gpt-4o-mnii'.*Did you mean 'gpt-4o-mini'"):
        check_degrade_targets(Degrade(model_map={"gpt-4o": "gpt-4o-mnii"}), PriceBook(), "error")


def test_an_unpriced_degrade_target_says_how_to_price_it():
    with pytest.raises(ConfigError, match=r"Breaker\(prices=\{'house-small'"):
        check_degrade_targets(Degrade(model_map={"house-big": "house-small"}), PriceBook(), "error")


def test_priced_degrade_targets_pass():
    prices = PriceBook({"house-small": {"input": 0.1, "output": 0.2}})
    check_degrade_targets(Degrade(model_map={"gpt-4o": "gpt-4o-mini", "house-big": "house-small"}), prices, "error")
    check_degrade_targets(Degrade(max_output_tokens=100), prices, "error")  # no model switch
    check_degrade_targets(None, prices, "error")


def test_a_target_priced_only_at_its_provider_passes():
    # Bedrock's cross-region ids are priced at "aws" only; the call's provider is known at call time
    bedrock = {"us.anthropic.claude-sonnet-4-20250514-v1:0": "us.anthropic.claude-3-5-haiku-20241022-v1:0"}
    check_degrade_targets(Degrade(model_map=bedrock), PriceBook(), "error")


def test_with_unknown_price_warn_only_a_near_miss_is_refused():
    check_degrade_targets(Degrade(model_map={"house-big": "house-small"}), PriceBook(), "warn")  # on purpose
    with pytest.raises(ConfigError, match="Did you mean 'gpt-4o-mini'"):
        check_degrade_targets(Degrade(model_map={"gpt-4o": "gpt-4o-mnii"}), PriceBook(), "warn")


def test_breaker_refuses_a_typod_degrade_target_at_construction():
    with pytest.raises(ConfigError, match="Did you mean 'gpt-4o-mini'"):
        Breaker(budgets=[Budget(usd=1, degrade_at=0.5)], degrade=Degrade(model_map={"gpt-4o": "gpt-4o-mnii"}),
                alerts=[])


# ------------------------------------------------------------------ usage beyond physical sense


@pytest.mark.parametrize("make", [
    lambda: Usage(10**30),
    lambda: Usage(MAX_UNITS + 1),
    lambda: Usage(10, 5, requests=2**41),
    lambda: Usage(input_tokens=10**13, output_tokens=1),
    lambda: Usage(input_tokens=10, input_audio_tokens=10**13),
    lambda: Usage(audio_seconds=10**13),
])
def test_usage_beyond_any_real_call_is_refused(make):
    with pytest.raises(UsageError, match=r"beyond any real call \(at most 1,099,511,627,775"):
        make()


def test_the_ceiling_itself_and_negative_counts_keep_their_meaning():
    assert Usage(MAX_UNITS, MAX_UNITS).total_tokens == 2 * MAX_UNITS
    with pytest.raises(UsageError, match="non-negative int"):
        Usage(-1)


def test_absurd_usage_cannot_trip_a_lifetime_budget_for_good():
    guard = Breaker(budgets=[Budget(tokens=1_000_000, per="global")], alerts=[], loops=None)
    with pytest.raises(UsageError):
        guard.record("gpt-4o-mini", Usage(10**30))
    run(guard, 3)  # still admitted: nothing was counted
    assert guard.spent("global").tokens == 450


@pytest.mark.parametrize("build, fragment", [
    (lambda tmp: __import__("breaker.ledgers", fromlist=["SQLite"]).SQLite(tmp / "l.db", busy_timeout=-1),
     "SQLite(busy_timeout=-1)"),
    (lambda tmp: __import__("breaker.ledgers", fromlist=["SQLite"]).SQLite(tmp / "l.db", busy_timeout=float("nan")),
     "SQLite(busy_timeout=nan)"),
    (lambda tmp: __import__("breaker.ledgers", fromlist=["Redis"]).Redis("redis://127.0.0.1:1/0", timeout=-1),
     "Redis(timeout=-1)"),
    (lambda tmp: __import__("breaker.ledgers", fromlist=["Redis"]).Redis("redis://127.0.0.1:1/0", keep_records=-5),
     "Redis(keep_records=-5)"),
])
def test_ledger_numbers_are_checked_at_construction(tmp_path, build, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        build(tmp_path)
