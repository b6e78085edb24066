"""Shared pieces for the plugin tests: real frameworks, fake models, prices from genai-prices."""

from __future__ import annotations

import os
from decimal import Decimal

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # LiteLLM must never fetch its price map

import pytest  # noqa: E402
from genai_prices import Usage as GUsage, calc_price  # noqa: E402

import breaker  # noqa: E402
import breaker.adapter  # noqa: E402


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


class Recording(breaker.Breaker):
    """A ``Breaker`` that keeps each ``Call`` a plugin admits, with its input bound as admitted."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.admitted: list[tuple[breaker.adapter.Call, int]] = []

    def admit(self, call, session=None):
        self.admitted.append((call, call.input_tokens))
        return super().admit(call, session)

    async def admit_async(self, call, session=None):
        self.admitted.append((call, call.input_tokens))
        return await super().admit_async(call, session)

    def bounds(self) -> list[int]:
        return [bound for _, bound in self.admitted]


SECRET = "PROMPT-SECRET-7f3a"
"""Put in prompts; must never appear in anything the library emits."""

__all__ = ["Decimal", "Events", "Recording", "SECRET", "genai_usd"]

