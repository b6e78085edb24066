"""Engine cost per call: admit + settle with the Memory ledger, beside pricing the
same call with ``genai_prices.calc_price`` (what most tools do per call).

Run: .venv/bin/python benchmarks/bench_engine.py
"""

from __future__ import annotations

from genai_prices import Usage as GUsage
from genai_prices import calc_price

from _util import header, interleaved, row

from breaker import Breaker, Budget, Usage
from breaker.adapter import Call


def main() -> None:
    header("Engine: admit + settle per call (Memory ledger)")
    budgets = [
        Budget(usd=1e9),
        Budget(usd=1e9, per="feature", window="1h"),
        Budget(tokens=10**15, per="user", window="1d"),
    ]
    plain = Breaker(budgets=budgets, alerts=[], telemetry=False, loops=None)
    full = Breaker(budgets=budgets, alerts=[])  # loop detection and OTel (API only, no SDK) on
    call = Call("gpt-4o-mini", "openai", input_tokens=2000, max_output_tokens=1000)
    usage = Usage(1500, 800, cache_read_tokens=1000)
    gusage = GUsage(input_tokens=1500, output_tokens=800, cache_read_tokens=1000)
    distinct = iter(range(10**9))

    def engine_only() -> None:
        plain.settle(plain.admit(call), usage)

    def engine_full() -> None:
        c = Call("gpt-4o-mini", "openai", input_tokens=2000, max_output_tokens=1000, fingerprint=next(distinct))
        full.settle(full.admit(c), usage)

    def genai() -> None:
        calc_price(gusage, "gpt-4o-mini", provider_id="openai")

    with plain.session("bench", feature="f", user="u"), full.session("bench", feature="f", user="u"):
        for fn in (engine_only, engine_full, genai):
            for _ in range(500):
                fn()
        samples = interleaved({"engine": engine_only, "full": engine_full, "calc_price": genai}, calls=2000)
    row("breaker admit+settle (3 budgets)", samples["engine"], ratio_to=samples["calc_price"])
    row("  + loop detection + OTel API (no SDK)", samples["full"], ratio_to=samples["calc_price"])
    row("genai_prices.calc_price (pricing only)", samples["calc_price"])


if __name__ == "__main__":
    main()
