"""The input bound and the content-free fingerprint of a request, cheaply.

Why a byte count: every byte-level BPE tokenizer (OpenAI's, Anthropic's)
turns N bytes of text into at most N tokens, so the UTF-8 byte count of
every text part of a request is an upper bound on its input tokens that
needs no tokenizer and cannot be beaten by unusual text. Reserving that bound
(plus a per-message overhead for the chat template) is what lets a budget be
enforced with zero overshoot. The count is deliberately generous: dict keys
and numbers inside messages and tool schemas count too, since tool
definitions are rendered into the prompt.

Non-text parts (images, documents, audio, video) get the fixed bounds documented
in ``breaker.parts``.

``strict=False`` gives the looser estimate (a quarter of the bytes, about
what tokenizers produce for English and code). It reserves less, so more
calls fit a small budget, but it **gives up the zero-overshoot guarantee**:
a request that tokenizes worse than 4 bytes per token can cost more than was
reserved, and the settled spend may pass a limit by that difference.

Why the caches: an agent re-sends its whole history on every step, so
measuring every message on every call would cost O(steps²) over a run. Each
message is measured once and remembered by object identity (with its
``content`` checked by identity too, so a message whose content is replaced
is measured again); a conversation that grows by appending (or is rebuilt
from the same message objects) is recognised by its first two messages and
only the new tail is looked up, which makes a call O(1) amortised in Python
work (the prefix check is one C-speed list compare). A *sibling* request
(the same history with another last message) is answered from the stored
prefix sums and its last message alone, storing nothing; a plain-dict last
message is then measured afresh rather than cached. The conversation used
last is tried first, without a cache lookup. Caches are bounded (oldest
entry evicted first) and hold references to the measured objects (which
keeps ``id()`` reuse from ever matching a different object). Editing a
message that was already sent *in place* (``msg["content"] = ...`` on the
same dict) is not noticed on the recognised prefix; append new messages or
replace the message object instead, as agent loops do.

The fingerprint is Python's ``hash`` of a canonical form of model, messages
and tools: stable within a process (what loop detection needs), never text.
"""

from __future__ import annotations

import copy
import io
import json
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from .parts import DOCUMENT_PART_TOKENS, IMAGE_PART_TOKENS, converse_media, gemini_media

__all__ = [
    "DOCUMENT_PART_TOKENS",
    "IMAGE_PART_TOKENS",
    "MESSAGE_OVERHEAD",
    "REQUEST_OVERHEAD",
    "ESTIMATOR",
    "Estimator",
    "OneShot",
    "args_fingerprint",
    "estimate",
    "interned",
    "materialize",
    "measure",
]

MESSAGE_OVERHEAD = 8
"""Per message: role markers and separators of the chat template (OpenAI's is 3–4)."""

REQUEST_OVERHEAD = 16
"""Per request: reply priming and the tool-definition wrapper."""

_IMAGE_TYPES = frozenset({"image_url", "input_image", "image"})
_DOCUMENT_TYPES = frozenset({"document", "file", "input_file"})
_MAX_MESSAGES = 16_384
_MAX_CONVERSATIONS = 256


def _text_len(s: str) -> int:
    # isascii() is O(1) for CPython strings: no encode for the common case.
    return len(s) if s.isascii() else len(s.encode("utf-8", "surrogatepass"))


