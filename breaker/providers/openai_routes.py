"""The OpenAI SDK's billed routes besides chat and Responses: what ``patching`` patches for them.

Embeddings, images (generate, edit, variation), speech, transcription and translation:
each SDK method, its ``post()`` path and its ``wrap(client)`` resource, with the adapter
that reads it (``embeddings``, ``images``, ``audio``). Kept here so that ``patching``
only splices these tables into its own.

A caller that ``post()``s to one of these paths itself is metered too: a multipart route's
files (``file``, ``image``, ``mask``) travel beside the body, so the adapter is shown
both (``form_kwargs``) and the request is sent as it came, with the adapter's changes
(``post_form``); speech and plain-text transcripts are parsed by the SDK as bytes and
``str``, which the ``post()`` layer otherwise leaves alone (``sdk_parsed``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable

from .attempt import Adapter

__all__ = ["CLIENT_RESOURCES", "PATHS", "TARGETS", "adapters", "form_kwargs", "post_form", "sdk_parsed"]

_METHODS: tuple[tuple[str, tuple[str, str], str, str], ...] = (
    # (module, (sync class, async class), method, adapter key)
    ("openai.resources.embeddings", ("Embeddings", "AsyncEmbeddings"), "create", "embeddings"),
    ("openai.resources.images", ("Images", "AsyncImages"), "generate", "images.generate"),
    ("openai.resources.images", ("Images", "AsyncImages"), "edit", "images.edit"),
    ("openai.resources.images", ("Images", "AsyncImages"), "create_variation", "images.variation"),
    ("openai.resources.audio.speech", ("Speech", "AsyncSpeech"), "create", "speech"),
    ("openai.resources.audio.transcriptions", ("Transcriptions", "AsyncTranscriptions"), "create", "transcriptions"),
    ("openai.resources.audio.translations", ("Translations", "AsyncTranslations"), "create", "translations"),
)

TARGETS: tuple[tuple[str, str, str, str, str], ...] = tuple(
    (module, cls, method, key, "call") for module, classes, method, key in _METHODS for cls in classes
)

PATHS: dict[str, str] = {
    "/embeddings": "embeddings",
    "/images/generations": "images.generate",
    "/images/edits": "images.edit",
    "/images/variations": "images.variation",
    "/audio/speech": "speech",
    "/audio/transcriptions": "transcriptions",
    "/audio/translations": "translations",
}

CLIENT_RESOURCES: tuple[tuple[tuple[str, ...], tuple[str, ...], str], ...] = (
    (("embeddings",), ("create",), "embeddings"),
    (("images",), ("generate",), "images.generate"),
    (("images",), ("edit",), "images.edit"),
    (("images",), ("create_variation",), "images.variation"),
    (("audio", "speech"), ("create",), "speech"),
    (("audio", "transcriptions"), ("create",), "transcriptions"),
    (("audio", "translations"), ("create",), "translations"),
)


def adapters() -> dict[str, Adapter]:
    from .audio import SpeechAdapter, TranscriptionAdapter
    from .embeddings import EmbeddingsAdapter
    from .images import ImagesAdapter

    return {
        "embeddings": EmbeddingsAdapter(),
        "images.generate": ImagesAdapter("generate"),
        "images.edit": ImagesAdapter("edit"),
        "images.variation": ImagesAdapter("variation"),
        "speech": SpeechAdapter(),
        "transcriptions": TranscriptionAdapter("transcriptions"),
        "translations": TranscriptionAdapter("translations"),
    }


def sdk_parsed(path: str, cast_to: Any) -> bool:
    """Whether a ``post(path, cast_to=...)`` is one of these routes parsed by the SDK as audio bytes or text."""
    return path in PATHS and (cast_to is str or getattr(cast_to, "__name__", "") == "HttpxBinaryResponseContent")


def _fields(files: Any) -> list[tuple[str, Any]]:
    return list(files.items() if isinstance(files, Mapping) else files)


def form_kwargs(body: Mapping[str, Any], files: Any) -> dict[str, Any]:
    """A multipart ``post()``'s body and files as the SDK method's keyword arguments
    (``("image[]", f)`` pairs become the list ``image``)."""
    kwargs = dict(body)
    for key, f in _fields(files):
        if key.endswith("[]"):
            kwargs.setdefault(key[:-2], []).append(f)
        else:
            kwargs[key] = f
    return kwargs


def post_form(post: Callable[..., Any], args: tuple, kwargs: dict, **sent: Any) -> Any:
    """Send ``sent`` (``form_kwargs``, as the adapter left it) as the original ``post()``'s body and files."""
    files = _fields(kwargs["files"])
    names = {key[:-2] if key.endswith("[]") else key for key, _ in files}
    taken: dict[str, int] = {}
    out = []
    for key, _ in files:
        name = key[:-2] if key.endswith("[]") else key
        value = sent[name]
        if key.endswith("[]"):
            value = value[taken.setdefault(name, 0)]
            taken[name] += 1
        out.append((key, value))  # the same file, or the bytes the adapter read a one-shot stream into
    body = {k: v for k, v in sent.items() if k not in names}
    return post(*args, **{**kwargs, "body": body, "files": out})
