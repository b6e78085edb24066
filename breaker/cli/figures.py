"""The cache, waste, routing and what-if figures of ``breaker report``, from call records alone.

The ledger keeps every call's usage, its cost as billed, and how it went out
(``CallRecord.requested_model``, ``fingerprint``, ``flags``: see
``breaker.engine.records``). These figures re-price that usage with the prices
bundled in the package (``PriceBook``, the engine's own integer rates), each
request on its own (tiers apply per request), so they are exact in the same
nano-dollars as the bill. A call whose model the bundled prices do not know (one
priced with ``Breaker(prices=...)``) cannot be re-priced here: it adds nothing
to these figures and is counted in ``unrepriced_calls``.

Definitions, per call, summed per group:

* **cache_savings**: what the call would have cost with its cache reads and writes
  billed as plain input, minus what it cost: the saving net of the cache-write
  premium (Anthropic bills writes at 1.25×). ``cache_hit_rate`` is cache reads
  over all input tokens.
* **resent context**: the missed opportunity. A call *re-sends a prefix* when the
  estimator proved it extends an earlier request of its conversation with the same
  model, system prompt and tools (flag ``extends``). Its prefix is taken as the input
  of the session's previous call to the same model and provider, sent within the
  provider's cache lifetime (``CACHE_LIFETIME``, 5 minutes: the shortest default
  lifetime, OpenAI's and Anthropic's) and long enough to be cached at all
  (``MIN_CACHED_PREFIX``, 1,024 tokens, both providers' minimum). What of that prefix
  was neither read from nor written to the cache is ``resent_context_tokens``;
  ``resent_context_usd`` is what those tokens cost, and ``resent_context_saving_usd``
  what reading them from the cache would have saved at the model's cache-read price.
  (A session that interleaves two conversations with one model may pair a call with
  the other conversation's previous call; the figure never exceeds the call's own
  uncached input.)
* **retry_usd**: spend on calls that failed, plus on re-sends of a request already
  sent in the session (the same fingerprint) after it failed or after it was answered:
  an agent that asks again paid for an answer it did not use. The first successful
  attempt after failures is the call that was needed, and is not counted.
* **loop_usd**: spend on calls a loop detector flagged before they were sent, sent
  because its action was warn or degrade (flag ``loop:<signal>``).
* **reasoning_usd**: what the call's reasoning tokens cost (its output priced with
  and without them).
* **history growth**: per session with at least ``GROWTH_MIN_CALLS`` answered calls,
  the input added per call from the first to the last; a session *grows* when its
  input rose from at least half of its calls to the next and ended above where it began. A history resent every turn makes a
  conversation's cost grow with the square of its length.
* **routing**: for calls a route rule sent elsewhere (flag ``routed``), their cost
  as sent and what the requested model would have cost for the same usage.
* **what-if**: the recorded usage re-priced under a model map
  (``--what-if gpt-4o=gpt-4o-mini``). Prices only: another model's tokenizer,
  answers and quality are not modelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from ..errors import UsageError
from ..ledgers.base import CallRecord
from ..pricing import Price, PriceBook
from ..usage import Usage
from ._common import CliError

__all__ = [
    "CACHE_LIFETIME", "GROWTH_MIN_CALLS", "MIN_CACHED_PREFIX", "Fixed", "Repricer", "Sessions", "flags_of",
    "parse_what_if",
]

CACHE_LIFETIME = 300.0
"""Seconds a provider keeps a prompt prefix cached (the shortest default: OpenAI 5–10 minutes idle,
Anthropic 5 minutes)."""
MIN_CACHED_PREFIX = 1024
"""The fewest prompt tokens OpenAI and Anthropic cache."""
GROWTH_MIN_CALLS = 3
_MEMO_MAX = 200_000
_FAILED = ("error", "partial")


def flags_of(r: CallRecord) -> frozenset[str]:
    """A record's flags as a set (``"routed"``, ``"extends"``, ``"loop:identical"``…)."""
    return frozenset(r.flags.split(",")) if r.flags else frozenset()


