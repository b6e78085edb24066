"""breaker's own work per chat call as requests get heavier: tool lists, and histories rebuilt each call.

    .venv/bin/python benchmarks/bench_requests.py [--rounds 15]

The isolated harness of ``bench_floor.py`` (a stub instead of the SDK, ``bench_overhead.isolated_stub()``,
each batch of requests built before it is timed, the bare stub timed beside it): what breaker adds
per call, as a ratio to the plain 20-message request in the same run.

Tools: OpenAI function tools (a description and a four-property JSON schema each), given
* the same list object on every call;
* rebuilt on every call: a new list and new tool dicts around the same schema objects, as frameworks
  build them from their tool objects (the OpenAI Agents SDK, pydantic-ai);
* rebuilt deeply on every call: every dict and list new, the strings shared (``copy.deepcopy``, or a
  literal built in a function);
* rebuilt from JSON on every call: every dict and string new (a service that receives the tools).

Histories of 200 messages:
* an agent step: the conversation's 199 messages and a new last one, as the same objects
  ("appended") or as new dicts with equal content, rebuilt each call ("rebuilt", and "from JSON":
  new strings too), the way a web service reloads a stored conversation;
* 512 concurrent conversations, called in turn, each call growing its conversation by a reply and a
  question: appended to the same message objects, or the whole history rebuilt (each kind's rounds
  after the other's, every conversation seen once before they are timed).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
from typing import Any, Callable

from _util import header

import bench_overhead as bo
from bench_floor import added, chat_kwargs, harness, spread

MODEL = "gpt-4o-mini"


def tool(i: int) -> dict[str, Any]:
    return {"type": "function", "function": {
        "name": f"lookup_{i}",
        "description": f"Look up records of kind {i} in the company's knowledge base and return the best matches.",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What to look for, in a few words."},
                "limit": {"type": "integer", "description": "How many matches to return.", "minimum": 1},
                "mode": {"type": "string", "enum": ["fast", "exact"], "description": "Search mode."},
                "since": {"type": ["string", "null"], "description": "ISO date of the oldest record."},
            },
            "required": ["query"],
            "additionalProperties": False,
        },
    }}


def tools_batch(tools: list[dict[str, Any]], how: str) -> Callable[[int], list[dict[str, Any]]]:
    def make(n: int) -> list[dict[str, Any]]:
        out = chat_kwargs(n)
        for kw in out:
            if how == "same":
                kw["tools"] = tools
            elif how == "rebuilt":
                kw["tools"] = [{"type": t["type"], "function": {**t["function"]}} for t in tools]
            elif how == "deep":
                kw["tools"] = copy.deepcopy(tools)
            else:
                kw["tools"] = json.loads(json.dumps(tools))
        return out

    return make


def history(tag: str, n: int) -> list[dict[str, str]]:
    """A conversation of ``n`` messages, distinct from its second message on."""
    return [bo.HISTORY[0]] + [
        {"role": "user" if i % 2 else "assistant", "content": f"{tag} step {i}: " + "words of the conversation " * 6}
        for i in range(n - 1)
    ]


def rebuild(messages: list[dict[str, Any]], how: str) -> list[dict[str, Any]]:
    if how == "appended":
        return list(messages)
    if how == "rebuilt":
        return [dict(m) for m in messages]
    return json.loads(json.dumps(messages))


def sibling_batch(base: list[dict[str, str]], how: str) -> Callable[[int], list[dict[str, Any]]]:
    counter = iter(range(10**9))

    def make(n: int) -> list[dict[str, Any]]:
        out = []
        for _ in range(n):
            msgs = rebuild(base, how)
            msgs.append({"role": "user", "content": f"next question {next(counter)}"})
            out.append({"model": MODEL, "messages": msgs, "max_tokens": 256})
        return out

    return make


def growing_batch(convs: list[list[dict[str, str]]], how: str) -> Callable[[int], list[dict[str, Any]]]:
    """Each call grows the next conversation (in turn) by a reply and a question."""
    turn = iter(range(10**9))

    def make(n: int) -> list[dict[str, Any]]:
        out = []
        for _ in range(n):
            t = next(turn)
            c = t % len(convs)
            grown = convs[c] + [{"role": "assistant", "content": f"answer {t}: " + "some words " * 8},
                                {"role": "user", "content": f"question {t}"}]
            convs[c] = grown
            out.append({"model": MODEL, "messages": rebuild(grown, how), "max_tokens": 256})
        return out

    return make


def report(title: str, out: dict[str, list[float]], base: str) -> None:
    b = statistics.median(out[base])
    print(title)
    for name, samples in out.items():
        ratio = "" if name == base else f"   {statistics.median(samples) / b:5.2f}× {base}"
        print(f"  {name:44s} {spread(samples)}{ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    header("breaker's own work per call: tools, rebuilt histories (µs added to the bare stub, median [p10 – p90])")
    guard, _, bare, guarded = harness()

    def rows(makers: dict[str, Callable[[int], list[dict[str, Any]]]], calls: int,
             interleave: bool = True) -> dict[str, list[float]]:
        """Rounds interleaved across ``makers``, or (``interleave=False``, for working sets that must
        not share the caches: 3 x 512 conversations do not fit) one maker's rounds after another's."""
        out: dict[str, list[float]] = {name: [] for name in makers}
        if interleave:
            for name, make in makers.items():  # warm the caches
                added({name: guarded}, bare, make, 1, 50)
            for _ in range(args.rounds):
                for name, make in makers.items():
                    out[name] += added({name: guarded}, bare, make, 1, calls)[name]
        else:
            for name, make in makers.items():
                added({name: guarded}, bare, make, 1, 2 * calls)  # warm: every conversation seen
                out[name] = added({name: guarded}, bare, make, args.rounds, calls)[name]
        return out

    with guard.session("requests"):
        t20, t100 = [tool(i) for i in range(20)], [tool(i) for i in range(100)]
        report(f"tools ({args.rounds} rounds x {args.calls} calls, 20-message request):", rows({
            "no tools": chat_kwargs,
            "20 tools, the same list": tools_batch(t20, "same"),
            "20 tools rebuilt per call": tools_batch(t20, "rebuilt"),
            "20 tools rebuilt deeply per call": tools_batch(t20, "deep"),
            "20 tools rebuilt from JSON per call": tools_batch(t20, "json"),
            "100 tools, the same list": tools_batch(t100, "same"),
            "100 tools rebuilt per call": tools_batch(t100, "rebuilt"),
            "100 tools rebuilt deeply per call": tools_batch(t100, "deep"),
            "100 tools rebuilt from JSON per call": tools_batch(t100, "json"),
        }, args.calls), "no tools")
        calls = max(args.calls // 4, 50)
        base = history("one", 199)
        report(f"a 200-message history, one conversation, agent steps ({args.rounds} rounds x {calls} calls):", rows({
            "appended": sibling_batch(base, "appended"),
            "rebuilt per call": sibling_batch(base, "rebuilt"),
            "rebuilt from JSON per call": sibling_batch(base, "json"),
        }, calls), "appended")
        convs = {how: [history(f"{how} {c}", 200) for c in range(512)] for how in ("appended", "rebuilt", "json")}
        report(f"512 concurrent conversations of 200+ messages, each call growing one by two messages "
               f"({args.rounds} rounds x 512 calls):", rows({
                   "appended": growing_batch(convs["appended"], "appended"),
                   "rebuilt per call": growing_batch(convs["rebuilt"], "rebuilt"),
                   "rebuilt from JSON per call": growing_batch(convs["json"], "json"),
               }, 512, interleave=False), "appended")


if __name__ == "__main__":
    main()
