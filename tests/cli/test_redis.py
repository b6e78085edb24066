"""``breaker report`` / ``forecast`` reading a shared Redis ledger (a real redis-server)."""

from __future__ import annotations

import json
import uuid

from tests.cli.conftest import assert_user_error, cli
from tests.cli.history import populate


def test_report_and_forecast_read_a_redis_ledger(redis_server):
    from breaker.ledgers import Redis

    prefix = f"cli{uuid.uuid4().hex[:8]}:"
    ledger = Redis(redis_server.url, prefix=prefix)
    try:
        truth = populate(ledger)
    finally:
        ledger.close()
    result = cli("report", "--ledger", redis_server.url, "--prefix", prefix, "--format", "json", "--by", "feature")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["totals"]["cost_nano_usd"] == truth.total
    rows = {r["key"]: r for r in data["by"]["feature"]}
    assert rows["support"]["cost_nano_usd"] == truth.cost[("feature", "support")]
    assert rows["support"]["outcomes"] == {"escalated": 1, "resolved": 1}
    result = cli("forecast", "--ledger", redis_server.url, "--prefix", prefix, "--format", "csv")
    assert result.returncode == 0 and "support" in result.stdout

    # another prefix holds nothing: a clear message, not an empty table
    assert_user_error(cli("report", "--ledger", redis_server.url, "--prefix", "nobody-here:"), "holds no call records")


def test_unreachable_redis_is_a_clear_error():
    from tests.ledgers.redis_server import free_port

    assert_user_error(cli("report", "--ledger", f"redis://127.0.0.1:{free_port()}/0"), "cannot")
