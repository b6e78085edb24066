"""Google Gemini request shape: ``google-genai`` ``models.generate_content`` and its stream.

What is patched is the SDK's one-request method under the public ones
(``Models._generate_content`` / ``_generate_content_stream`` and the
``AsyncModels`` twins), and why: the public ``generate_content`` may send
several requests in one call (automatic function calling answers the model's
function calls and asks again, up to ten times; automatic continuation
follows ``continuation_token`` hops), each one billed on its own. Patched one
level below, every request is admitted with its own worst case, capped, and
settled from its own ``usage_metadata``, and ``chats`` (``send_message`` /
``send_message_stream`` call ``models.generate_content``) are counted once
each. ``models.count_tokens`` is free and goes through untouched.

Request: the model names the price (``models/``, ``publishers/google/models/``
and ``projects/.../models/`` prefixes are dropped); the input bound covers
``contents``, ``config.system_instruction`` and ``config.tools`` (a Python
function offered for automatic function calling counts as the declaration the
SDK sends for it); media parts are bounded as ``breaker.parts`` documents.
With ``config.cached_content`` the cached part lives on Google's side: the
bound covers only what this request sends. The output cap is
``config.max_output_tokens`` (``generationConfig.maxOutputTokens``), per
candidate, so ``candidate_count`` multiplies it; thinking counts against it.
A degrade lowers ``thinking_config`` (``providers.effort.gemini_thinking``).

Usage, from ``usage_metadata`` (genai-prices' own Google extractor reads it the
same way): ``prompt_token_count`` (cache reads included) plus
``tool_use_prompt_token_count`` is the input; ``candidates_token_count`` plus
``thoughts_token_count`` the output, thoughts being the reasoning tokens;
``cached_content_token_count`` the cache reads; the modality breakdowns give
the audio, image (documents are billed as images) and video parts.
Grounding with Google Search is billed per grounded prompt on Gemini 2.x and
per search query on Gemini 3 (``web_search_calls``); a request offering the
``google_search`` tool reserves one, or ``SEARCH_QUERIES_RESERVED`` on Gemini 3
(an estimate: the number of queries is the model's choice).
In streams each chunk's ``usage_metadata`` is cumulative (replaced, never
added), the final figures arriving with ``finish_reason``.
"""

from __future__ import annotations

import importlib
import inspect
import json
import operator
from collections.abc import Mapping
from typing import Any

from ..adapter import Call, Patch, usage_error
from ..estimate import ESTIMATOR, args_fingerprint, measure
from ..usage import Usage
from .attempt import Adapter
from .effort import gemini_thinking
from .streams import Meter
from .trim import trim_messages, trimmed_bound

__all__ = ["CLIENT_RESOURCES", "SEARCH_QUERIES_RESERVED", "TARGETS", "GeminiAdapter", "GeminiMeter", "adapters",
           "gemini_usage", "model_name"]

SEARCH_QUERIES_RESERVED = 5
"""Search queries reserved for a Gemini 3 request offering ``google_search`` (billed per query)."""

_bounds = ESTIMATOR.bounds  # the hot-path choices are explained in providers/openai.py
_learn = ESTIMATOR.learn

# Config fields that make two requests with the same contents different requests (a continuation
# hop, another cache, another forced tool or schema): folded into the fingerprint, as in openai.py.
_DISTINCT = ("continuation_token", "cached_content", "tool_config", "response_schema", "response_json_schema")
_CAMEL = {
    "max_output_tokens": "maxOutputTokens", "candidate_count": "candidateCount", "thinking_config": "thinkingConfig",
    "thinking_budget": "thinkingBudget", "thinking_level": "thinkingLevel", "system_instruction": "systemInstruction",
    "service_tier": "serviceTier", "continuation_token": "continuationToken", "cached_content": "cachedContent",
    "tool_config": "toolConfig", "response_schema": "responseSchema", "response_json_schema": "responseJsonSchema",
    "tools": "tools", "google_search": "googleSearch", "google_search_retrieval": "googleSearchRetrieval",
    "function_declarations": "functionDeclarations",
}
_TIERS = frozenset({"flex", "priority"})  # service tiers priced apart (where genai-prices has the variant)