def measure(value: Any) -> tuple[int, int, Any]:
    """``(text_bytes, fixed_tokens, canonical)`` of one message, part, tool or system value.

    ``canonical`` is a hashable form (dicts as sorted item tuples) for fingerprints.
    """
    # Exact-type checks first: parsed JSON, messages and tool schemas are plain
    # str / dict / list, and an exact check skips the ``Mapping`` ABC check
    # (a Python-level ``__instancecheck__``) that a list would otherwise pay.
    t = type(value)
    if t is str:
        return (len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))), 0, value
    if t is dict:
        # The common message, {"role": "user", "content": "..."}: all strings, no nesting.
        # _text_len inlined: one function call per key and per value is most of the cost here.
        n = 0
        for k, v in value.items():
            if type(v) is not str or type(k) is not str:
                break
            if k.isascii() and v.isascii():
                n += len(k) + len(v)
            else:
                n += _text_len(k) + _text_len(v)
        else:
            return n, 0, tuple(sorted(value.items()))
        return _mapping(value)
    if t is list or t is tuple:
        return _sequence(value)
    if isinstance(value, str):
        return _text_len(value), 0, value
    if isinstance(value, (dict, Mapping)):
        return _mapping(value)
    if isinstance(value, (list, tuple)):
        return _sequence(value)
    if value is None or isinstance(value, bool):
        return 0, 0, value
    if isinstance(value, (int, float)):
        return len(repr(value)), 0, value
    if isinstance(value, (bytes, bytearray)):
        return len(value), 0, bytes(value)
    if isinstance(value, type):  # a class (a pydantic model given as a response format): its name
        return _text_len(value.__qualname__), 0, value.__qualname__
    if type(value).__module__.startswith("PIL."):  # an image google-genai sends as an image part
        return 0, IMAGE_PART_TOKENS, ("<image>", getattr(value, "size", None), id(value))
    dump = getattr(value, "model_dump", None)  # SDK objects passed back as messages
    if dump is not None:
        return measure(dump(exclude_none=True, mode="json"))
    if hasattr(value, "__next__") and not isinstance(value, io.IOBase):
        raise OneShot  # reading it here would leave the SDK nothing to send
    if hasattr(value, "__iter__") and not isinstance(value, io.IOBase):
        return measure(list(value))
    text = str(value)
    return _text_len(text), 0, text


class OneShot(Exception):
    """A one-shot iterator (a generator, ``iter([...])``) inside a request: measuring it
    would consume it. The caller copies the request with ``materialize`` and measures that."""


def materialize(value: Any) -> Any:
    """``value`` with every one-shot iterator inside it read into a list.

    Containers on the way to an iterator are copied; nothing of the caller's is
    changed, and everything else is the same object. The SDK serialises a list
    exactly as it would have the iterator, so the request on the wire is the same.
    """
    if type(value) is str or value is None:
        return value
    if isinstance(value, Mapping):
        items = {k: materialize(v) for k, v in value.items()}
        return items if any(items[k] is not v for k, v in value.items()) else value
    if isinstance(value, (list, tuple)):
        seq = [materialize(v) for v in value]
        if all(a is b for a, b in zip(seq, value)):
            return value
        return seq if isinstance(value, list) else tuple(seq)
    if hasattr(value, "__next__") and not isinstance(value, io.IOBase):
        return [materialize(v) for v in value]
    return value


def _mapping(value: Any) -> tuple[int, int, Any]:
    """``measure`` of a mapping that is not all strings (nested parts, images, documents)."""
    kind = value.get("type")
    if type(kind) is not str:  # a JSON schema: "type" may be a list (["string", "null"]) or a property named type
        kind = None
    elif kind in _IMAGE_TYPES:
        return 0, IMAGE_PART_TOKENS, ("<image>", _canon_plain(value))
    if "inline_data" in value or "inlineData" in value or "file_data" in value or "fileData" in value:
        return gemini_media(value)
    if len(value) == 1 and ("image" in value or "document" in value or "video" in value):
        media = converse_media(value, measure)
        if media is not None:
            return media
    n, fixed, items = 0, DOCUMENT_PART_TOKENS if kind in _DOCUMENT_TYPES else 0, []
    for k, v in value.items():
        b, f, c = measure(v)
        n += b + (_text_len(k) if isinstance(k, str) else 0)
        fixed += f
        items.append((k, c))
    items.sort(key=_first)
    return n, fixed, tuple(items)


def _sequence(value: Any) -> tuple[int, int, Any]:
    n = fixed = 0
    items = []
    for v in value:
        b, f, c = measure(v)
        n += b
        fixed += f
        items.append(c)
    return n, fixed, tuple(items)


