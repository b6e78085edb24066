"""Scenario fixtures: the real SDKs, instrumented by ``guard.wrap``, against the loopback FakeLLM.

Every scenario counts the requests that reached FakeLLM: a refused call is
one that never arrives there.
"""

from __future__ import annotations

import pytest

from breaker.testing import FakeLLM


class Sink(list):
    """An alert sink that keeps the events."""

    def __call__(self, event):
        self.append(event)

    def of(self, kind):
        return [e for e in self if e.kind == kind]


@pytest.fixture
def fake():
    with FakeLLM() as server:
        yield server


@pytest.fixture
def sink():
    return Sink()