def _cfg(config: Any, name: str) -> Any:
    """``config.name`` of a ``GenerateContentConfig`` (or any SDK object), or its key in a dict (either spelling)."""
    if config is None:
        return None
    if isinstance(config, Mapping):
        v = config.get(name)
        return config.get(_CAMEL.get(name, name)) if v is None else v
    return getattr(config, name, None)


def model_name(model: str) -> str:
    """The model a Gemini model reference names, as prices know it (``models/gemini-2.5-flash`` →
    ``gemini-2.5-flash``; also Vertex ``publishers/google/models/...`` and ``projects/.../models/...``)."""
    return model.rpartition("models/")[2] if "models/" in model and not model.startswith("tunedModels/") else model


# ------------------------------------------------------------------ usage
def _modalities(details: Any, into: dict[str, int], names: Mapping[str, str]) -> None:
    """Add a ``ModalityTokenCount`` list's counts to ``into``, under ``names[modality]``."""
    for d in details or ():
        if isinstance(d, Mapping):
            modality, count = d.get("modality"), d.get("token_count", d.get("tokenCount"))
        else:
            modality, count = d.modality, d.token_count
        name = names.get(str(getattr(modality, "value", modality)))
        if name is not None and type(count) is int and count > 0:
            into[name] = into.get(name, 0) + count


_INPUT_UNITS = {"AUDIO": "input_audio_tokens", "IMAGE": "input_image_tokens", "DOCUMENT": "input_image_tokens",
                "VIDEO": "input_video_tokens"}
_CACHE_UNITS = {"AUDIO": "cache_audio_read_tokens", "IMAGE": "cache_image_read_tokens",
                "DOCUMENT": "cache_image_read_tokens"}
_OUTPUT_UNITS = {"AUDIO": "output_audio_tokens", "IMAGE": "output_image_tokens"}


def _units(u: Any, get: Any, inp: int, out: int, read: int) -> dict[str, int]:
    """The modality parts, each kept within its whole (a report that says otherwise is clamped
    rather than billed at the worst case: the totals are what genai-prices bills first)."""
    units: dict[str, int] = {}
    _modalities(get(u, "prompt_tokens_details", "promptTokensDetails"), units, _INPUT_UNITS)
    _modalities(get(u, "tool_use_prompt_tokens_details", "toolUsePromptTokensDetails"), units, _INPUT_UNITS)
    _modalities(get(u, "cache_tokens_details", "cacheTokensDetails"), units, _CACHE_UNITS)
    _modalities(get(u, "candidates_tokens_details", "candidatesTokensDetails"), units, _OUTPUT_UNITS)
    if not units:
        return units
    room = inp
    for name in ("input_audio_tokens", "input_image_tokens", "input_video_tokens"):
        if name in units:
            units[name] = min(units[name], room)
            room -= units[name]
    room = read
    for name, whole in (("cache_audio_read_tokens", "input_audio_tokens"), ("cache_image_read_tokens", "input_image_tokens")):
        if name in units:
            units[name] = min(units[name], room, units.get(whole, 0))
            room -= units[name]
    room = out
    for name in ("output_audio_tokens", "output_image_tokens"):
        if name in units:
            units[name] = min(units[name], room)
            room -= units[name]
    return units


def _attr(u: Any, name: str, camel: str) -> Any:
    return getattr(u, name, None)


def _key(u: Any, name: str, camel: str) -> Any:
    v = u.get(name)
    return u.get(camel) if v is None else v


_COUNTS = ("prompt_token_count", "candidates_token_count", "thoughts_token_count", "cached_content_token_count",
           "tool_use_prompt_token_count", "prompt_tokens_details", "tool_use_prompt_tokens_details",
           "cache_tokens_details", "candidates_tokens_details")
_read_counts = operator.attrgetter(*_COUNTS)


