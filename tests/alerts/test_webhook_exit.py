"""At interpreter exit, queued alerts get a bounded chance to leave (the one that says why a run died matters)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import sys
    from breaker import Event, alerts
    sink = alerts.Webhook(sys.argv[1], timeout=float(sys.argv[2]), attempts=1)
    for n in range(3):
        sink(Event("tripped", f"run {n} was stopped", session=f"s-{n}"))
    print("exiting")  # no flush, no close: the atexit hook does it
    """
)


def run(url: str, timeout: float, limit: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", SCRIPT, url, str(timeout)], cwd=ROOT, capture_output=True,
                          text=True, timeout=limit)


def test_queued_alerts_are_delivered_at_exit(receivers):
    r = receivers()
    done = run(r.url, 5.0)
    assert done.returncode == 0, done.stderr
    assert [q["json"]["session"] for q in r.requests] == ["s-0", "s-1", "s-2"]


def test_a_hanging_receiver_does_not_hold_the_exit(receivers):
    r = receivers(hang=True)
    # An attempt could wait 300 s; the exit budget (3 s for all webhooks) cuts it short, well within 40 s.
    done = run(r.url, 300.0, limit=40)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "exiting"
    assert r.requests == []
