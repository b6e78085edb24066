"""``breaker report``'s cache, waste, routing, what-if and per-day figures, on a SQLite ledger
written through the real OpenAI SDK against FakeLLM, checked against figures worked out by hand
(and against genai-prices, the pricing reference, for the same usage)."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import openai
import pytest

from breaker import Breaker, LoopPolicy, Usage
from breaker.ledgers import SQLite
from breaker.routing import Route, input_below, model_is, output_below
from breaker.testing import FakeLLM, Reply
from tests.cli.conftest import assert_user_error, cli
from tests.conftest import Clock, genai_nano

DAY = 86_400
SYSTEM = "You are the support assistant of a shop. Follow the policy below to the letter. " + "Policy line. " * 600
BULK = "Context paragraph for the request. " * 250  # 8,750 bytes: above the route rule's 2,000 tokens, even
# as the provider counts them (a re-sent request is bounded by its reported input: see breaker.estimate)


def script(received) -> Reply:
    """The provider: what each kind of request reports (chosen by a marker in its last message)."""
    last = received.body["messages"][-1]["content"] or ""
    if "[cached]" in last:
        return Reply(text="ok", input_tokens=1000, cached_tokens=600, output_tokens=100)
    if "[loop]" in last:
        return Reply(text="same answer", input_tokens=500, output_tokens=20)
    if "[flaky]" in last and not script.failed:
        script.failed = True
        return Reply(status=500)
    return Reply(text="an answer of a few words")  # input counted from the request's text


script.failed = False


class Written:
    """What was sent and what the provider reported, per call, as the test's own bookkeeping."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Usage]] = []  # (feature, model sent, usage)
        self.sent_models: list[str] = []
        self.growing: list[int] = []  # reported input of each call of the growing conversation
        self.days: dict[str, tuple[int, int]] = {}  # day -> (cost nano, outcomes)

    def by_feature(self) -> dict[str, list[tuple[str, Usage]]]:
        out = defaultdict(list)
        for feature, model, usage in self.calls:
            out[feature].append((model, usage))
        return out


@pytest.fixture(scope="module")
def ledger(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("waste") / "breaker.db")
    store = SQLite(path)
    w = Written()
    guard = Breaker(ledger=store, alerts=[], loops=LoopPolicy(on_detect="warn"),
                    # short requests with a small output cap (only the "routed" feature's) go to gpt-4o-mini
                    route=[Route("gpt-4o-mini", when=model_is("gpt-4o") & input_below(2000) & output_below(100))])
    try:
        with FakeLLM(default=script) as fake:
            client = guard.wrap(openai.OpenAI(base_url=fake.base_url, api_key="x", max_retries=0))

            def send(feature: str, messages: list, cap: int = 200) -> object:
                reply = client.chat.completions.create(model="gpt-4o", messages=messages, max_tokens=cap)
                u = reply.usage
                cached = u.prompt_tokens_details.cached_tokens if u.prompt_tokens_details else 0
                usage = Usage(u.prompt_tokens, u.completion_tokens, cache_read_tokens=cached or 0)
                w.calls.append((feature, fake.requests[-1].body["model"], usage))
                return reply

            with guard.session("c1", feature="cached"):  # 600 of 1,000 input tokens from the cache, three times
                for i in range(3):
                    send("cached", [{"role": "user", "content": f"{BULK} question {i} [cached]"}])
            with guard.session("l1", feature="loop"):  # five identical requests; max_identical=3 warns on two
                for _ in range(5):
                    send("loop", [{"role": "user", "content": f"{BULK} status? [loop]"}])
            with guard.session("r1", feature="routed"):  # a short request is routed, a long one is not
                send("routed", [{"role": "user", "content": "hi"}], cap=50)
                send("routed", [{"role": "user", "content": BULK + " long one"}], cap=50)
            with guard.session("f1", feature="flaky"):  # fails, is re-sent (needed), then asked again (waste)
                ask = [{"role": "user", "content": f"{BULK} [flaky]"}]
                with pytest.raises(openai.InternalServerError):
                    client.chat.completions.create(model="gpt-4o", messages=ask, max_tokens=200)
                send("flaky", ask)
                send("flaky", ask)
            with guard.session("h1", feature="chat"):  # a conversation re-sent whole every turn, uncached
                messages = [{"role": "system", "content": SYSTEM}]
                for turn in range(4):
                    messages.append({"role": "user", "content": f"turn {turn}: " + "more detail please. " * 120})
                    reply = send("chat", messages)
                    w.growing.append(reply.usage.prompt_tokens)
                    messages.append({"role": "assistant", "content": reply.choices[0].message.content})
            w.sent_models = [r.body["model"] for r in fake.requests]
        with guard.session("q1", feature="think"):  # reasoning tokens, accounted by hand
            guard.record("o4-mini", Usage(1000, 500, reasoning_tokens=300), provider="openai")
            w.calls.append(("think", "o4-mini", Usage(1000, 500, reasoning_tokens=300)))
        # Cost per outcome by day: calls and outcomes three and two days ago (a clock of our own).
        start = datetime.now(timezone.utc).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=3)
        clock = Clock(start.timestamp())
        dated = Breaker(ledger=store, alerts=[], loops=None, clock=clock)
        for day, sessions, outcomes in ((0, 2, 1), (1, 1, 2)):
            clock.now = start.timestamp() + day * DAY
            cost = 0
            for n in range(sessions):
                with dated.session(f"d{day}-{n}", feature="dated") as s:
                    dated.record("gpt-4o-mini", Usage(10_000, 1_000), provider="openai")
                    cost += genai_nano(Usage(10_000, 1_000), "gpt-4o-mini", "openai")
                    for k in range(outcomes if n == 0 else 0):
                        s.outcome("resolved")
            w.days[(start + timedelta(days=day)).date().isoformat()] = (cost, outcomes)
    finally:
        store.close()
    return path, w


