"""Calendar periods: a budget's period starts at midnight (Monday midnight, the first's midnight) by its
own zone's clock, DST included; a bad period or zone is a ConfigError that names it and the fix."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from breaker import Budget, ConfigError
from breaker.budgets import grant_amount, parse_period_key, period_bounds, period_label

NY = ZoneInfo("America/New_York")


def at(*args: int, tz: ZoneInfo = NY) -> float:
    return datetime(*args, tzinfo=tz).timestamp()


def test_a_month_starts_at_midnight_on_the_first_in_its_zone_across_dst():
    # November 2026 in New York starts on EDT (UTC-4) and ends on EST (UTC-5): 721 hours
    start, end, first = period_bounds("month", NY, at(2026, 11, 15, 12))
    assert (start, end) == (at(2026, 11, 1), at(2026, 12, 1))
    assert start == datetime(2026, 11, 1, 4, tzinfo=ZoneInfo("UTC")).timestamp()
    assert end == datetime(2026, 12, 1, 5, tzinfo=ZoneInfo("UTC")).timestamp()
    assert end - start == (30 * 24 + 1) * 3600
    # one second before midnight is the old month, midnight is the new one
    assert period_bounds("month", NY, at(2026, 11, 1) - 1)[0] == at(2026, 10, 1)
    assert period_bounds("month", NY, at(2026, 11, 1))[0] == at(2026, 11, 1)
    # December rolls into January of the next year
    assert period_bounds("month", NY, at(2026, 12, 31, 23, 59))[1] == at(2027, 1, 1)
    assert first.isoformat() == "2026-11-01"


def test_a_week_starts_on_monday_and_a_day_may_last_23_or_25_hours():
    start, end, first = period_bounds("week", NY, at(2026, 11, 1, 12))  # a Sunday
    assert first.isoformat() == "2026-10-26" and datetime.fromtimestamp(start, NY).weekday() == 0
    assert end == at(2026, 11, 2) and end - start == (7 * 24 + 1) * 3600
    start, end, _ = period_bounds("day", NY, at(2026, 3, 8, 12))  # spring forward
    assert end - start == 23 * 3600
    start, end, _ = period_bounds("day", NY, at(2026, 11, 1, 12))  # fall back
    assert end - start == 25 * 3600


def test_a_zone_that_skips_midnight_starts_its_day_at_the_change():
    havana = ZoneInfo("America/Havana")  # DST started at 00:00 on 2026-03-08: 00:00 jumps to 01:00
    start, _end, _ = period_bounds("day", havana, datetime(2026, 3, 8, 12, tzinfo=havana).timestamp())
    assert datetime.fromtimestamp(start, havana).hour in (0, 1)  # the first instant of the day
    assert datetime.fromtimestamp(start - 1, havana).date().isoformat() == "2026-03-07"


def test_the_period_key_names_the_period_and_reads_back():
    _s, end, first = period_bounds("month", NY, at(2026, 11, 15))
    label = period_label("month", NY, first)
    assert label == "month:2026-11-01:America/New_York"
    assert parse_period_key(f"user:a@b.com@{label}") == ("user:a@b.com", "month", end, "America/New_York")  # '@' in an id is fine
    assert parse_period_key("user:a@b.com") is None and parse_period_key("session:s") is None


def test_a_budget_takes_a_period_and_a_zone():
    b = Budget(usd=50, per="feature", period="month", tz="America/New_York")
    assert b.zone == NY and b.tz == "America/New_York" and b.window_s == 0
    assert b.describe() == "$50.00 per feature per month (America/New_York)"
    assert Budget(usd=1, period="day").zone == ZoneInfo("UTC")
    assert Budget(usd=1, period="week", tz=NY).tz == "America/New_York"  # a ZoneInfo is taken by its name


@pytest.mark.parametrize("kw, needles", [
    (dict(period="monthly"), ["period='monthly'", "did you mean 'month'", "window="]),
    (dict(period="day", window="1d"), ["window='1d'", "period='day'", "choose one"]),
    (dict(period="month", window=timedelta(days=30)), ["choose one"]),
    (dict(tz="Europe/Paris"), ["tz='Europe/Paris'", "period='day'"]),
    (dict(period="day", tz="Mars/Olympus_Mons"), ["tz='Mars/Olympus_Mons'", "IANA", "Europe/Paris"]),
    (dict(period="day", tz="../../etc/passwd"), ["not a time zone"]),
    (dict(period="day", tz=""), ["not a time zone"]),
    (dict(period="day", tz=5), ["tz=5"]),
])
def test_a_bad_period_or_zone_names_itself_and_the_fix(kw, needles):
    with pytest.raises(ConfigError) as info:
        Budget(usd=1, **kw)
    for needle in needles:
        assert needle in str(info.value)


def test_grant_amounts_are_checked_like_limits():
    assert grant_amount(usd="1.00") == (1_000_000_000, 0, 0)
    assert grant_amount(usd=0.5, tokens=10, calls=2) == (500_000_000, 10, 2)
    for kw, needle in ((dict(), "needs an amount"), (dict(usd=0), "more than 0"), (dict(usd="abc"), "number of dollars"),
                       (dict(tokens=1.5), "whole number"), (dict(calls=-1), "whole number"),
                       (dict(usd=True), "number of dollars"), (dict(usd=1e-12), "nano-dollar")):
        with pytest.raises(ConfigError, match=needle):
            grant_amount(**kw)


def test_a_configuration_file_takes_a_period(tmp_path):
    from breaker import Breaker

    path = tmp_path / "breaker.toml"
    path.write_text('[[budgets]]\nusd = 50\nper = "feature"\nperiod = "month"\ntz = "America/New_York"\n'
                    '[[budgets]]\nusd = 5\nperiod = "weekly"\n')
    with pytest.raises(ConfigError, match=r"budgets\[1\]\.period = \"weekly\".*did you mean 'week'"):
        Breaker.from_config(path)
    path.write_text('[[budgets]]\nusd = 50\nper = "feature"\nperiod = "month"\ntz = "America/New_York"\n')
    (budget,) = Breaker.from_config(path, alerts=[], telemetry=False).budgets
    assert (budget.period, budget.zone) == ("month", NY)
