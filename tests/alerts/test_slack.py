"""The Slack rendering: the ``text`` alone must read well (notifications show only it)."""

from __future__ import annotations

from breaker import Event
from breaker.alerts.slack import slack_message
from breaker.events import EVENT_KINDS


def test_every_kind_has_a_headline_and_the_message():
    for kind in EVENT_KINDS:
        msg = slack_message(Event(kind, f"something about {kind}"))
        assert msg["text"].startswith(":") and f"something about {kind}" in msg["text"]
        assert msg["blocks"][0]["text"]["type"] == "mrkdwn"
        assert len(msg["blocks"]) == 1  # no attribution, no context block


def test_attribution_and_money_go_in_the_context():
    msg = slack_message(Event("threshold", "80% spent", session="t-1", feature="support", user="acme",
                              spent_usd=1.6, limit_usd=2.0, fraction=0.8))
    context = [e["text"] for e in msg["blocks"][1]["elements"]]
    assert context == ["session `t-1`", "feature `support`", "user `acme`", "spent $1.6000 of $2.00 (80%)"]
    assert msg["text"] == (":warning: *Budget threshold reached*: 80% spent\n"
                           "session `t-1` · feature `support` · user `acme` · spent $1.6000 of $2.00 (80%)")


def test_token_budgets_show_the_fraction():
    msg = slack_message(Event("threshold", "half the tokens", fraction=0.5))
    assert "50% of the budget" in msg["text"]
