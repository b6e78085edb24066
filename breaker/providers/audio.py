"""OpenAI audio: ``audio.speech.create``, ``audio.transcriptions.create``, ``audio.translations.create``.

**Speech** answers with audio bytes and no usage. ``tts-1`` / ``tts-1-hd`` are billed per
input character, which the request gives exactly: ``Usage(input_characters=len(input))``,
read back from the request the SDK sent. Token-billed speech models (``gpt-4o-mini-tts``)
report usage only with ``stream_format="sse"`` (the ``speech.audio.done`` event), which is
read from the answer; otherwise the call is billed its bound (``warn_unreadable``): the
input text's bytes in, and ``SPEECH_OUTPUT_TOKENS_PER_CHARACTER`` audio tokens out per
input character plus ``SPEECH_OUTPUT_TOKENS``. Why that bound: OpenAI's audio output runs
about 20 tokens a second (its ~$0.015 a minute at $12 per million), and speech at normal
speed reads ~15 characters a second, about 1.4 tokens a character; 8 covers speech more
than five times slower. An estimate of the provider's behaviour, documented as such:
pass ``stream_format="sse"`` to be billed what OpenAI reports.

**Transcription and translation** answers report ``usage`` in JSON formats: ``{"type":
"tokens", input_tokens, input_token_details.audio_tokens, output_tokens}`` (GPT-4o
transcribe models) or ``{"type": "duration", "seconds"}`` (Whisper), or a verbose
answer's ``duration``. Seconds bill as ``audio_seconds`` and ``input_audio_seconds``
(genai-prices prices both; the input seconds are part of the audio seconds), rounded up.
Plain-text formats (``text``, ``srt``, ``vtt``) and ``json`` translations report nothing:
they are billed the bound. Bounds (``media.audio_seconds`` for the file's duration D):

* per-second models (``DURATION_BILLED``: Whisper, ``gpt-transcribe``; every translation):
  D seconds, no tokens;
* other models: D seconds as well, and tokens: the prompt's bytes plus
  ``AUDIO_TOKENS_PER_SECOND`` × D in (1.5× the rate OpenAI's $0.006 a minute implies at $6
  per million), ``TRANSCRIPT_TOKENS_PER_SECOND`` × D out (fast speech is ~4.5 tokens a
  second); for the models in ``TRANSCRIBE_LIMITS``, never more than their context window
  in or their maximum output out, unless ``chunking_strategy`` lets the server split the
  audio into several requests' worth.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..adapter import ESTIMATOR, Call, measure, usage_error
from ..usage import Usage
from ._shapes import field, value
from .media import FixedOutput, audio_seconds, read_file, whole_seconds
from .streams import Meter

__all__ = ["SpeechAdapter", "TranscriptionAdapter", "TranscriptionMeter", "speech_usage", "transcription_usage"]

CHARACTER_BILLED = ("tts-1",)
"""Speech model name prefixes billed per input character (``tts-1``, ``tts-1-hd`` and their snapshots)."""
SPEECH_OUTPUT_TOKENS_PER_CHARACTER = 8
SPEECH_OUTPUT_TOKENS = 256

DURATION_BILLED = ("whisper-1", "gpt-transcribe")
"""Transcription models billed per second of audio (genai-prices prices them per audio hour),
which report a duration, not tokens."""
AUDIO_TOKENS_PER_SECOND = 25
TRANSCRIPT_TOKENS_PER_SECOND = 10
TRANSCRIBE_LIMITS = {
    "gpt-4o-transcribe": (16_000, 2_000),
    "gpt-4o-mini-transcribe": (16_000, 2_000),
}
"""(context window, maximum output tokens) of a model and its snapshots and variants
(``gpt-4o-transcribe-diarize``, ``gpt-4o-mini-transcribe-2025-12-15``): OpenAI's model pages."""


# ------------------------------------------------------------------ speech
def _sse_usage(content: bytes) -> Any:
    """The ``usage`` of the ``speech.audio.done`` event in a speech SSE body, or ``None``."""
    found = None
    for line in content.splitlines():
        if line.startswith(b"data:"):
            try:
                event = json.loads(line[5:])
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("type") == "speech.audio.done":
                found = event.get("usage")
    return found


def speech_usage(model: str, text: str, sse: bytes | None) -> Usage:
    """The usage of a speech request for ``text``, with its SSE answer when it has one."""
    chars = len(text)
    if model.startswith(CHARACTER_BILLED):
        return Usage(input_characters=chars)
    u = _sse_usage(sse) if sse is not None else None
    if u is None:
        raise usage_error(
            f"OpenAI audio.speech with {model} answered audio without usage",
            "billed at the request's bound; pass stream_format='sse' to be billed what OpenAI reports",
        )
    inp, out = field(u, "input_tokens"), field(u, "output_tokens")
    if inp is None or out is None:
        raise usage_error("OpenAI speech usage lacks input_tokens/output_tokens", f"got {u!r}")
    return Usage(input_tokens=inp, output_tokens=out, output_audio_tokens=out, input_characters=chars)