def gemini_usage(u: Any, tool_calls: int = 0, searches: int = 0) -> Usage:
    """A ``Usage`` from Gemini ``usage_metadata`` (an SDK object, or the JSON dict in either spelling)."""
    # Hot path (every call): the SDK object's fields in one attrgetter call, the modality
    # breakdowns looked into only when they name more than text (see providers/openai.py).
    try:
        prompt, candidates, thoughts, cached, tool_prompt, pdet, tdet, cdet, odet = _read_counts(u)
    except AttributeError:
        return _gemini_usage(u, tool_calls, searches)
    if candidates is None:
        candidates = 0
    if thoughts is None:
        thoughts = 0
    if cached is None:
        cached = 0
    if tool_prompt is None:
        tool_prompt = 0
    if (
        type(prompt) is not int or prompt < 0 or type(candidates) is not int or candidates < 0
        or type(thoughts) is not int or thoughts < 0 or type(cached) is not int or cached < 0
        or type(tool_prompt) is not int or tool_prompt < 0
    ):
        return _gemini_usage(u, tool_calls, searches)  # the reference reading says what is wrong
    inp = prompt + tool_prompt  # tool-use prompt tokens are input, outside prompt_token_count
    out = candidates + thoughts  # thinking is billed as output
    read = cached if cached <= inp else inp
    if (pdet and _beyond_text(pdet)) or tdet or cdet and _beyond_text(cdet) or odet and _beyond_text(odet):
        units = _units(u, _attr, inp, out, read)
        if units:
            return Usage(inp, out, read, 0, thoughts, 1, tool_calls, searches, **units)
    return Usage(inp, out, read, 0, thoughts, 1, tool_calls, searches)


def _beyond_text(details: Any) -> bool:
    """Whether a modality breakdown names anything but text (the usual breakdown is one TEXT entry)."""
    for d in details:
        modality = getattr(d, "modality", None)
        if str(getattr(modality, "value", modality)) != "TEXT":
            return True
    return False


def _gemini_usage(u: Any, tool_calls: int, searches: int) -> Usage:
    """``gemini_usage`` of any usage value: SDK object or JSON dict, with the errors for bad counts."""
    if u is None:
        raise usage_error("A Gemini response came back without `usage_metadata`", "nothing to price it from")
    get = _key if isinstance(u, Mapping) else _attr
    prompt = get(u, "prompt_token_count", "promptTokenCount")
    if prompt is None:
        raise usage_error("Gemini usage_metadata lacks prompt_token_count", f"got {u!r}")
    candidates, thoughts, cached, tool_prompt = (0 if c is None else c for c in (get(u, name, camel) for name, camel in (
        ("candidates_token_count", "candidatesTokenCount"), ("thoughts_token_count", "thoughtsTokenCount"),
        ("cached_content_token_count", "cachedContentTokenCount"),
        ("tool_use_prompt_token_count", "toolUsePromptTokenCount"),
    )))
    if not all(type(x) is int and x >= 0 for x in (prompt, candidates, thoughts, cached, tool_prompt)):
        raise usage_error("Gemini usage_metadata has a token count that is not a non-negative integer", f"got {u!r}")
    inp = prompt + tool_prompt
    out = candidates + thoughts
    read = min(cached, inp)
    units = _units(u, get, inp, out, read)
    return Usage(inp, out, read, 0, thoughts, 1, tool_calls, searches, **units)


def _searches(model: Any, queries: int, grounded: bool) -> int:
    """Grounding fees: per search query on Gemini 3, per grounded prompt before it."""
    if isinstance(model, str) and model_name(model).startswith("gemini-3"):
        return queries
    return 1 if grounded or queries else 0


def _grounding(candidate: Any) -> tuple[int, bool]:
    """``(search queries, grounded)`` of one candidate."""
    gm = candidate.grounding_metadata
    if gm is None:
        return 0, False
    queries = gm.web_search_queries
    return (len(queries) if queries else 0), bool(queries or gm.grounding_chunks)


def _call_args(call: Any) -> str:
    return json.dumps(call.args or {}, sort_keys=True, default=str)


