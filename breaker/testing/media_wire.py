"""FakeLLM's OpenAI routes besides chat and Responses: embeddings, images, speech, transcription.

Like the other wire formats, usage follows the request the way a provider's does:

* ``/embeddings``: a quarter of each input string's bytes (at least 1), token ids
  counted one each; vectors of ``dimensions`` floats (4 by default), base64 when asked.
* ``/images/generations``, ``/images/edits``, ``/images/variations``: GPT image models report
  the prompt's tokens (a quarter of its bytes), ``EDIT_IMAGE_TOKENS`` per input image or
  mask, and per image OpenAI's output tokens by quality and size (``auto`` as medium at
  1024×1024), plus 100 per partial image of a stream; DALL·E models report no usage.
* ``/audio/speech``: audio bytes (a WAV file, raw PCM, or an MP3-looking body), or with
  ``stream_format="sse"`` the ``speech.audio.delta`` / ``speech.audio.done`` events, whose
  usage counts a quarter of the text's bytes in and ``SPEECH_TOKENS_PER_CHARACTER`` out.
* ``/audio/transcriptions``, ``/audio/translations``: the file's duration, read from a WAV
  header (else its bytes at 128 kbit/s); ``whisper-1`` and ``gpt-transcribe`` report ``{"type": "duration"}``
  usage (or a verbose answer's ``duration``), other models ``{"type": "tokens"}`` with 10
  audio tokens a second; ``text`` / ``srt`` / ``vtt`` answer plain text; ``stream=True``
  answers ``transcript.text.delta`` events and ``transcript.text.done`` with the usage.

``Reply.text`` is the transcript, ``Reply.input_tokens`` / ``output_tokens`` override the
counts, ``Reply.raw_usage`` is sent verbatim as ``usage``.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import math
import struct
from typing import TYPE_CHECKING, Any

from .reply import Received, Reply

if TYPE_CHECKING:
    from http.server import BaseHTTPRequestHandler

__all__ = ["MEDIA_APIS", "media_answer", "media_request", "media_route"]

MEDIA_APIS = {
    "/embeddings": "embeddings",
    "/images/generations": "images",
    "/images/edits": "image_edits",
    "/images/variations": "image_variations",
    "/audio/speech": "speech",
    "/audio/transcriptions": "transcriptions",
    "/audio/translations": "translations",
}
EDIT_IMAGE_TOKENS = 323
SPEECH_TOKENS_PER_CHARACTER = 2
_IMAGE_TABLE = {  # OpenAI's output tokens per image, by quality and size
    "low": {"1024x1024": 272, "1024x1536": 408, "1536x1024": 400},
    "medium": {"1024x1024": 1056, "1024x1536": 1584, "1536x1024": 1568},
    "high": {"1024x1024": 4160, "1024x1536": 6240, "1536x1024": 6208},
}
_INTS = frozenset({"n", "partial_images", "frame_count", "output_compression"})
_PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()


def media_route(path: str) -> str | None:
    for suffix, api in MEDIA_APIS.items():
        if path.endswith(suffix):
            return api
    return None


def _quarter(text: Any) -> int:
    return max(1, -(-len(str(text).encode()) // 4)) if text else 0


# ------------------------------------------------------------------ requests
def media_request(content_type: str, raw: bytes) -> dict[str, Any]:
    """The request as a dict: JSON, or a multipart form (files as ``{"filename", "bytes", "seconds"}``)."""
    if not content_type.startswith("multipart/form-data"):
        import json

        parsed = json.loads(raw or b"{}")
        if not isinstance(parsed, dict):
            raise ValueError("body is not a JSON object")
        return parsed
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"content-type: " + content_type.encode() + b"\r\n\r\n" + raw
    )
    if not message.is_multipart():
        raise ValueError("body is not a multipart form")
    body: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        value: Any
        if filename is not None:
            value = {"filename": filename, "bytes": len(data), "seconds": _seconds(data)}
        else:
            text = data.decode()
            value = {"true": True, "false": False}.get(text, int(text) if name in _INTS and text.isdigit() else text)
        key = name[:-2] if name.endswith("[]") else name
        if key in body:
            prior = body[key]
            body[key] = [*(prior if isinstance(prior, list) else [prior]), value]
        else:
            body[key] = [value] if name.endswith("[]") else value
    return body


def _seconds(data: bytes) -> float:
    """An audio file's duration: from a WAV header, else its bytes at 128 kbit/s."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        at, rate = 12, 0
        while at + 8 <= len(data):
            tag, length = data[at:at + 4], struct.unpack_from("<I", data, at + 4)[0]
            if tag == b"fmt ":
                rate = struct.unpack_from("<I", data, at + 16)[0]
            elif tag == b"data" and rate:
                return min(length, len(data) - at - 8) / rate
            at += 8 + length + (length & 1)
    return len(data) / 16_000