def report(path: str, *args: str) -> dict:
    result = cli("report", "--ledger", path, "--format", "json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def data(ledger) -> dict:
    return report(ledger[0], "--what-if", "gpt-4o=gpt-4o-mini")


def rows(data: dict, by: str = "feature") -> dict[str, dict]:
    return {r["key"]: r for r in data["by"][by]}


def test_cache_hit_rate_and_savings_of_three_calls_with_600_of_1000_tokens_cached(data):
    cached = rows(data)["cached"]
    assert (cached["input_tokens"], cached["cache_read_tokens"]) == (3000, 1800)
    assert cached["cache_hit_rate"] == 0.6
    # 3 x 600 x ($2.50 - $1.25) per million tokens; $1 per million tokens is 1,000 nano-USD a token
    assert cached["cache_savings_nano_usd"] == 3 * 600 * (2500 - 1250) == 2_250_000
    assert cached["cache_savings_usd"] == pytest.approx(3 * 600 * (2.50 - 1.25) / 1e6)
    per_call = genai_nano(Usage(1000, 100), "gpt-4o", "openai") - genai_nano(Usage(1000, 100, 600), "gpt-4o", "openai")
    assert cached["cache_savings_nano_usd"] == 3 * per_call  # the same by the pricing reference
    assert cached["resent_context_tokens"] == 0  # three different requests: nothing re-sent


def test_loop_usd_is_the_cost_of_the_two_calls_past_max_identical(data, ledger):
    loop = rows(data)["loop"]
    one = 500 * 2500 + 20 * 10_000  # 500 input at $2.50/M + 20 output at $10/M = 1,450,000 nano-USD
    assert one == genai_nano(Usage(500, 20), "gpt-4o", "openai")
    assert loop["calls"] == 5 and loop["cost_nano_usd"] == 5 * one
    assert loop["loop_calls"] == 2 and loop["loop_nano_usd"] == 2 * one
    assert loop["retry_nano_usd"] == 4 * one  # the same request sent again after each answer


def test_a_route_rule_sends_short_requests_to_the_small_model_priced_as_sent(data, ledger):
    _, w = ledger
    routed = [(m, u) for f, m, u in w.calls if f == "routed"]
    assert [m for m, _ in routed] == ["gpt-4o-mini", "gpt-4o"]  # the model in each request's body
    short = routed[0][1]
    group = rows(data)["routed"]
    assert group["cost_nano_usd"] == sum(genai_nano(u, m, "openai") for m, u in routed)
    assert group["routed_calls"] == 1
    assert group["routing_savings_nano_usd"] == genai_nano(short, "gpt-4o", "openai") - genai_nano(short, "gpt-4o-mini", "openai")
    (route,) = data["routes"]
    assert (route["requested_model"], route["model"], route["calls"]) == ("gpt-4o", "gpt-4o-mini", 1)
    assert route["cost_nano_usd"] == genai_nano(short, "gpt-4o-mini", "openai")
    assert route["requested_cost_nano_usd"] == genai_nano(short, "gpt-4o", "openai")
    models = rows(data, "model")
    assert models["gpt-4o-mini"]["routed_calls"] == 1 and "gpt-4o" in models


def test_retries_count_the_failure_and_the_second_ask_not_the_needed_resend(data, ledger):
    _, w = ledger
    flaky = rows(data)["flaky"]
    (_, first), (model, again) = [(m, u) for f, m, u in w.calls if f == "flaky"]
    assert flaky["calls"] == 3 and flaky["failed_calls"] == 1 and model == "gpt-4o"
    assert flaky["retry_nano_usd"] == genai_nano(again, model, "openai")  # the failed call cost nothing


def test_context_resent_uncached_and_the_history_growth_of_a_conversation(data, ledger):
    _, w = ledger
    chat = rows(data)["chat"]
    usages = [u for f, m, u in w.calls if f == "chat"]
    assert [u.input_tokens for u in usages] == w.growing and all(b > a for a, b in zip(w.growing, w.growing[1:]))
    assert w.growing[0] >= 1024  # long enough to be cached at all
    # Each turn re-sent the previous turn's whole input (no cache reads): those tokens are the resent context.
    resent = w.growing[:-1]
    assert chat["resent_context_tokens"] == sum(resent)
    cost = [genai_nano(u, "gpt-4o", "openai") for u in usages[1:]]
    assert chat["resent_context_nano_usd"] == sum(
        c - genai_nano(u.replace(input_tokens=u.input_tokens - t), "gpt-4o", "openai")
        for c, u, t in zip(cost, usages[1:], resent))
    assert chat["resent_context_saving_nano_usd"] == sum(
        c - genai_nano(u.replace(cache_read_tokens=t), "gpt-4o", "openai") for c, u, t in zip(cost, usages[1:], resent))
    assert chat["growing_sessions"] == 1 and chat["history_sessions"] == 1
    assert chat["history_growth_tokens_per_call"] == pytest.approx((w.growing[-1] - w.growing[0]) / 3)
    hints = [h for h in data["hints"] if "'chat'" in h]
    assert any("prompt caching would save" in h for h in hints)  # the feature that would benefit
    assert any("grows by about" in h for h in hints)
    assert not any("'cached'" in h and "prompt caching" in h for h in data["hints"])  # it caches already


def test_reasoning_usd_is_the_price_of_the_reasoning_tokens(data):
    think = rows(data)["think"]
    assert think["reasoning_nano_usd"] == 300 * 4400 == 1_320_000  # 300 tokens at o4-mini's $4.40/M output
    u = Usage(1000, 500, reasoning_tokens=300)
    assert think["reasoning_nano_usd"] == genai_nano(u, "o4-mini", "openai") - genai_nano(Usage(1000, 200), "o4-mini", "openai")


def test_what_if_reprices_the_mapped_calls_as_by_hand(data, ledger):
    _, w = ledger
    by_feature = {r["key"]: r for r in data["what_if"]["by_feature"]}
    assert data["what_if"]["map"] == {"gpt-4o": "gpt-4o-mini"}
    for feature, calls in w.by_feature().items():
        now = sum(genai_nano(u, m, "openai") for m, u in calls)
        then = sum(genai_nano(u, "gpt-4o-mini" if m == "gpt-4o" else m, "openai") for m, u in calls)
        row = by_feature[feature]
        assert row["cost_nano_usd"] == now, feature
        assert row["what_if_cost_nano_usd"] == then, feature
        assert row["what_if_difference_nano_usd"] == then - now, feature
        assert row["what_if_calls"] == sum(m == "gpt-4o" for m, _ in calls), feature
    assert rows(data)["loop"]["what_if_cost_nano_usd"] == 5 * genai_nano(Usage(500, 20), "gpt-4o-mini", "openai")
    assert report(ledger[0])["totals"].get("what_if_cost_usd") is None  # only when asked for


def test_cost_per_outcome_by_day(data, ledger):
    _, w = ledger
    days = rows(data, "day")
    assert list(days) == sorted(days)  # oldest first
    for day, (cost, outcomes) in w.days.items():
        assert days[day]["cost_nano_usd"] == cost
        assert days[day]["outcomes"] == {"resolved": outcomes}
        assert days[day]["cost_per_any_outcome_usd"] == pytest.approx(cost / outcomes / 1e9)


def test_table_and_csv_show_the_new_figures(ledger):
    path, _ = ledger
    result = cli("report", "--ledger", path, "--what-if", "gpt-4o=gpt-4o-mini")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for title in ("Cache and waste, by feature", "Cost per outcome by day", "Routed calls", "What if gpt-4o → gpt-4o-mini"):
        assert title in out, title
    assert "Waste: " in out and "Cache: 60%" not in out and "Hint: feature 'chat'" in out
    result = cli("report", "--ledger", path, "--by", "feature", "--format", "csv")
    assert result.returncode == 0, result.stderr
    table = {r["key"]: r for r in csv.DictReader(io.StringIO(result.stdout))}
    assert float(table["cached"]["cache_hit_rate"]) == 0.6 and int(table["loop"]["loop_calls"]) == 2
    assert float(table["cached"]["cache_savings_usd"]) == pytest.approx(0.00225)


def test_bad_what_if_is_a_user_error(ledger):
    path, _ = ledger
    assert_user_error(cli("report", "--ledger", path, "--what-if", "gpt-4o"), "FROM=TO")
    assert_user_error(cli("report", "--ledger", path, "--what-if", "gpt-4o=gpt-4o-mnii"), "no price", "gpt-4o-mini")


def test_the_demo_ends_with_the_waste_lines():
    result = cli("demo", "--plain")
    assert result.returncode == 0, result.stderr
    tail = result.stdout.strip().splitlines()[-3:]
    assert any(line.strip().startswith("Waste: ") for line in tail), tail
    assert any("loop detector flagged" in line for line in tail)
