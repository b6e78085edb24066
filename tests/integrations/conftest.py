"""Shared pieces for the plugin tests: real frameworks, fake models, prices from genai-prices."""

from __future__ import annotations

import os
from decimal import Decimal

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # LiteLLM must never fetch its price map

import pytest  # noqa: E402
from genai_prices import Usage as GUsage, calc_price  # noqa: E402

import breaker  # noqa: E402


def genai_usd(model: str, provider: str, **usage: int) -> float:
    """What genai-prices says a call costs (the figure every plugin's settlement must match)."""
    return float(calc_price(GUsage(**usage), model, provider_id=provider).total_price)


class Events(list):
    """An alert sink that keeps every event."""

    def __call__(self, event: breaker.Event) -> None:
        self.append(event)

    def kinds(self) -> list[str]:
        return [e.kind for e in self]

    def text(self) -> str:
        return "\n".join(f"{e.message} {e.data}" for e in self)


@pytest.fixture
def events() -> Events:
    return Events()


SECRET = "PROMPT-SECRET-7f3a"
"""Put in prompts; must never appear in anything the library emits."""

__all__ = ["Decimal", "Events", "SECRET", "genai_usd"]
