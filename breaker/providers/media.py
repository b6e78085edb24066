"""What the OpenAI SDK's non-chat routes share: files measured without being consumed,
an audio file's duration bounded, and the rule for outputs no request can cap.

Why a rule for uncappable outputs: a chat request carries ``max_tokens``, so when a
budget can pay for only part of the worst case the engine lowers the cap and the
provider stops there. An image, a speech file or a transcript has no such field: it
costs what it costs. ``FixedOutput.apply`` therefore never sends such a request with
less output reserved than its bound: when the reservation (or
``Degrade(max_output_tokens=...)``) would cap it, the call is refused before it is sent
(``output_refusal``), never sent to overrun its budget.

Audio duration bounds (``audio_seconds``), for the routes billed per second of audio:

* a WAV file: its data bytes at the header's byte rate (the smaller of the declared
  byte rate and sample rate × block size, so a header that understates its rate
  cannot shrink the bound);
* a FLAC file with a sample count in its STREAMINFO block: samples / sample rate;
* anything else (mp3, m4a, ogg, webm...): the file's bytes at ``MIN_AUDIO_BYTES_PER_SECOND``
  (4 kbit/s, below the lowest bitrate of the codecs OpenAI accepts at speech quality:
  MP3's 8 kbit/s, Opus' 6 kbit/s). A bound for real recordings, not a proof: a file
  of mostly digital silence with discontinuous transmission can pack more seconds.

Every bound is rounded up to whole seconds; so is a duration the provider reports.
"""

from __future__ import annotations

import io
import math
import os
import struct
from typing import Any

from ..adapter import Call, Patch
from ..errors import BudgetExceeded
from .attempt import Adapter

__all__ = [
    "FixedOutput",
    "MIN_AUDIO_BYTES_PER_SECOND",
    "audio_seconds",
    "output_refusal",
    "read_file",
    "whole_seconds",
]

MIN_AUDIO_BYTES_PER_SECOND = 500
"""4 kbit/s: the bitrate at which a compressed audio file's bytes bound its duration."""

_HEAD = 65_536  # enough of a file for any header read here


def whole_seconds(seconds: Any) -> int:
    """A provider's reported duration as billed whole seconds (rounded up, never negative)."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        raise ValueError(f"an audio duration must be a finite number of seconds, got {seconds!r}")
    return max(0, math.ceil(seconds))


def read_file(value: Any) -> tuple[bytes, int, Any]:
    """``(first bytes, size, value to send)`` of an SDK file argument, without consuming it.

    ``FileTypes``: bytes, a path, a file object, or a ``(filename, content, ...)`` tuple.
    A seekable file is measured from its start (httpx uploads it from there) and put back
    where it was; a non-seekable one is read whole
    and replaced by a ``(name, bytes)`` tuple, which the SDK sends the same way.
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value[:_HEAD])
        return data, len(value), value
    if isinstance(value, os.PathLike):
        with open(value, "rb") as f:
            return f.read(_HEAD), os.path.getsize(value), value
    if isinstance(value, tuple) and len(value) >= 2:
        head, size, content = read_file(value[1])
        return head, size, value if content is value[1] else (value[0], content, *value[2:])
    read = getattr(value, "read", None)
    if read is None or isinstance(value, str):
        raise TypeError(f"breaker cannot read the file argument {type(value).__name__} to bound its cost")
    seekable = getattr(value, "seekable", None)
    if seekable is not None and seekable():
        start = value.tell()  # httpx uploads a seekable file from its start, wherever it stands
        value.seek(0)
        head = read(_HEAD)
        end = value.seek(0, io.SEEK_END)
        value.seek(start)
        return bytes(head), end, value
    data = bytes(read())
    name = os.path.basename(str(getattr(value, "name", "") or "upload"))
    return data[:_HEAD], len(data), (name, data)


def audio_seconds(head: bytes, size: int) -> int:
    """A bound on the seconds of audio in a file (see the module docstring)."""
    seconds = _wav_seconds(head, size)
    if seconds is None:
        seconds = _flac_seconds(head)
    if seconds is None:
        seconds = size / MIN_AUDIO_BYTES_PER_SECOND
    return max(1, math.ceil(seconds))


def _wav_seconds(head: bytes, size: int) -> float | None:
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    rate = 0
    at = 12
    while at + 8 <= len(head):
        tag = head[at:at + 4]
        length = struct.unpack_from("<I", head, at + 4)[0]
        if tag == b"fmt " and at + 20 <= len(head):
            _, _, sample_rate, byte_rate, block = struct.unpack_from("<HHIIH", head, at + 8)
            rates = [r for r in (byte_rate, sample_rate * block) if r > 0]
            rate = min(rates) if rates else 0
        elif tag == b"data":
            if rate <= 0:
                return None
            return max(0, size - (at + 8)) / rate  # every byte after the header, whatever it declares
        at += 8 + length + (length & 1)
    return None


def _flac_seconds(head: bytes) -> float | None:
    if len(head) < 42 or head[:4] != b"fLaC" or head[4] & 0x7F != 0:  # STREAMINFO comes first
        return None
    bits = int.from_bytes(head[18:26], "big")
    sample_rate = bits >> 44
    samples = bits & ((1 << 36) - 1)
    if sample_rate <= 0 or samples <= 0:
        return None
    return samples / sample_rate


def output_refusal(what: str, call: Call, granted: int) -> BudgetExceeded:
    """The refusal of a request whose output cannot be capped, when less than its bound is paid for."""
    return BudgetExceeded(
        f"This {what} request can be billed up to {call.max_output_tokens:,} output tokens for "
        f"{call.model}, and its output cannot be capped (the API has no output limit for it); the "
        f"budget (or Degrade(max_output_tokens=...)) leaves only {granted:,}, so breaker did not send "
        f"it. Ask for less (fewer or smaller images, shorter audio) or raise the budget.",
        scope="request", key=None, reason="output_uncapped", metric="tokens",
        spent=None, limit=float(granted), sticky=False,
    )


class FixedOutput(Adapter):
    """An adapter for a route whose request has no output cap (images, speech, transcription).

    ``describe`` sets ``Call.max_output_tokens`` to the route's output bound; ``apply``
    switches the model (``Degrade(model_map=...)``) and runs the hook, and refuses
    rather than send with less output paid for than that bound (module docstring).
    """

    what = "OpenAI request"

    def apply(self, kwargs: dict[str, Any], patch: Patch, call: Call) -> dict[str, Any]:
        cap = patch.max_output_tokens
        if cap is not None and call.max_output_tokens is not None and cap < call.max_output_tokens:
            raise output_refusal(self.what, call, cap)
        kw = dict(kwargs)
        if patch.model is not None:
            kw["model"] = patch.model
        if patch.hook is not None:
            kw = patch.hook(kw)
        return kw

