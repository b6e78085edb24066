"""A shorter history for a degraded call, in each request shape, and its input bound.

Why here: trimming must know how each provider pairs a tool call with its
result (OpenAI chat ``tool_calls`` / ``role: "tool"``, Responses ``*_call`` /
``*_output`` items, Anthropic ``tool_use`` / ``tool_result`` blocks, Gemini
``function_call`` / ``function_response`` parts): that is
request-shape knowledge, which lives with the providers, not in the engine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..estimate import estimate

__all__ = ["STYLES", "trim_messages", "trimmed_bound"]

STYLES = ("openai", "openai-responses", "anthropic", "gemini")
_PINNED_ROLES = ("system", "developer")


def _get(item: Any, key: str, default: Any = None) -> Any:
    """Read a field from a dict or an SDK object (requests may mix both)."""
    if isinstance(item, Mapping):
        return item.get(key, default)
    return getattr(item, key, default)


def _links(item: Any, style: str) -> tuple[list[str], list[str]]:
    """The tool-call ids ``item`` opens and the ids it answers, in ``style``."""
    opens: list[str] = []
    answers: list[str] = []
    if style == "openai":
        role = _get(item, "role")
        if role == "assistant":
            for tc in _get(item, "tool_calls") or ():
                if _get(tc, "id") is not None:
                    opens.append(_get(tc, "id"))
        elif role in ("tool", "function"):
            answers.append(_get(item, "tool_call_id") or _get(item, "name") or "")
    elif style == "openai-responses":
        kind = _get(item, "type")
        call_id = _get(item, "call_id")
        if isinstance(kind, str) and call_id is not None:
            (answers if kind.endswith("_output") else opens).append(call_id)
    elif style == "gemini":  # function_call parts answered by function_response parts (by id, else by name)
        for part in _get(item, "parts") or ():
            if isinstance(part, str):
                continue
            call = _get(part, "function_call") or _get(part, "functionCall")
            if call is not None:
                opens.append(_get(call, "id") or _get(call, "name") or "")
            answer = _get(part, "function_response") or _get(part, "functionResponse")
            if answer is not None:
                answers.append(_get(answer, "id") or _get(answer, "name") or "")
    else:  # anthropic: tool_use / tool_result content blocks
        content = _get(item, "content")
        if isinstance(content, (list, tuple)):
            for block in content:
                kind = _get(block, "type")
                if kind in ("tool_use", "server_tool_use", "mcp_tool_use") and _get(block, "id") is not None:
                    opens.append(_get(block, "id"))
                elif kind in ("tool_result", "mcp_tool_result"):
                    answers.append(_get(block, "tool_use_id") or "")
                elif kind is None and isinstance(block, Mapping):  # Bedrock Converse: {"toolUse": {...}} blocks
                    if isinstance(block.get("toolUse"), Mapping) and block["toolUse"].get("toolUseId") is not None:
                        opens.append(block["toolUse"]["toolUseId"])
                    elif isinstance(block.get("toolResult"), Mapping):
                        answers.append(block["toolResult"].get("toolUseId") or "")
    return opens, answers


def _pinned(item: Any) -> bool:
    return _get(item, "role") in _PINNED_ROLES


def trim_messages(messages: Sequence[Any], keep_last: int, *, style: str) -> list[Any]:
    """Keep the system/developer messages and the last ``keep_last`` others, without breaking tool pairs.

    Why: a degraded call should carry a short history (agent histories grow
    quadratically in cost), but a provider rejects a request whose tool result
    has lost its tool call, so the kept window is extended *backwards* until
    every kept result has its call, and never starts with a result. Pinned
    messages stay where they were. ``style`` is the request shape:

    - ``"openai"``: chat messages; an assistant message's ``tool_calls`` are
      answered by ``role: "tool"`` messages (``tool_call_id``).
    - ``"openai-responses"``: Responses input items; ``function_call`` (or any
      ``*_call``) answered by ``function_call_output`` (``*_output``) with the
      same ``call_id``; a ``reasoning`` item stays with the item after it.
    - ``"anthropic"``: assistant ``tool_use`` blocks answered by ``tool_result``
      blocks in the next user message. The window also starts on a user turn,
      as the Messages API expects: when the cut falls on an assistant turn, the
      conversation's opening user message (the task) is kept in front of it.
      Bedrock Converse messages (``toolUse`` / ``toolResult`` blocks) use this style too.
    - ``"gemini"``: ``contents`` (``Content`` objects or dicts); a ``model`` turn's
      ``function_call`` parts answered by ``function_response`` parts (matched by
      ``id``, else by function name); the window starts on a user turn, as for Anthropic.

    Messages may be dicts or SDK objects; they are returned as they came (not
    copied), in their original order. A conversation already short enough is
    returned whole.
    """
    if style not in STYLES:
        raise ValueError(f"trim_messages(style={style!r}): use one of {STYLES}")
    if type(keep_last) is not int or keep_last < 1:
        raise ValueError(f"trim_messages(keep_last={keep_last!r}) must be a whole number of at least 1")
    if isinstance(messages, (str, bytes)):
        raise TypeError("trim_messages needs a list of messages; a plain-text input has no history to trim")
    items = list(messages)
    rest = [i for i, m in enumerate(items) if not _pinned(m)]
    if len(rest) <= keep_last:
        return items

    n = len(rest)
    last_opened: dict[str, int] = {}
    answers: list[list[str]] = []
    partner = list(range(n))  # for a result: the position of the earliest call it answers
    for pos, index in enumerate(rest):
        opens, answered = _links(items[index], style)
        for call_id in answered:  # the nearest call before it with that id (ids can repeat across turns)
            partner[pos] = min(partner[pos], last_opened.get(call_id, pos))
        for call_id in opens:
            last_opened[call_id] = pos
        answers.append(answered)
    # need[p]: the earliest position a window starting at p must reach back to
    # so that every result at or after p keeps its call.
    need = [0] * (n + 1)
    need[n] = n
    for pos in range(n - 1, -1, -1):
        need[pos] = min(need[pos + 1], partner[pos])

    def valid(p: int) -> bool:
        if answers[p] or need[p] < p:
            return False  # would start on a result, or orphan a later one
        if style == "openai-responses" and p > 0 and _get(items[rest[p - 1]], "type") == "reasoning":
            return False  # a reasoning item belongs to the item that follows it
        return True

    cut = n - keep_last
    while cut > 0 and not valid(cut):
        cut -= 1
    if cut == 0:
        return items
    kept = set(rest[cut:])
    if style in ("anthropic", "gemini") and _get(items[rest[cut]], "role") != "user":
        first = items[rest[0]]
        if _get(first, "role") == "user" and not answers[0]:
            kept.add(rest[0])
        else:  # no plain opening turn to anchor on: reach back to a user turn
            while cut > 0 and not (valid(cut) and _get(items[rest[cut]], "role") == "user"):
                cut -= 1
            if cut == 0:
                return items
            kept = set(rest[cut:])
    return [m for i, m in enumerate(items) if i in kept or _pinned(m)]


def trimmed_bound(
    model: str, messages: Sequence[Any], style: str, system: Any, tools: Any, strict: bool, n: int
) -> int:
    """The input bound of a request cut to its last ``n`` messages by ``trim_messages``
    (``Call.trimmed_input``: what a degraded call reserves).

    Computed only when a degrade actually trims, so it costs nothing on ordinary
    calls. Adapters wrap it in a closure rather than a ``functools.partial``: a
    partial's repr shows its arguments, and the messages must never reach a
    ``Call``'s repr.
    """
    return estimate(model, trim_messages(messages, n, style=style), system=system, tools=tools, strict=strict)[0]