def parse_what_if(specs: list[str] | None, book: PriceBook) -> dict[str, str]:
    """``--what-if gpt-4o=gpt-4o-mini`` (repeatable, or comma-separated) as a model map.

    Every target must have a price: a typo'd name would otherwise re-price to nothing.
    """
    out: dict[str, str] = {}
    for spec in specs or ():
        for part in spec.split(","):
            source, sep, target = (s.strip() for s in part.partition("="))
            if not sep or not source or not target:
                raise CliError(f"--what-if {spec!r}: write FROM=TO model pairs, e.g. --what-if gpt-4o=gpt-4o-mini "
                               f"(several: --what-if gpt-4o=gpt-4o-mini,claude-sonnet-4-5=claude-haiku-4-5)")
            if book.lookup(target) is None:
                from ..checks import similar_models

                close = similar_models(target)
                mean = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
                raise CliError(f"--what-if {part.strip()!r}: no price is known for {target!r}{mean} "
                               f"(see `breaker prices MODEL`)")
            out[source] = target
    return out


@dataclass(slots=True)
class Fixed:
    """A record's figures that need no other record (nano-USD)."""

    unrepriced: bool = False  # it needed re-pricing (cache, reasoning, routing, what-if) and its price is unknown here
    cache_savings: int = 0
    reasoning: int = 0
    loop: str | None = None  # the loop signal it was sent past
    routed: bool = False
    requested: int | None = None  # a routed call's cost at the requested model
    what_if: int | None = None  # its cost under the what-if map, when its model is mapped
    extends: bool = False


_NOTHING = Fixed()


class Repricer:
    """Records re-priced with the bundled prices, each record once (memoized by identity)."""

    def __init__(self, what_if: Mapping[str, str] | None = None, book: PriceBook | None = None) -> None:
        self.book = book or PriceBook()
        self.what_if = dict(what_if or {})
        self._prices: dict[tuple[str, str | None, str | None], Price | None] = {}
        self._memo: dict[int, tuple[CallRecord, Fixed]] = {}

    def price(self, model: str, provider: str | None, variant: str | None = None) -> Price | None:
        """The price a record was billed at: its model at its provider, in its price variant."""
        key = (model, provider, variant)
        try:
            return self._prices[key]
        except KeyError:
            pass
        price: Price | None = None
        try:
            price = self.book.lookup(model, provider)
            if price is not None and variant is not None:
                price = next((p for p in self.book.variants(model, provider) if p.variant == variant), price)
        except Exception:  # a name genai-prices chokes on: no price, like any unknown model
            price = None
        self._prices[key] = price
        return price

    def fixed(self, r: CallRecord) -> Fixed:
        hit = self._memo.get(id(r))
        if hit is not None and hit[0] is r:
            return hit[1]
        fx = self._fixed(r)
        if len(self._memo) >= _MEMO_MAX:
            self._memo.clear()
        self._memo[id(r)] = (r, fx)
        return fx

    def _fixed(self, r: CallRecord) -> Fixed:
        flags = flags_of(r)
        target = self.what_if.get(r.model)
        if r.outcome == "refused" or (not flags and target is None and not r.cache_read_tokens
                                      and not r.cache_write_tokens and not r.reasoning_tokens):
            return _NOTHING  # the usual call: nothing to re-price
        fx = Fixed(extends="extends" in flags, routed="routed" in flags)
        fx.loop = next((f[5:] for f in flags if f.startswith("loop:")), None)
        usage = _usage(r)
        price = self.price(r.model, r.provider, r.price_variant) if r.cost_nano is not None else None
        if usage is None or price is None:
            fx.unrepriced = r.cost_nano is not None  # an unpriced call is unpriced everywhere, not just here
            return fx
        cost = price.cost(usage)
        if r.cache_read_tokens or r.cache_write_tokens:
            fx.cache_savings = price.cost(usage.replace(cache_read_tokens=0, cache_write_tokens=0)) - cost
        if r.reasoning_tokens:
            fx.reasoning = cost - price.cost(usage.replace(
                output_tokens=usage.output_tokens - usage.reasoning_tokens, reasoning_tokens=0))
        if fx.routed and r.requested_model:
            asked = self.price(r.requested_model, r.provider)
            fx.requested = asked.cost(usage) if asked is not None else None
        if target is not None and (r.input_tokens or r.output_tokens):  # a call that failed unbilled stays $0
            new = self.price(target, r.provider) or self.price(target, None)
            fx.what_if = new.cost(usage) if new is not None else None
        return fx

    def resent(self, r: CallRecord, tokens: int) -> tuple[int, int]:
        """``(cost, saving)`` of ``tokens`` uncached input of ``r``: what they cost, and what
        reading them from the cache would have saved (0 for a model without a cache price)."""
        usage = _usage(r)
        price = self.price(r.model, r.provider, r.price_variant) if r.cost_nano is not None else None
        if usage is None or price is None or tokens <= 0:
            return 0, 0
        cost = price.cost(usage)
        without = price.cost(usage.replace(input_tokens=usage.input_tokens - tokens))
        cached = price.cost(usage.replace(cache_read_tokens=usage.cache_read_tokens + tokens))
        return cost - without, max(cost - cached, 0)


