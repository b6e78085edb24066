from __future__ import annotations

import pytest

from breaker.alerts.webhook import Webhook

from .receiver import Receiver


@pytest.fixture
def receivers():
    """Make loopback receivers; all are shut down after the test."""
    made: list[Receiver] = []

    def make(*args, **kw) -> Receiver:
        r = Receiver(*args, **kw)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


@pytest.fixture
def webhooks():
    """Make Webhook sinks with fast retries; all are closed after the test."""
    made: list[Webhook] = []

    def make(url: str, **kw) -> Webhook:
        kw.setdefault("backoff", 0.01)
        kw.setdefault("max_backoff", 0.05)
        kw.setdefault("timeout", 2.0)
        sink = Webhook(url, **kw)
        made.append(sink)
        return sink

    yield make
    for sink in made:
        sink.close(timeout=1.0)
