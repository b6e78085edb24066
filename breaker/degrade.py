"""What "degrade" does to a request: the ladder, as data.

The engine decides *when* (a budget past ``degrade_at``, a budget that
cannot pay for the full call with ``on_exceed="degrade"``, or a loop detector
whose action is ``degrade``); this object says *what*; the provider adapter
applies it to the request shape it knows, with the two pure helpers below for
the rungs that depend on that shape: ``trim_messages`` (a shorter history
that still pairs every tool call with its result) and ``thinking_budget_for``
(Anthropic's thinking budget under a reasoning effort).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from .call import Call, Patch
from .errors import ConfigError

__all__ = ["Degrade", "thinking_budget_for", "trim_messages"]

_EFFORTS = ("minimal", "low", "medium", "high", "none")


@dataclass(frozen=True)
class Degrade:
    """How to make a call cheaper.

    Args:
        model_map: model to switch to, by requested model (``{"gpt-5": "gpt-5-mini"}``).
        max_output_tokens: cap output at this many tokens.
        reasoning_effort: OpenAI ``reasoning_effort`` / ``reasoning.effort``; for
            Anthropic, the extended-thinking budget is scaled down to match
            (``thinking_budget_for``).
        keep_last_messages: keep system messages and the last N messages, never
            separating a tool call from its result (``trim_messages``).
        hook: ``hook(request_kwargs) -> request_kwargs`` for anything else.
    """

    model_map: Mapping[str, str] | None = None
    max_output_tokens: int | None = None
    reasoning_effort: str | None = None
    keep_last_messages: int | None = None
    hook: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        if self.model_map is not None and (
            not isinstance(self.model_map, Mapping)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in self.model_map.items())
        ):
            raise ConfigError(f"Degrade(model_map={self.model_map!r}) must map model names to model names")
        for name in ("max_output_tokens", "keep_last_messages"):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value < 1):
                raise ConfigError(f"Degrade({name}={value!r}) must be a whole number of at least 1")
        if self.reasoning_effort is not None and self.reasoning_effort not in _EFFORTS:
            raise ConfigError(f"Degrade(reasoning_effort={self.reasoning_effort!r}): use one of {_EFFORTS}")
        if self.hook is not None and not callable(self.hook):
            raise ConfigError("Degrade(hook=...) must be a function taking and returning the request kwargs")

    def patch(self, call: Call) -> Patch:
        """The patch that degrades ``call``."""
        model = (self.model_map or {}).get(call.model)
        return Patch(
            model=model if model and model != call.model else None,
            max_output_tokens=self.max_output_tokens,
            reasoning_effort=self.reasoning_effort,
            keep_last_messages=self.keep_last_messages,
            hook=self.hook,
        )


# --------------------------------------------------------------------------- trimming
_STYLES = ("openai", "openai-responses", "anthropic")
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
    else:  # anthropic: tool_use / tool_result content blocks
        content = _get(item, "content")
        if isinstance(content, (list, tuple)):
            for block in content:
                kind = _get(block, "type")
                if kind in ("tool_use", "server_tool_use", "mcp_tool_use") and _get(block, "id") is not None:
                    opens.append(_get(block, "id"))
                elif kind in ("tool_result", "mcp_tool_result"):
                    answers.append(_get(block, "tool_use_id") or "")
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

    Messages may be dicts or SDK objects; they are returned as they came (not
    copied), in their original order. A conversation already short enough is
    returned whole.
    """
    if style not in _STYLES:
        raise ValueError(f"trim_messages(style={style!r}): use one of {_STYLES}")
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
    if style == "anthropic" and _get(items[rest[cut]], "role") != "user":
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


# --------------------------------------------------------------------------- thinking
_THINKING_MIN = 1024  # Anthropic's smallest extended-thinking budget
_THINKING_SHARE = {"high": 1.0, "medium": 0.5, "low": 0.25}


def thinking_budget_for(effort: str, current: int, *, max_tokens: int | None = None) -> int | None:
    """The Anthropic ``thinking.budget_tokens`` a degraded call should use, or ``None`` to turn thinking off.

    Why: Anthropic has no ``reasoning_effort``; thinking tokens are billed as
    output, so degrading means shrinking the budget the caller set. ``high``
    keeps it, ``medium`` halves it, ``low`` quarters it, ``minimal`` and
    ``none`` turn thinking off. Never raises the caller's budget; never goes
    under the API's minimum of 1024 (below that, thinking is off); and stays
    under ``max_tokens`` when given, as the API requires.
    """
    if effort not in _EFFORTS:
        raise ValueError(f"thinking_budget_for(effort={effort!r}): use one of {_EFFORTS}")
    share = _THINKING_SHARE.get(effort)
    if share is None or current < _THINKING_MIN:
        return None
    budget = max(_THINKING_MIN, int(current * share))
    budget = min(budget, current)
    if max_tokens is not None:
        if max_tokens <= _THINKING_MIN:
            return None
        budget = min(budget, max_tokens - 1)
    return budget