def _usage(r: CallRecord) -> Usage | None:
    try:
        return Usage(r.input_tokens or 0, r.output_tokens or 0, r.cache_read_tokens or 0,
                     r.cache_write_tokens or 0, r.reasoning_tokens or 0)
    except (UsageError, TypeError):
        return None


@dataclass(slots=True)
class _Session:
    previous: dict[tuple[str, str | None], tuple[float, int]] = field(default_factory=dict)  # model -> (at, input)
    sent: dict[str, bool] = field(default_factory=dict)  # fingerprint -> answered (True) or failed only (False)
    first: int = -1
    last: int = 0
    answered: int = 0
    rises: int = 0  # answered calls whose input was larger than the one before


class Sessions:
    """What one group remembers per session while its records arrive oldest first: the
    previous call per model (resent context), the requests sent (retries), the input
    per call (history growth)."""

    __slots__ = ("by_id",)

    def __init__(self) -> None:
        self.by_id: dict[str, _Session] = {}

    def see(self, r: CallRecord, fx: Fixed) -> tuple[bool, int]:
        """``(is_retry_waste, resent_context_tokens)`` of ``r``, and remember it."""
        s = self.by_id.get(r.session)
        if s is None:
            s = self.by_id[r.session] = _Session()
        failed = r.outcome in _FAILED
        retry = failed
        fp = r.fingerprint
        if fp is not None:
            before = s.sent.get(fp)
            if before is True:  # asked again after an answer: the answer was not used
                retry = True
            s.sent[fp] = bool(before) or not failed
        resent = 0
        key = (r.model, r.provider)
        if not failed:
            prev = s.previous.get(key)
            if fx.extends and prev is not None and 0 <= r.at - prev[0] <= CACHE_LIFETIME \
                    and prev[1] >= MIN_CACHED_PREFIX:
                shared = min(prev[1], r.input_tokens)
                resent = max(shared - r.cache_read_tokens - r.cache_write_tokens, 0)
            s.previous[key] = (r.at, r.input_tokens)
            if s.first < 0:
                s.first = r.input_tokens
            elif r.input_tokens > s.last:
                s.rises += 1
            s.last = r.input_tokens
            s.answered += 1
        return retry, resent

    def growth(self) -> tuple[int, int, float | None, float | None]:
        """``(sessions measured, growing sessions, input tokens added per call on average over the
        sessions measured, and over the growing ones)``."""
        measured = growing = 0
        total = total_growing = 0.0
        for s in self.by_id.values():
            if s.answered < GROWTH_MIN_CALLS:
                continue
            measured += 1
            per_call = (s.last - s.first) / (s.answered - 1)
            total += per_call
            if s.last > s.first and 2 * s.rises >= s.answered - 1:
                growing += 1
                total_growing += per_call
        return (measured, growing, total / measured if measured else None,
                total_growing / growing if growing else None)