class SpeechAdapter(FixedOutput):
    """``audio.speech.create`` (``/audio/speech``)."""

    provider = "openai"
    operation = "speech"
    name = "OpenAI audio.speech"
    what = "audio.speech"

    def describe(self, kwargs: Mapping[str, Any], strict: bool) -> Call | None:
        model = value(kwargs, "model")
        text = value(kwargs, "input")
        if not isinstance(model, str) or not isinstance(text, str):
            return None
        chars = len(text)
        if model.startswith(CHARACTER_BILLED):
            bound = out = 0  # billed per character only
        else:
            bound = ESTIMATOR.estimate(model, None, system=text, strict=strict)[0]
            instructions = value(kwargs, "instructions")
            if instructions is not None:
                bound += measure(instructions)[0]
            out = SPEECH_OUTPUT_TOKENS_PER_CHARACTER * chars + SPEECH_OUTPUT_TOKENS
        return Call(model=model, provider=self.provider, input_tokens=bound, max_output_tokens=out,
                    operation=self.operation, messages=1, units={"input_characters": chars},
                    strict_provider=self.strict_provider)

    def usage(self, response: Any) -> Usage:
        """From the request the SDK sent (the answer is audio) and, for SSE, the answer's last event."""
        http = getattr(response, "response", None)
        request = getattr(http, "request", None)
        if request is None:
            raise usage_error("An OpenAI speech answer", f"{type(response).__name__} carries no request to read")
        sent = json.loads(request.content)
        kind = http.headers.get("content-type", "")  # type: ignore[union-attr]
        return speech_usage(str(sent.get("model")), str(sent.get("input", "")),
                            http.content if kind.startswith("text/event-stream") else None)  # type: ignore[union-attr]


# ------------------------------------------------------------------ transcription, translation
def transcription_usage(response: Any) -> Usage:
    """``Usage`` of a transcription or translation answer (SDK object or dict)."""
    u = field(response, "usage") if not isinstance(response, str) else None
    if u is None:
        duration = field(response, "duration") if not isinstance(response, str) else None
        if duration is None:
            raise usage_error(
                "An OpenAI transcription or translation came back without usage",
                "plain-text formats and json translations report none: billed at the file's bound; "
                "response_format='verbose_json' (Whisper) or 'json' (GPT-4o) reports it",
            )
        seconds = whole_seconds(duration)
        return Usage(audio_seconds=seconds, input_audio_seconds=seconds)
    kind = field(u, "type")
    if kind == "duration":
        seconds = whole_seconds(field(u, "seconds"))
        return Usage(audio_seconds=seconds, input_audio_seconds=seconds)
    inp, out = field(u, "input_tokens"), field(u, "output_tokens")
    if inp is None or out is None:
        raise usage_error("OpenAI transcription usage lacks input_tokens/output_tokens", f"got {u!r}")
    details = field(u, "input_token_details")
    audio = field(details, "audio_tokens") if details is not None else None
    if audio is None:  # no split: every input token counted audio (the dearer kind, never less)
        text = field(details, "text_tokens") if details is not None else None
        audio = inp - text if isinstance(text, int) and isinstance(inp, int) else inp
    return Usage(input_tokens=inp, output_tokens=out, input_audio_tokens=audio)


class TranscriptionMeter(Meter):
    """A transcription stream: text deltas counted, usage on ``transcript.text.done``."""

    __slots__ = ()

    def feed(self, event: Any) -> bool:
        kind = field(event, "type")
        if kind == "transcript.text.delta":
            self.add_text(field(event, "delta"))
        elif kind == "transcript.text.done" and field(event, "usage") is not None:
            self.usage = transcription_usage(event)
        return True

    def billed(self, ticket: Any) -> Usage:
        """A stream that ended before its usage: the audio was heard, so the whole bound."""
        return ticket.worst_case_usage()  # type: ignore[no-any-return]


def _limits(model: str) -> tuple[int, int] | None:
    for name, limits in TRANSCRIBE_LIMITS.items():
        if model == name or model.startswith(name + "-"):
            return limits
    return None


class TranscriptionAdapter(FixedOutput):
    """``audio.transcriptions.create`` or ``audio.translations.create`` (``kind``)."""

    provider = "openai"

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.operation = "transcription" if kind == "transcriptions" else "translation"
        self.name = f"OpenAI audio.{kind}"
        self.what = f"audio.{kind}"

    def describe(self, kwargs: Mapping[str, Any], strict: bool) -> Call | None:
        model = value(kwargs, "model")
        file = value(kwargs, "file")
        if not isinstance(model, str) or file is None:
            return None
        try:
            head, size, send = read_file(file)
        except (TypeError, OSError):
            return None  # not a file the SDK can send either: it raises its own error
        if send is not file and isinstance(kwargs, dict):
            kwargs["file"] = send  # a one-shot stream, read here: this call's own kwargs send it
        seconds = audio_seconds(head, size)
        units = {"audio_seconds": seconds, "input_audio_seconds": seconds}
        if self.kind == "translations" or model.startswith(DURATION_BILLED):
            return Call(model=model, provider=self.provider, input_tokens=0, max_output_tokens=0,
                        operation=self.operation, messages=1, units=units,
                        strict_provider=self.strict_provider)
        prompt = value(kwargs, "prompt")
        text = ESTIMATOR.estimate(model, None, system=prompt if isinstance(prompt, str) else None, strict=strict)[0]
        inp = AUDIO_TOKENS_PER_SECOND * seconds
        out = TRANSCRIPT_TOKENS_PER_SECOND * seconds
        limits = _limits(model)
        if limits is not None and value(kwargs, "chunking_strategy") is None:
            inp, out = min(inp, limits[0]), min(out, limits[1])
        return Call(model=model, provider=self.provider, input_tokens=text + inp, max_output_tokens=out,
                    operation=self.operation, stream=kwargs.get("stream") is True, messages=1, units=units,
                    strict_provider=self.strict_provider)

    def usage(self, response: Any) -> Usage:
        return transcription_usage(response)

    def meter(self, hide_usage: bool) -> Meter:
        return TranscriptionMeter(hide_usage)