# ------------------------------------------------------------------ answers
def media_answer(handler: BaseHTTPRequestHandler, api: str, reply: Reply, received: Received) -> None:
    """Write the answer to ``received`` (see the module docstring)."""
    body = received.body
    if api == "embeddings":
        return handler._json(200, _embeddings(body, reply))  # type: ignore[attr-defined,no-any-return]
    if api.startswith("image"):
        if body.get("stream"):
            return handler._sse(_image_events(api, body, reply), reply.break_after)  # type: ignore[attr-defined,no-any-return]
        return handler._json(200, _images(api, body, reply))  # type: ignore[attr-defined,no-any-return]
    if api == "speech":
        if body.get("stream_format") == "sse":
            return handler._sse(_speech_events(body, reply), reply.break_after)  # type: ignore[attr-defined,no-any-return]
        kind, data = _speech_audio(body)
        return _raw(handler, kind, data)
    answer = _transcript(api, body, reply)
    if isinstance(answer, list):
        return handler._sse(answer, reply.break_after)  # type: ignore[attr-defined,no-any-return]
    if isinstance(answer, str):
        return _raw(handler, "text/plain; charset=utf-8", answer.encode())
    return handler._json(200, answer)  # type: ignore[attr-defined,no-any-return]


def _raw(handler: BaseHTTPRequestHandler, content_type: str, data: bytes) -> None:
    handler.send_response(200)
    handler.send_header("content-type", content_type)
    handler.send_header("content-length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def _embeddings(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    inputs = body.get("input")
    items = [inputs] if isinstance(inputs, str) or (
        isinstance(inputs, list) and inputs and all(isinstance(i, int) for i in inputs)
    ) else list(inputs or [])
    tokens = sum(len(i) if isinstance(i, list) else _quarter(i) for i in items)
    if reply.input_tokens is not None:
        tokens = reply.input_tokens
    size = body.get("dimensions") or 4
    data = []
    for index in range(len(items)):
        vector = [round(0.1 * (index + 1) + 0.01 * k, 4) for k in range(size)]
        packed: Any = vector
        if body.get("encoding_format") == "base64":
            packed = base64.b64encode(struct.pack(f"<{size}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": packed})
    usage = reply.raw_usage if reply.raw_usage is not None else {"prompt_tokens": tokens, "total_tokens": tokens}
    return {"object": "list", "data": data, "model": body.get("model") or "fake-model", "usage": usage}


def _per_image(body: dict[str, Any]) -> int:
    quality = body.get("quality") or "auto"
    size = body.get("size") or "auto"
    if quality == "auto":
        quality = "medium"
    if size == "auto":
        size = "1024x1024"
    row = _IMAGE_TABLE.get(quality)
    if row is not None and size in row:
        return row[size]
    per_mega = (row or {"x": 2 * 4160})["1024x1024" if row else "x"]
    try:
        width, height = (int(v) for v in str(size).lower().split("x"))
    except ValueError:
        width = height = 1024
    return math.ceil(per_mega * width * height / (1024 * 1024))


def _image_usage(api: str, body: dict[str, Any], reply: Reply, images: int) -> Any:
    if reply.raw_usage is not None:
        return reply.raw_usage
    model = str(body.get("model") or "")
    if model.startswith("dall-e") or api == "image_variations":
        return None
    text = _quarter(body.get("prompt")) if reply.input_tokens is None else reply.input_tokens
    files = body.get("image")
    count = len(files) if isinstance(files, list) else (1 if files else 0)
    image = EDIT_IMAGE_TOKENS * (count + (1 if body.get("mask") else 0)) if api == "image_edits" else 0
    partials = body.get("partial_images") or 0
    out = images * (_per_image(body) + 100 * partials) if reply.output_tokens is None else reply.output_tokens
    usage: dict[str, Any] = {
        "input_tokens": text + image, "input_tokens_details": {"text_tokens": text, "image_tokens": image},
        "output_tokens": out, "total_tokens": text + image + out,
    }
    if model not in ("gpt-image-1", "gpt-image-1-mini"):  # the newer models split their output
        usage["output_tokens_details"] = {"image_tokens": out, "text_tokens": 0}
    return usage


def _images(api: str, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    n = body.get("n") or 1
    item = {"url": "https://fake.invalid/image.png"} if body.get("response_format") == "url" else {"b64_json": _PNG}
    answer: dict[str, Any] = {"created": 1_800_000_000, "data": [dict(item) for _ in range(n)]}
    usage = _image_usage(api, body, reply, n)
    if usage is not None:
        answer["usage"] = usage
    return answer


def _image_events(api: str, body: dict[str, Any], reply: Reply) -> list[tuple[str | None, Any]]:
    prefix = "image_edit" if api == "image_edits" else "image_generation"
    common = {"b64_json": _PNG, "background": "opaque", "created_at": 1_800_000_000, "output_format": "png",
              "quality": body.get("quality") or "auto", "size": body.get("size") or "1024x1024"}
    events: list[tuple[str | None, Any]] = [
        (f"{prefix}.partial_image", {**common, "type": f"{prefix}.partial_image", "partial_image_index": i})
        for i in range(body.get("partial_images") or 0)
    ]
    done = {**common, "type": f"{prefix}.completed", "usage": _image_usage(api, body, reply, 1)}
    events.append((f"{prefix}.completed", done))
    return events


def _speech_counts(body: dict[str, Any], reply: Reply) -> tuple[int, int]:
    text = str(body.get("input") or "")
    inp = _quarter(text) + _quarter(body.get("instructions")) if reply.input_tokens is None else reply.input_tokens
    out = SPEECH_TOKENS_PER_CHARACTER * len(text) if reply.output_tokens is None else reply.output_tokens
    return inp, out


def _speech_events(body: dict[str, Any], reply: Reply) -> list[tuple[str | None, Any]]:
    inp, out = _speech_counts(body, reply)
    usage = reply.raw_usage if reply.raw_usage is not None else {
        "input_tokens": inp, "output_tokens": out, "total_tokens": inp + out}
    chunk = base64.b64encode(b"\x00\x01" * 64).decode()
    return [(None, {"type": "speech.audio.delta", "audio": chunk}),
            (None, {"type": "speech.audio.done", "usage": usage})]


def _speech_audio(body: dict[str, Any]) -> tuple[str, bytes]:
    """Some audio for the text: 8 kHz 8-bit mono, a fifteenth of a second per character."""
    samples = b"\x80" * (8000 * max(1, len(str(body.get("input") or ""))) // 15)
    kind = body.get("response_format") or "mp3"
    if kind == "pcm":
        return "audio/pcm", samples
    if kind == "wav":
        return "audio/wav", wav_file(samples, rate=8000, width=1)
    return f"audio/{kind}", b"ID3\x04\x00\x00\x00\x00\x00\x00" + samples[: len(samples) // 8]


def wav_file(samples: bytes, *, rate: int = 16_000, width: int = 2, channels: int = 1) -> bytes:
    """A WAV file holding ``samples`` (tests build audio with it)."""
    block = width * channels
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, 8 * width)
    return (b"RIFF" + struct.pack("<I", 36 + len(samples)) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
            + b"data" + struct.pack("<I", len(samples)) + samples)


def _transcript(api: str, body: dict[str, Any], reply: Reply) -> Any:
    file = body.get("file")
    seconds = file.get("seconds", 0.0) if isinstance(file, dict) else 0.0
    text = reply.text
    words = len(text.split())
    model = str(body.get("model") or "")
    duration = model.startswith(("whisper", "gpt-transcribe"))  # the models billed per second
    fmt = body.get("response_format") or "json"
    if fmt in ("text", "srt", "vtt"):
        return text
    inp = math.ceil(10 * seconds) if reply.input_tokens is None else reply.input_tokens
    prompt = _quarter(body.get("prompt"))
    out = words if reply.output_tokens is None else reply.output_tokens
    usage: Any = (
        {"type": "duration", "seconds": seconds} if duration else
        {"type": "tokens", "input_tokens": inp + prompt, "output_tokens": out, "total_tokens": inp + prompt + out,
         "input_token_details": {"audio_tokens": inp, "text_tokens": prompt}}
    )
    if reply.raw_usage is not None:
        usage = reply.raw_usage
    if body.get("stream") and not duration:
        events: list[tuple[str | None, Any]] = [
            (None, {"type": "transcript.text.delta", "delta": w + " "}) for w in text.split()
        ]
        events.append((None, {"type": "transcript.text.done", "text": text, "usage": usage}))
        return events
    answer: dict[str, Any] = {"text": text}
    if fmt in ("verbose_json", "diarized_json"):
        answer.update({"task": api[:-1], "language": "english", "duration": seconds, "segments": []})
    if api == "transcriptions" and (usage is not None):
        answer["usage"] = usage
    return answer