class GeminiMeter(Meter):
    """A ``generate_content_stream`` chunk at a time: text, thought and function-call parts, usage."""

    __slots__ = ("finished", "queries", "grounded", "model")

    def __init__(self, hide_usage: bool = False) -> None:
        super().__init__(hide_usage)
        self.finished = False
        self.queries = 0
        self.grounded = False
        self.model: Any = None

    def feed(self, chunk: Any) -> bool:
        for cand in chunk.candidates or ():
            content = cand.content
            if content is not None:
                for part in content.parts or ():
                    self.add_text(part.text)
                    call = part.function_call
                    if call is not None:
                        args = _call_args(call)
                        self.add_tool((cand.index, len(self._tools)), call.name, args)
                        self.add_text(args)
            if cand.finish_reason is not None:
                self.finished = True
            if cand.grounding_metadata is not None:
                queries, grounded = _grounding(cand)
                self.queries = max(self.queries, queries)
                self.grounded = self.grounded or grounded
        if chunk.model_version is not None:
            self.model = chunk.model_version
        u = chunk.usage_metadata
        if u is not None:  # cumulative: each report replaces the last
            self.reported_output = (u.candidates_token_count or 0) + (u.thoughts_token_count or 0)
            if u.prompt_token_count is None and not self.finished:
                return True  # an interim count of the answer alone: the stream cut reads it, nothing more
            searches = _searches(self.model, self.queries, self.grounded)
            usage = gemini_usage(u, len(self._tools), searches)
            if self.finished:
                self.usage = usage
            else:
                self.input_usage = usage.replace(
                    output_tokens=0, reasoning_tokens=0, output_audio_tokens=0, output_image_tokens=0,
                    web_search_calls=0,
                )
        return True


# ------------------------------------------------------------------ request
_DECLARATIONS: dict[Any, Any] = {}


def _declaration(fn: Any) -> Any:
    """The function declaration the SDK sends for a Python function (measured in its place), once per function."""
    try:
        found = _DECLARATIONS.get(fn)
        cacheable = True
    except TypeError:  # an unhashable callable object: read each time
        found, cacheable = None, False
    if found is None:
        try:
            types = importlib.import_module("google.genai.types")
            decl = types.FunctionDeclaration.from_callable_with_api_option(callable=fn, api_option="GEMINI_API")
            found = decl.model_dump(exclude_none=True, mode="json")
        except Exception:  # a signature the SDK cannot read either: it will say so; bound its name and doc
            found = {"name": getattr(fn, "__name__", ""), "description": getattr(fn, "__doc__", None) or ""}
        if cacheable:
            if len(_DECLARATIONS) > 1024:
                _DECLARATIONS.clear()
            _DECLARATIONS[fn] = found
    return found


def _is_function(tool: Any) -> bool:
    return callable(tool) and not isinstance(tool, (Mapping, type)) and not hasattr(type(tool), "model_fields")


def _tools(tools: Any) -> tuple[Any, tuple[str, ...], bool, bool]:
    """``(tools as measured, their names, whether one is Google Search, whether one is another built-in
    tool)``. A built-in tool other than search (URL context, code execution, file search...) may bring
    images or documents into the input, so a request offering one is not ``Call.text_only``."""
    if not tools:
        return None, (), False, False
    items = tools if isinstance(tools, (list, tuple)) else [tools]
    names: list[str] = []
    search = builtin = False
    measured: list[Any] | None = None
    for i, tool in enumerate(items):
        if _is_function(tool):
            if measured is None:
                measured = list(items[:i])
            measured.append(_declaration(tool))
            names.append(str(getattr(tool, "__name__", "function")))
            continue
        if measured is not None:
            measured.append(tool)
        declarations = _cfg(tool, "function_declarations")
        for d in declarations or ():
            names.append(str(_cfg(d, "name") or "function"))
        if _cfg(tool, "google_search") is not None or _cfg(tool, "google_search_retrieval") is not None:
            search = True
            names.append("google_search")
        elif not declarations:  # a built-in tool (code_execution, url_context...): named by its field
            fields = tool.keys() if isinstance(tool, Mapping) else getattr(type(tool), "model_fields", None) or ()
            kind = next((k for k in fields if _cfg(tool, k) is not None), None)
            names.append(str(kind or type(tool).__name__))
            builtin = True
    return (items if measured is None else measured), tuple(names), search, builtin


_FIELDS = ("system_instruction", "tools", "max_output_tokens", "candidate_count", "service_tier", *_DISTINCT)
_read_fields = operator.attrgetter(*_FIELDS)
_NO_FIELDS = (None,) * len(_FIELDS)


