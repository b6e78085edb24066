"""The input bound and the content-free fingerprint of a request, cheaply.

Why a byte count: every byte-level BPE tokenizer (OpenAI's, Anthropic's)
turns N bytes of text into at most N tokens, so the UTF-8 byte count of
every text part of a request is an upper bound on its input tokens that
needs no tokenizer and cannot be beaten by unusual text. Reserving that bound
(plus a per-message overhead for the chat template) is what lets a budget be
enforced with zero overshoot. The count is deliberately generous: dict keys
and numbers inside messages and tool schemas count too, since tool
definitions are rendered into the prompt. (``breaker.sizing`` measures one
value; this module keeps the caches.)

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
is measured again). A conversation is stored with the prefix sums of its
messages, under a key made of the content hashes of its first two messages,
so a history that grows by appending, or that is rebuilt on every call with
new dicts of equal content (a web service reloading a stored conversation),
finds its stored prefix: one C-speed list compare (identity, else equality)
proves it, and only the new tail is measured, which makes a call O(1)
amortised in Python work. Conversations sharing their first two messages
share a key, and each key keeps a few of them. A *sibling* request (the
same history with another last message) is answered from the stored prefix
sums and its last message alone, storing nothing; a plain-dict last message
is then measured afresh rather than cached. The conversation used last is
tried first, without a key. Caches are bounded (oldest entry evicted first;
stored conversations also by the messages they hold) and hold references to
the measured objects (which keeps ``id()`` reuse from ever matching a
different object). Editing a message that was already sent *in place*
(``msg["content"] = ...`` on the same dict) is not noticed on the recognised
prefix; append new messages or replace the message object instead, as agent
loops do.

Tool lists and system values are remembered by identity and, when a list is
rebuilt on every call (frameworks build the tool list per call from their tool
objects), by value: a cheap structural key (the list's length and its first and
last tools' names) finds the stored list, and ``==`` proves it is the same.
Their tool names (``names``) are kept with them. As with messages, a tool
list edited in place (a description changed on the same dict) is not noticed.

Equality treats ``1``, ``1.0`` and ``True`` alike: a rebuilt value found equal
to a stored one is given the stored one's byte count, which can differ only by
how such numbers are spelled, a few bytes against a bound that already counts
every key and value of the request.

The fingerprint is Python's ``hash`` of a canonical form of model, messages
and tools: stable within a process (what loop detection needs), never text.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Callable

from .parts import DOCUMENT_PART_TOKENS, IMAGE_PART_TOKENS
from .sizing import OneShot, _figures, _text_len, interned, materialize, measure

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

_MAX_MESSAGES = 16_384
_MAX_CONVERSATIONS = 4_096  # keys of stored conversations (and of learned bounds)
_MAX_STORED = 1 << 18  # messages the stored conversations hold, all together (about 130 bytes each)
_BUCKET = 4  # conversations kept per key (sharing their first two messages), most recent first
_MAX_OBJECTS = 256  # tool lists and system values, by identity and by value
_MAX_ASKED = 4_096  # requests whose usage may still be learned (oldest forgotten first)

_START: list[tuple[int, int, int]] = [(0, 0, 0)]
"""Prefix sums of no messages. Never mutated: a conversation grown from it gets a new list."""
_State = tuple[list[Any], Any, list[tuple[int, int, int]], tuple[int, int], int]
"""A conversation: (messages before the last, last message, prefix sums, its cache key, the number of
messages before the last). The two lists may run past that number: they are shared, append-only, with
the later states of the same conversation (``Estimator._store``); a state reads only its own part."""
_Learned = tuple[int, int, int, int, int, int, int]
"""A provider's report: (messages, context hash, input tokens, text bytes, fixed tokens, chained hash,
the chained hash of its messages but the last)."""

_NO_MESSAGE = object()  # the "last message" of the empty starting state: never any request's message


def _shape(item: Any) -> Any:
    """A tool's (or system block's) name for the structural key of a rebuilt list; ``None`` if none."""
    if type(item) is dict:
        fn = item.get("function")
        name = fn.get("name") if type(fn) is dict else item.get("name")
        return name if type(name) is str else None
    return type(item)


def _weight(bucket: tuple[_State, ...]) -> int:
    return sum(state[4] + 1 for state in bucket)


_NO_HEAD: list[Any] = []  # a head no state has: never extended (``_store`` copies when given it)


class Estimator:
    """Measures requests with bounded caches. Thread-safe; one per process is enough.

    Lookups take no lock: every cache read is a single ``OrderedDict``
    operation or attribute read (atomic under the GIL), and a conversation's
    state is a tuple ``(messages before the last, last message, prefix sums,
    key, count)`` replaced as one, whose lists only ever grow past what any
    state reads, so concurrent callers never see a message list paired with
    another list's sums. Storing a grown conversation takes a lock (to extend
    its lists only while no other state has, and to count the messages
    stored); elsewhere a race can only cost a recount or evict an entry early.
    """

    def __init__(self) -> None:
        self._messages: OrderedDict[int, tuple[Any, Any, int, int, int]] = OrderedDict()
        # (chained hash of the first message, of the first two; 0 for a one-message request) ->
        #   the conversations with those first messages, most recent first; each holds
        #   [(text bytes, fixed tokens, chained hash) of the first i messages, for i in 0..count].
        self._conversations: OrderedDict[tuple[int, int], tuple[_State, ...]] = OrderedDict()
        self._stored = 0  # messages held by the stored conversations (under _lock)
        self._lock = threading.Lock()
        # The conversation state used last: checked first by ``bounds`` (no key to build, no lookup).
        self._recent: _State = ([], _NO_MESSAGE, _START, (0, 0), 0)
        # Tools and system values: [value, its length, bytes, fixed tokens, hash, tool names or None],
        # by identity and by a structural key (``_entry``); the one resolved last, for ``names``.
        self._objects: OrderedDict[int, list[Any]] = OrderedDict()
        self._values: OrderedDict[Any, list[Any]] = OrderedDict()
        self._last_object: tuple[Any, list[Any]] = (_NO_MESSAGE, [])
        # The history bound (``bounds``): what was asked, by request fingerprint, until its usage is
        # learned; then, per conversation key, the reports of the longest prefixes seen (a few, for the
        # conversations sharing a key and for siblings), the most recent first.
        self._asked: OrderedDict[Any, tuple[Any, ...]] = OrderedDict()
        # Keyed like conversations (a one-message request's key ends in 0, and its continuation
        # is looked up under that key too).
        self._learned: OrderedDict[tuple[int, int], tuple[_Learned, ...]] = OrderedDict()

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

    def _entry(self, obj: Any) -> list[Any]:
        """The cache entry of a tool list or system value (not a ``str``): by identity, else, for a
        list or tuple rebuilt with equal content, by value; else measured now and stored."""
        t = type(obj)
        hit = self._objects.get(id(obj))
        if hit is not None and hit[0] is obj and (t is not list or hit[1] == len(obj)):
            return hit
        vkey = None
        if (t is list or t is tuple) and obj:
            vkey = (t, len(obj), _shape(obj[0]), _shape(obj[-1]))
            hit = self._values.get(vkey)
            if hit is not None and hit[0] == obj:  # C-speed: mostly identity checks on shared leaves
                return hit
        b, f, c = measure(obj)
        entry = [obj, len(obj) if t is list else 0, b, f, hash(c), None]
        objects = self._objects
        objects[id(obj)] = entry
        if len(objects) > _MAX_OBJECTS:
            objects.popitem(last=False)
        if vkey is not None:
            values = self._values
            values[vkey] = entry
            if len(values) > _MAX_OBJECTS:
                values.popitem(last=False)
        return entry

    def _object(self, obj: Any) -> tuple[int, int, int]:
        """Tools, system prompts: measured once per object (or per content, for rebuilt lists)."""
        if isinstance(obj, str):
            return _text_len(obj), 0, hash(obj)
        entry = self._entry(obj)
        self._last_object = (obj, entry)
        return entry[2], entry[3], entry[4]

    def names(self, tools: Any, extract: Callable[[Any], tuple[str, ...]]) -> tuple[str, ...]:
        """``extract(tools)`` (the tool names an adapter reads), worked out once per tool list.

        Kept with the list's measure: the list ``bounds`` measured last is answered without a
        lookup, a rebuilt list of equal content from the stored one's names.
        """
        last = self._last_object
        if last[0] is tools:
            entry = last[1]
        elif isinstance(tools, (list, tuple, dict)):
            entry = self._entry(tools)
        else:
            return extract(tools)
        names = entry[5]
        if names is None:
            names = entry[5] = extract(entry[0])
        return names  # type: ignore[no-any-return]

    def _key(self, items: list[Any], n: int) -> tuple[int, int]:
        """A conversation's key: the chained hashes of its first message and of its first two
        (``sums[1]`` and ``sums[2]``), from the messages' content hashes."""
        h1 = hash((0, self._hash(items[0])))
        return h1, (hash((h1, self._hash(items[1]))) if n > 1 else 0)

    def _hash(self, m: Any) -> int:
        """A message's content hash: from the cache, else worked out without storing it (a history
        rebuilt per call brings new objects every time: the cache would only churn)."""
        hit = self._messages.get(id(m))
        if hit is not None and hit[0] is m:
            if hit[1] is (m.get("content") if isinstance(m, dict) else getattr(m, "content", None)):
                return hit[4]
        return _figures(m)[2]

    def _messages_state(self, messages: Sequence[Any]) -> tuple[int, int, int, int, _State | None]:
        """``(text_bytes, fixed_tokens, prefix_hash, count, state)`` of a message list; ``state`` is
        the conversation whose prefix sums cover every message but possibly the last.

        A conversation stored under the same key is reused up to the longest
        prefix equal to this list's (a C-speed list compare: identity first,
        then equality); only messages past it are looked up (by identity, with
        a content identity check) or measured, and the grown conversation is
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
        key = self._key(items, n)
        bucket = self._conversations.get(key, ())
        k, head, sums, found = 0, _NO_HEAD, _START, None
        for state in bucket:
            head, last, sums, _, k = state
            if k <= n and items[:k] == (head if len(head) == k else head[:k]):
                found = state
                break
        if found is not None:
            self._recent = found
            if k == n:  # the stored conversation less its last message
                size, fix, h = sums[k]
                return size, fix, h, n, found
            m = items[k]
            if m is last or m == last:
                k += 1
                if k == n:  # the stored conversation again
                    size, fix, h = sums[k]
                    return size, fix, h, n, found
            elif k + 1 == n:  # a sibling: answered from the sums, nothing stored
                size, fix, h = sums[k]
                b, f, mh = _figures(m) if type(m) is dict else self._message(m)
                return size + b, fix + f, hash((h, mh)), n, found
        elif bucket:  # the history was edited (trimmed, rewritten): the common prefix with the latest
            head, _, sums, _, limit = bucket[0]
            limit = min(limit, n)
            k = 0
            while k < limit and (items[k] is head[k] or items[k] == head[k]):
                k += 1
            head = _NO_HEAD  # not grown in place: a copy
        size, fix, h = sums[k]
        grown = []
        for m in items[k:] if k else items:
            b, f, mh = self._message(m)
            size += b
            fix += f
            h = hash((h, mh))
            grown.append((size, fix, h))
        state = self._store(key, items, k, head, sums, grown, found)
        self._recent = state
        return size, fix, h, n, state

    def _store(self, key: tuple[int, int], items: list[Any], k: int, head: list[Any],
               sums: list[tuple[int, int, int]], grown: list[tuple[int, int, int]], found: _State | None) -> _State:
        """Store ``items`` (its first ``k`` messages those of ``found``, whose ``head`` and ``sums``
        they are; ``grown``: the sums of the rest) first under ``key``, in place of ``found``; then
        evict the least recently grown keys past the bounds.

        A conversation that grows at its end extends its own head and sums lists in place (other
        states of it use only their first entries, which never change): a call costs what was
        appended, not a copy of the history. A list something else extended already (a branch
        grown from the same state) is copied instead.
        """
        n = len(items)
        conversations = self._conversations
        with self._lock:
            if found is not None and len(head) == found[4] and k >= found[4]:
                head.extend(items[found[4]: n - 1])  # the branch point's message is this list's own
            else:
                head = items[: n - 1]
            if sums is not _START and len(sums) == k + 1:
                sums.extend(grown)
            else:
                sums = sums[: k + 1] + grown
            state = (head, items[-1], sums, key, n - 1)
            old = conversations.pop(key, ())
            bucket = (state, *[s for s in old if s is not found][: _BUCKET - 1])
            conversations[key] = bucket  # re-inserted last: the least recently grown goes first
            self._stored += _weight(bucket) - _weight(old)
            while len(conversations) > 1 and (len(conversations) > _MAX_CONVERSATIONS or self._stored > _MAX_STORED):
                self._stored -= _weight(conversations.popitem(last=False)[1])
        return state

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
        bound, _, fp, n, _ = self.bounds(model, messages, system=system, tools=tools, strict=strict, history=False)
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
    ) -> tuple[int, int, int, int, int]:
        """``(input_bound, bytes_bound, fingerprint, message_count, media_tokens)`` of one request.

        ``media_tokens`` is the part of the bounds that counts non-text parts (images,
        documents, audio, files: ``breaker.parts``), 0 when the request carries only text:
        an adapter can tell from it that the input bills at text rates (``Call.text_only``).

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
        head, last, sums, _, k = state  # type: ignore[misc]
        if (
            type(messages) is list and len(messages) == k + 1
            and messages[:k] == (head if len(head) == k else head[:k])
        ):
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
            return bound, bound, fp, n, fix
        # The conversation key (as _key gives it): the state's own when it holds the first two messages,
        # else from its sums (they cover every message but the last) and this request's hash.
        sums = state[2]
        if msg_n > 2:
            key = state[3]
        elif msg_n == 2:
            key = (sums[1][2], msg_h)
        else:
            key = (msg_h, 0)
        ctx = hash((model, sh, th))
        asked = self._asked
        asked[fp] = (key, msg_n, ctx, msg_size, msg_fix, msg_h, sums)
        if len(asked) > _MAX_ASKED:
            asked.popitem(False)  # the oldest (positional: no keyword parsing)
        learned = self._learned
        reports = learned.get(key)
        if reports is None:
            if msg_n == 1:
                return bound, bound, fp, n, fix
            reports = learned.get((key[0], 0))  # the continuation of a one-message request
            if reports is None:
                return bound, bound, fp, n, fix
        tightest = bound
        for l_n, l_ctx, tokens, l_size, l_fix, l_h, _ in reports:
            if l_ctx == ctx and l_n <= msg_n and (msg_h if l_n == msg_n else sums[l_n][2]) == l_h:
                appended = msg_size - l_size
                if not strict:
                    appended = -(-appended // 4)
                tight = tokens + appended + (msg_fix - l_fix) + MESSAGE_OVERHEAD * (msg_n - l_n)
                if tight < tightest:
                    tightest = tight
        return tightest, bound, fp, n, fix

    def forget(self) -> None:
        """Drop every provider report learned so far (and the requests awaiting one): later
        requests are bounded from their bytes again. The reports are process-wide, keyed by
        content; a test that asserts a first request's bound needs a process that has not seen it."""
        self._asked.clear()
        self._learned.clear()

    def learn(self, fingerprint: Any, input_tokens: int) -> None:
        """The provider reported ``input_tokens`` for the request with this fingerprint (from
        ``bounds``): later requests that extend it are bounded from that report.

        The report replaces those it makes useless: of the requests it extends (they bound less
        of it) and of its siblings (the same messages but the last: the conversation goes on from
        this one). Others under the same key (another conversation with the same first two
        messages) stay, up to a few, and ``bounds`` uses whichever of them is a prefix.
        """
        asked = self._asked.pop(fingerprint, None)
        if asked is None or type(input_tokens) is not int or input_tokens < 0:
            return
        key, n, ctx, size, fix, h, sums = asked
        prev = sums[n - 1][2]  # the chained hash of its messages but the last
        report = (n, ctx, input_tokens, size, fix, h, prev)
        learned = self._learned
        old = learned.pop(key, None)  # re-inserted last: the least recently learned goes first
        if old is None or (  # _replaces(old[0], ...), inline: one report per key is the usual case
            len(old) == 1 and (r := old[0])[1] == ctx
            and (r[6] == prev if r[0] == n else r[0] < n and sums[r[0]][2] == r[5])
        ):
            learned[key] = (report,)
        else:
            learned[key] = (report, *_kept(old, n, ctx, prev, sums)[: _BUCKET - 1])
        if len(learned) > _MAX_CONVERSATIONS:
            learned.popitem(False)  # the least recently learned (positional: no keyword parsing)


def _kept(old: tuple[_Learned, ...], n: int, ctx: int, prev: int, sums: list[tuple[int, int, int]]) -> list[_Learned]:
    """The reports of ``old`` a new report does not make useless (``_replaces``). Apart from
    ``learn`` so that its comprehension makes no closure cells on ``learn``'s common path."""
    return [r for r in old if not _replaces(r, n, ctx, prev, sums)]


def _replaces(report: _Learned, n: int, ctx: int, prev: int, sums: list[tuple[int, int, int]]) -> bool:
    """Whether a new report (of ``n`` messages whose but-last chained hash is ``prev``, prefix sums
    ``sums``) makes ``report`` useless: a report of a prefix of it, or of a sibling."""
    r_n = report[0]
    if report[1] != ctx:
        return False
    return report[6] == prev if r_n == n else r_n < n and sums[r_n][2] == report[5]


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