def _first(item: tuple[Any, Any]) -> str:
    return str(item[0])


def _canon_plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted(((str(k), _canon_plain(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return tuple(_canon_plain(v) for v in value)
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def _figures(m: Any) -> tuple[int, int, int]:
    """``(text_bytes, fixed_tokens, hash(canonical))`` of one message, uncached.

    The plain ``{"role": ..., "content": ...}`` dict of strings (most
    messages) is done inline, without ``measure``'s loop and sort: its
    canonical form is known to be ``(("content", c), ("role", r))`` (keys
    sorted), so the hash is the one ``measure`` would give, and a message has
    one fingerprint whichever way it was measured. (``Estimator.estimate``
    repeats these lines inline for a sibling request's last message.)
    """
    if type(m) is dict and len(m) == 2:
        role = m.get("role")
        content = m.get("content")
        if type(role) is str and type(content) is str:  # two keys, both present: exactly these two
            if role.isascii() and content.isascii():
                b = 11 + len(role) + len(content)  # 11: len("role") + len("content")
            else:
                b = 11 + _text_len(role) + _text_len(content)
            return b, 0, hash((("content", content), ("role", role)))
    b, f, c = measure(m)
    return b, f, hash(c)


_START: list[tuple[int, int, int]] = [(0, 0, 0)]
_State = tuple[list[Any], Any, list[tuple[int, int, int]], tuple[int, int]]
"""A conversation: (messages before the last, last message, prefix sums, its cache key)."""
_MAX_ASKED = 4_096  # requests whose usage may still be learned (oldest forgotten first)
"""Prefix sums of no messages. Never mutated: a conversation's sums are always a new list."""

_NO_MESSAGE = object()  # the "last message" of the empty starting state: never any request's message


class Estimator:
    """Measures requests with bounded caches. Thread-safe; one per process is enough.

    No locks: every cache update is a single ``OrderedDict`` operation or
    attribute store (atomic under the GIL), and a conversation's state is a
    tuple ``(messages before the last, last message, prefix sums)`` that is
    replaced as one and never mutated, so concurrent callers never see a
    message list paired with another list's sums. A race can only cost a
    recount or evict an entry early. (A lock around the updates cost more,
    on every call, than the recounts it would save.)
    """

    def __init__(self) -> None:
        self._messages: OrderedDict[int, tuple[Any, Any, int, int, int]] = OrderedDict()
        # (id of first message, id of second) -> (messages before the last, last message,
        #   [(text bytes, fixed tokens, chained hash) of the first i messages, for i in 0..count], the key)
        self._conversations: OrderedDict[tuple[int, int], _State] = OrderedDict()
        # The conversation state used last: checked first by ``estimate`` (no key to build, no lookup).
        self._recent: _State = ([], _NO_MESSAGE, _START, (0, 0))
        self._objects: OrderedDict[int, tuple[Any, int, int, int, int]] = OrderedDict()
        # The history bound (``bounds``): what was asked, by request fingerprint, until its usage is
        # learned; then, per conversation, the longest prefix whose input the provider reported.
        self._asked: OrderedDict[int, tuple[tuple[int, int], int, int, int, int, int]] = OrderedDict()
        # Keyed like conversations, by the ids of the first two messages (0 for a one-message request,
        # whose continuation is looked up under that key too).
        self._learned: OrderedDict[tuple[int, int], tuple[int, int, int, int, int, int]] = OrderedDict()

    # one message: (ref, content ref, bytes, fixed tokens, hash)
    def _message(self, m: Any) -> tuple[int, int, int]:
        key = id(m)
        content = m.get("content") if isinstance(m, dict) else getattr(m, "content", None)
        hit = self._messages.get(key)
        if hit is not None and hit[0] is m and hit[1] is content:
            return hit[2], hit[3], hit[4]
        b, f, h = _figures(m)
        cache = self._messages
        cache[key] = (m, content, b, f, h)
        if len(cache) > _MAX_MESSAGES:
            cache.popitem(last=False)
        return b, f, h

    def _object(self, obj: Any) -> tuple[int, int, int]:
        """Tools, system prompts: measured once per object."""
        if isinstance(obj, str):
            return _text_len(obj), 0, hash(obj)
        key = id(obj)
        hit = self._objects.get(key)
        if hit is not None and hit[0] is obj and (not isinstance(obj, list) or hit[1] == len(obj)):
            return hit[2], hit[3], hit[4]
        b, f, c = measure(obj)
        h = hash(c)
        cache = self._objects
        cache[key] = (obj, len(obj) if isinstance(obj, list) else 0, b, f, h)
        if len(cache) > _MAX_CONVERSATIONS:
            cache.popitem(last=False)
        return b, f, h

    def _messages_state(self, messages: Sequence[Any]) -> tuple[int, int, int, int, _State | None]:
        """``(text_bytes, fixed_tokens, prefix_hash, count, state)`` of a message list; ``state`` is
        the conversation whose prefix sums cover every message but possibly the last.

        The conversation seen last with the same first two messages is reused
        up to the longest prefix of identical message objects (a C-speed list
        compare); only messages past it are looked up (by identity, with a
        content identity check) or measured, and the grown conversation is
        stored in its place.

        A *sibling* request (the stored messages but the last, then another
        last message: an agent step, a retry with a rewritten prompt) is
        answered from the stored prefix sums plus its last message, storing
        nothing: no copies, no cache churn, and the stored conversation stays
        the one its continuations grow from. Its last message, when a plain
        dict, is measured afresh rather than cached (cheaper than a cache
        insert and eviction); other message types go through the cache.
        """
        items = messages if type(messages) is list else list(messages)
        n = len(items)
        if n == 0:
            return 0, 0, 0, 0, None
        key = (id(items[0]), id(items[1]) if n > 1 else 0)
        state = self._conversations.get(key)
        if state is None:
            k, sums = 0, _START
        else:
            head, last, sums, _ = state
            k = len(head)
            if k <= n and items[:k] == head:
                self._recent = state
                if k == n:  # the stored conversation less its last message
                    size, fix, h = sums[k]
                    return size, fix, h, n, state
                m = items[k]
                if m is last:
                    k += 1
                    if k == n:  # the stored conversation again
                        size, fix, h = sums[k]
                        return size, fix, h, n, state
                elif k + 1 == n:  # a sibling: answered from the sums, nothing stored
                    size, fix, h = sums[k]
                    b, f, mh = _figures(m) if type(m) is dict else self._message(m)
                    return size + b, fix + f, hash((h, mh)), n, state
            else:  # the history was edited (trimmed, rewritten): find the common prefix
                limit = min(k, n)
                k = 0
                while k < limit and items[k] is head[k]:
                    k += 1
        size, fix, h = sums[k]
        grown = []
        for m in items[k:] if k else items:
            b, f, mh = self._message(m)
            size += b
            fix += f
            h = hash((h, mh))
            grown.append((size, fix, h))
        # Concatenation builds the new sums in one allocation (no slice when the stored sums all still hold).
        state = (items[:-1], items[-1], (sums if len(sums) == k + 1 else sums[: k + 1]) + grown, key)
        conversations = self._conversations
        conversations.pop(key, None)  # re-inserted last: least recently grown goes first
        conversations[key] = state
        if len(conversations) > _MAX_CONVERSATIONS:
            conversations.popitem(last=False)
        self._recent = state
        return size, fix, h, n, state

    def estimate(
        self,
        model: str,
        messages: Sequence[Any] | None,
        *,
        system: Any = None,
        tools: Any = None,
        strict: bool = True,
    ) -> tuple[int, int, int]:
        """``(input_token_bound, fingerprint, message_count)`` of one request, from its bytes alone."""
        bound, _, fp, n = self.bounds(model, messages, system=system, tools=tools, strict=strict, history=False)
        return bound, fp, n

    def bounds(
        self,
        model: str,
        messages: Sequence[Any] | None,
        *,
        system: Any = None,
        tools: Any = None,
        strict: bool = True,
        history: bool = True,
        extra: Any = None,
    ) -> tuple[int, int, int, int]:
        """``(input_bound, bytes_bound, fingerprint, message_count)`` of one request.

        ``extra`` (hashable) is folded into the fingerprint: request parameters that make two
        requests with the same messages different requests (``previous_response_id``,
        ``tool_choice``), so that loop detection does not take them for a repeat.

        ``bytes_bound`` is the byte-count bound of the module docstring. ``input_bound``
        is at most that, and tighter once the provider has reported the input of an
        earlier request this one extends (``learn``): then it is that report plus the
        byte-count bound of what was appended since. Why that is an upper bound: the
        earlier request is a prefix of this one, with the same model, system prompt and
        tools (checked by content hash), and chat formats tokenize each message on its
        own between the template's special tokens, so the prefix costs what it cost
        then; the appended messages cost at most their bytes plus the per-message
        overhead, the same bound as always (3-4x their real count for English, which
        also covers any merge at a message boundary). Agents append: every step but
        the first is priced from the provider's own count.
        """
        # Fast path, inline (it runs on every call): the conversation used last,
        # asked again or as a sibling (same messages but the last). The prefix
        # compare is what proves it is the same conversation, so no key is
        # needed; anything else goes through _messages_state().
        state: _State | None = self._recent
        head, last, sums, _ = state  # type: ignore[misc]
        k = len(head)
        if type(messages) is list and len(messages) == k + 1 and messages[:k] == head:
            m = messages[k]
            if m is last:
                size, fix, h = sums[k + 1]
            else:
                size, fix, h = sums[k]
                if (
                    type(m) is dict and len(m) == 2
                    and type(role := m.get("role")) is str and type(content := m.get("content")) is str
                ):  # _figures(m), inline
                    if role.isascii() and content.isascii():
                        size += 11 + len(role) + len(content)
                    else:
                        size += 11 + _text_len(role) + _text_len(content)
                    h = hash((h, hash((("content", content), ("role", role)))))
                else:
                    b, f, mh = _figures(m) if type(m) is dict else self._message(m)
                    size += b
                    fix += f
                    h = hash((h, mh))
            n = k + 1
        elif messages:
            size, fix, h, n, state = self._messages_state(messages)
        else:
            size = fix = h = n = 0
            state = None
        msg_size, msg_fix, msg_h, msg_n = size, fix, h, n
        sh = th = 0
        if system is not None:
            b, f, sh = self._object(system)
            size += b
            fix += f
            h = hash((h, sh))
            n += 1
        if tools:
            b, f, th = self._object(tools)
            size += b
            fix += f
            h = hash((h, th))
        if not strict:
            size = -(-size // 4)
        bound = size + fix + MESSAGE_OVERHEAD * n + REQUEST_OVERHEAD
        fp = hash((model, h)) if extra is None else hash((model, h, extra))
        if not history or state is None:
            return bound, bound, fp, n
        first = id(messages[0])  # type: ignore[index]  # messages is a non-empty sequence here
        key = (first, id(messages[1]) if msg_n > 1 else 0)  # type: ignore[index]
        ctx = hash((model, sh, th))
        asked = self._asked
        asked[fp] = (key, msg_n, ctx, msg_size, msg_fix, msg_h)
        if len(asked) > _MAX_ASKED:
            asked.popitem(last=False)
        learned = self._learned.get(key)
        if learned is None and msg_n > 1:  # the continuation of a one-message request
            learned = self._learned.get((first, 0))
        if learned is not None:
            l_n, l_ctx, tokens, l_size, l_fix, l_h = learned
            if l_ctx == ctx and l_n <= msg_n and (msg_h if l_n == msg_n else state[2][l_n][2]) == l_h:
                appended = msg_size - l_size
                if not strict:
                    appended = -(-appended // 4)
                tight = tokens + appended + (msg_fix - l_fix) + MESSAGE_OVERHEAD * (msg_n - l_n)
                if tight < bound:
                    return tight, bound, fp, n
        return bound, bound, fp, n

    def learn(self, fingerprint: Any, input_tokens: int) -> None:
        """The provider reported ``input_tokens`` for the request with this fingerprint (from
        ``bounds``): later requests that extend it are bounded from that report."""
        asked = self._asked.pop(fingerprint, None)
        if asked is None or type(input_tokens) is not int or input_tokens < 0:
            return
        key, n, ctx, size, fix, h = asked
        learned = self._learned
        known = learned.get(key)
        if known is not None and known[0] > n and known[1] == ctx:
            return  # a longer prefix of this conversation is known already (a late sibling's report)
        learned.pop(key, None)  # re-inserted last: the least recently learned goes first
        learned[key] = (n, ctx, input_tokens, size, fix, h)
        if len(learned) > _MAX_CONVERSATIONS:
            learned.popitem(last=False)


class _NotPlain(Exception):
    pass


def _content_key(value: Any) -> Any:
    """A hashable key of a JSON-plain value (type-tagged, so ``1``, ``1.0`` and ``True`` differ)."""
    t = type(value)
    if t is str:
        return value
    if t is dict:
        if not all(type(k) is str for k in value):
            raise _NotPlain
        return (dict, *[(k, _content_key(v)) for k, v in value.items()])
    if t is list:
        return (list, *[_content_key(v) for v in value])
    if value is None or t is int or t is float or t is bool:
        return (t, value)
    raise _NotPlain


_INTERNED: dict[Any, Any] = {}
_MAX_INTERNED = 16_384


def interned(items: Any) -> Any:
    """``items`` with each plain message dict replaced by one private copy per content.

    Frameworks that rebuild the message dicts of a conversation on every call
    (LiteLLM, the OpenAI Agents SDK) defeat ``ESTIMATOR``, which follows a
    conversation by the identity of its messages (to measure only what was
    appended, and to bound it from the provider's reported input of the request it
    extends): equal messages become the same object here. Give the result to the
    estimator only; the copy is breaker's own, so nothing the framework later does
    to its dicts changes it. Other items pass as they are.
    """
    if type(items) is not list:
        return items
    table = _INTERNED
    out = []
    for m in items:
        if type(m) is not dict:
            out.append(m)
            continue
        try:
            key = _content_key(m)
        except _NotPlain:
            out.append(m)
            continue
        hit = table.get(key)
        if hit is None:
            hit = table[key] = copy.deepcopy(m)
            if len(table) > _MAX_INTERNED:  # oldest first (dicts keep insertion order)
                table.pop(next(iter(table)), None)
        out.append(hit)
    return out



ESTIMATOR = Estimator()
"""The process-wide estimator: adapters call ``ESTIMATOR.estimate`` directly on the hot path."""


def estimate(
    model: str, messages: Sequence[Any] | None, *, system: Any = None, tools: Any = None, strict: bool = True
) -> tuple[int, int, int]:
    """``(input_token_bound, fingerprint, message_count)`` using the process-wide caches.

    ``strict=True`` (default) is an upper bound on input tokens; ``strict=False``
    is the looser estimate that gives up the zero-overshoot guarantee.
    """
    return ESTIMATOR.estimate(model, messages, system=system, tools=tools, strict=strict)


def args_fingerprint(arguments: Any) -> str:
    """A short hex digest of tool-call arguments (a JSON string or an already-parsed value).

    The loop detector counts repeats of ``(tool name, arguments fingerprint)``;
    it must see the same fingerprint for the same arguments however the model
    spaced or ordered its JSON, and never the arguments themselves.
    """
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            return format(hash(arguments) & 0xFFFFFFFFFFFFFFFF, "016x")
    return format(hash(measure(arguments)[2]) & 0xFFFFFFFFFFFFFFFF, "016x")