def _fields(config: Any) -> tuple[Any, ...]:
    """The config fields ``describe`` reads, in ``_FIELDS`` order (one attrgetter call for the SDK's config)."""
    if config is None:
        return _NO_FIELDS
    if type(config) is not dict:
        try:
            return _read_fields(config)  # type: ignore[no-any-return]
        except AttributeError:
            pass
    return tuple(_cfg(config, name) for name in _FIELDS)


def _updated(config: Any, changes: dict[str, Any]) -> Any:
    """``config`` with ``changes`` (a new object; the caller's is never changed)."""
    if config is None:
        return changes  # the SDK validates a dict config like its own
    if isinstance(config, Mapping):
        out = dict(config)
        for name, v in changes.items():
            out[_CAMEL[name] if _CAMEL[name] in config and name not in config else name] = v
        return out
    return config.model_copy(update=changes)


def _thinking(current: Any, config: Any, budget: int | None, level: str | None) -> Any:
    """``thinking_config`` with a new budget or level, in the form its config takes."""
    field = "thinking_budget" if budget is not None else "thinking_level"
    value = budget if budget is not None else level
    if current is None and (config is None or isinstance(config, Mapping)):
        return {field: value}
    if isinstance(current, Mapping):
        return _updated(current, {field: value})
    types = importlib.import_module("google.genai.types")  # validated, so the SDK serialises an enum level
    base = current.model_dump(exclude_none=True) if current is not None else {}
    base.pop("thinking_level" if budget is not None else "thinking_budget", None)  # one or the other, never both
    return types.ThinkingConfig(**{**base, field: value})


class GeminiAdapter(Adapter):
    """One ``generateContent`` request (``stream=True``: one ``streamGenerateContent`` request)."""

    provider = "google"
    operation = "generate_content"
    name = "Gemini generate_content"

    def __init__(self, stream: bool = False) -> None:
        self.stream = stream
        if stream:
            self.name = "Gemini generate_content_stream"

    def describe(self, kwargs: Mapping[str, Any], strict: bool) -> Call | None:
        model = kwargs.get("model")
        contents = kwargs.get("contents")
        if not isinstance(model, str) or contents is None:
            return None
        name = model_name(model)
        config = kwargs.get("config")
        messages = contents if isinstance(contents, list) else [contents]
        system, tools, cap, choices, tier, *distinct = _fields(config)
        tools, names, search, builtin = _tools(tools)
        extra: tuple[tuple[str, Any], ...] | None = None
        for key, v in zip(_DISTINCT, distinct):  # _distinct(), inline: usually all None
            if v is not None:
                extra = (extra or ()) + ((key, v if isinstance(v, (str, bytes)) else hash(measure(v)[2])),)
        bound, by_bytes, fp, n, media = _bounds(name, messages, system=system, tools=tools, strict=strict, extra=extra)
        if cap is not None and type(choices) is int and choices > 1:
            cap = cap * choices

        def trimmed_input(keep: int) -> int:  # Call.trimmed_input: a closure, not a partial (see trim.py)
            return trimmed_bound(name, messages, "gemini", system, tools, strict, keep)

        tier = str(getattr(tier, "value", tier)).lower() if tier is not None else None
        units = None
        if search:
            units = {"web_search_calls": SEARCH_QUERIES_RESERVED if name.startswith("gemini-3") else 1}
        return Call(
            name, self.provider, bound, cap, fp, names, self.operation, self.stream, n, {},
            trimmed_input if isinstance(contents, list) else None, by_bytes, _learn,
            price_context=(("service_tier", tier),) if tier in _TIERS else None,
            strict_provider=self.strict_provider, units=units,
            # no media part measured, no tool that fetches media, and neither continuation_token nor
            # cached_content (the first two of _DISTINCT: content held on Google's side may be media)
            text_only=not media and not builtin and distinct[0] is None and distinct[1] is None,
        )

    def apply(self, kwargs: dict[str, Any], patch: Patch, call: Call) -> dict[str, Any]:
        kw = dict(kwargs)
        if patch.model is not None:
            kw["model"] = patch.model
        config = kw.get("config")
        changes: dict[str, Any] = {}
        if patch.max_output_tokens is not None:
            cap = _cfg(config, "max_output_tokens")
            choices = _cfg(config, "candidate_count")
            per = max(1, patch.max_output_tokens // (choices if type(choices) is int and choices > 1 else 1))
            changes["max_output_tokens"] = per if cap is None else min(cap, per)
        if patch.reasoning_effort is not None:
            current = _cfg(config, "thinking_config")
            budget, level = gemini_thinking(
                patch.reasoning_effort, model_name(kw["model"]),
                _cfg(current, "thinking_budget"), _cfg(current, "thinking_level"),
            )
            if budget is not None or level is not None:
                changes["thinking_config"] = _thinking(current, config, budget, level)
        if changes:
            kw["config"] = _updated(config, changes)
        contents = kw.get("contents")
        if patch.keep_last_messages is not None and isinstance(contents, list):
            kw["contents"] = trim_messages(contents, patch.keep_last_messages, style="gemini")
        if patch.hook is not None:
            kw = patch.hook(kw)
        return kw

    def result(self, response: Any) -> tuple[Usage, tuple[tuple[str, str], ...]]:
        """Usage, tool calls and grounding in one pass over the candidates."""
        calls: list[tuple[str, str]] | None = None
        queries, grounded = 0, False
        for cand in response.candidates or ():
            content = cand.content
            if content is not None:
                for part in content.parts or ():
                    call = part.function_call
                    if call is not None:
                        if calls is None:
                            calls = []
                        calls.append((call.name or "", args_fingerprint(call.args or {})))
            if cand.grounding_metadata is not None:
                q, g = _grounding(cand)
                queries, grounded = queries + q, grounded or g
        searches = _searches(response.model_version, queries, grounded) if queries or grounded else 0
        u = response.usage_metadata
        if u is None:
            u = _raw_usage(response)
        return gemini_usage(u, len(calls) if calls else 0, searches), (tuple(calls) if calls else ())

    def usage(self, response: Any) -> Usage:
        return self.result(response)[0]

    def tool_calls(self, response: Any) -> tuple[tuple[str, str], ...]:
        return self.result(response)[1]

    def meter(self, hide_usage: bool) -> Meter:
        return GeminiMeter(hide_usage)

    def opened(self, stream: Any) -> Any:
        """The sync SDK's ``_generate_content_stream`` is a generator: it sends on the first read. That
        read happens here, inside the call, so a refused request (an HTTP error) is the call's failure,
        released and counted as an error, as for every other SDK; the first chunk is kept for the caller."""
        if not inspect.isgenerator(stream):
            return stream
        try:
            first = next(stream)
        except StopIteration:
            return stream
        return _resumed(first, stream)


def _resumed(first: Any, stream: Any) -> Any:
    """``stream`` with its first chunk, read already, put back in front."""
    try:
        yield first
        yield from stream
    finally:
        stream.close()


def _raw_usage(response: Any) -> Any:
    """``usageMetadata`` of a response asked for raw (``config.should_return_http_response``): the SDK
    then returns the HTTP body unparsed, which is read here for its usage alone."""
    raw = getattr(getattr(response, "sdk_http_response", None), "body", None)
    if not isinstance(raw, (str, bytes)) or not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data.get("usageMetadata") if isinstance(data, dict) else None


# ------------------------------------------------------------------ what patching patches (see the module docstring)
_MODELS = "google.genai.models"
_METHODS = (("_generate_content", "gemini"), ("_generate_content_stream", "gemini.stream"))

TARGETS: tuple[tuple[str, str, str, str, str], ...] = tuple(
    (_MODELS, cls, method, key, "call") for cls in ("Models", "AsyncModels") for method, key in _METHODS
)
"""``instrument()``'s google-genai targets: the one-request methods of ``Models`` and ``AsyncModels``."""

CLIENT_RESOURCES: tuple[tuple[tuple[str, ...], tuple[str, ...], str], ...] = tuple(
    (path, (method,), key) for path in (("models",), ("aio", "models")) for method, key in _METHODS
)
"""``wrap(client)``'s: a ``genai.Client``'s ``models`` and its ``aio.models`` (one wrap covers both)."""


def adapters() -> dict[str, Adapter]:
    return {"gemini": GeminiAdapter(), "gemini.stream": GeminiAdapter(stream=True)}
