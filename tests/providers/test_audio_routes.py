"""OpenAI speech, transcription and translation through the real SDK against FakeLLM: billed in
their own units (characters, seconds, audio tokens) as genai-prices prices them, bounded from the
request where the answer reports nothing, refused before sending when a budget cannot pay."""

from __future__ import annotations

import io

import pytest

from breaker import Budget, BudgetExceeded, Usage
from breaker.providers.audio import SPEECH_OUTPUT_TOKENS, SPEECH_OUTPUT_TOKENS_PER_CHARACTER
from breaker.providers.media import MIN_AUDIO_BYTES_PER_SECOND
from breaker.testing import Reply
from tests.providers.conftest import killed_session
from tests.providers.routes_helpers import nano, reference, wav

TEXT = "The quick brown fox jumps over the lazy dog, twice."


# ------------------------------------------------------------------ speech
@pytest.mark.parametrize("model", ["tts-1", "tts-1-hd"])
def test_speech_is_billed_per_input_character(guard, fake, model):
    client = fake.openai(max_retries=0)
    with guard.session(f"tts-{model}") as s:
        audio = client.audio.speech.create(model=model, voice="alloy", input=TEXT)
    assert audio.content.startswith(b"ID3")  # the caller's audio, as sent
    assert s.calls == 1 and s.tokens == 0
    assert nano(s.cost_usd) == reference(Usage(input_characters=len(TEXT)), model) > 0


def test_a_speech_budget_is_enforced_before_sending(make_guard, fake):
    cost = reference(Usage(input_characters=1000), "tts-1")  # $0.015
    guard = make_guard(budgets=[Budget(usd=cost / 1e9 * 0.99)]).instrument()
    client = fake.openai(max_retries=0)
    with killed_session(guard, "tts-poor"):
        with pytest.raises(BudgetExceeded):
            client.audio.speech.create(model="tts-1", voice="alloy", input="a" * 1000)
    assert fake.count == 0
    with guard.session("tts-fits") as s:
        client.audio.speech.create(model="tts-1", voice="alloy", input="a" * 900)  # what it can pay for
    assert fake.count == 1 and nano(s.cost_usd) == reference(Usage(input_characters=900), "tts-1")


async def test_async_token_priced_speech_with_sse_is_billed_what_it_reports(guard, fake):
    client = fake.async_openai(max_retries=0)
    async with guard.session("tts-sse") as s:
        await client.audio.speech.create(model="gpt-4o-mini-tts", voice="alloy", input=TEXT, stream_format="sse")
    inp, out = -(-len(TEXT) // 4), 2 * len(TEXT)  # what the fake reports
    assert s.calls == 1 and s.tokens == inp + out
    billed = Usage(input_tokens=inp, output_tokens=out, output_audio_tokens=out, input_characters=len(TEXT))
    assert nano(s.cost_usd) == reference(billed, "gpt-4o-mini-tts")


def test_token_priced_speech_without_usage_is_billed_its_bound(guard, fake):
    client = fake.openai(max_retries=0)
    with guard.session("tts-bound") as s:
        audio = client.audio.speech.create(model="gpt-4o-mini-tts", voice="alloy", input=TEXT, response_format="wav")
    assert audio.content[:4] == b"RIFF"
    bound_in = len(TEXT) + 8 + 16  # its bytes, one message, the request overhead (breaker.estimate)
    bound_out = SPEECH_OUTPUT_TOKENS_PER_CHARACTER * len(TEXT) + SPEECH_OUTPUT_TOKENS
    assert s.tokens == bound_in + bound_out
    assert nano(s.cost_usd) == reference(Usage(input_tokens=bound_in, output_tokens=bound_out), "gpt-4o-mini-tts")


def test_streamed_speech_read_raw_is_billed_its_characters(guard, fake):
    client = fake.openai(max_retries=0)
    with guard.session("tts-raw") as s:
        with client.audio.speech.with_streaming_response.create(model="tts-1", voice="nova", input=TEXT) as r:
            data = b"".join(r.iter_bytes())
        assert data.startswith(b"ID3")
    assert s.calls == 1 and nano(s.cost_usd) == reference(Usage(input_characters=len(TEXT)), "tts-1")


# ------------------------------------------------------------------ transcription, translation
@pytest.mark.parametrize("model", ["whisper-1", "gpt-transcribe"])
def test_per_second_models_are_billed_the_seconds_they_report(guard, fake, model):
    client = fake.openai(max_retries=0)
    with guard.session(f"seconds-{model}") as s:
        r = client.audio.transcriptions.create(model=model, file=("talk.wav", wav(3.5)))
    assert r.usage.seconds == 3.5
    assert s.calls == 1 and s.tokens == 0
    assert nano(s.cost_usd) == reference(Usage(audio_seconds=4, input_audio_seconds=4), model) > 0


async def test_async_whisper_text_answer_is_billed_the_files_duration(guard, fake):
    client = fake.async_openai(max_retries=0)
    async with guard.session("whisper-text") as s:
        text = await client.audio.transcriptions.create(model="whisper-1", file=("a.wav", wav(7)),
                                                        response_format="text")
    assert isinstance(text, str) and text  # plain text: no usage in it
    assert nano(s.cost_usd) == reference(Usage(audio_seconds=7, input_audio_seconds=7), "whisper-1")


def test_a_file_object_is_measured_without_being_consumed(guard, fake):
    data = wav(2)
    f = io.BytesIO()
    f.write(data)  # left at its end: the upload still sends it from the start
    with guard.session("file-object") as s:
        fake.openai(max_retries=0).audio.transcriptions.create(model="whisper-1", file=f)
    assert fake.requests[0].body["file"]["bytes"] == len(data)  # all of it was sent
    assert nano(s.cost_usd) == reference(Usage(audio_seconds=2, input_audio_seconds=2), "whisper-1")


def test_gpt_4o_transcription_bills_audio_tokens(guard, fake):
    client = fake.openai(max_retries=0)
    with guard.session("4o") as s:
        r = client.audio.transcriptions.create(model="gpt-4o-transcribe", file=("a.wav", wav(12)),
                                               prompt="names: Ada")
    u = r.usage
    assert u.input_token_details.audio_tokens == 120
    billed = Usage(input_tokens=u.input_tokens, output_tokens=u.output_tokens, input_audio_tokens=120)
    assert nano(s.cost_usd) == reference(billed, "gpt-4o-transcribe")
    assert nano(s.cost_usd) > reference(Usage(input_tokens=u.input_tokens, output_tokens=u.output_tokens),
                                        "gpt-4o-transcribe")  # audio is dearer than text


async def test_async_transcription_stream_is_billed_from_its_done_event(guard, fake):
    fake.push(Reply(text="one two three four"))
    client = fake.async_openai(max_retries=0)
    async with guard.session("4o-stream") as s:
        stream = await client.audio.transcriptions.create(model="gpt-4o-mini-transcribe", file=("a.wav", wav(5)),
                                                          stream=True)
        kinds = [event.type async for event in stream]
    assert kinds == ["transcript.text.delta"] * 4 + ["transcript.text.done"]
    billed = Usage(input_tokens=50, output_tokens=4, input_audio_tokens=50)
    assert s.calls == 1 and nano(s.cost_usd) == reference(billed, "gpt-4o-mini-transcribe")


def test_a_transcription_budget_refuses_before_the_audio_is_sent(make_guard, fake):
    # an mp3-like body of 60,000 bytes may hold 120 s (4 kbit/s): up to $0.012 at $0.36 an hour
    guard = make_guard(budgets=[Budget(usd=0.01)]).instrument()
    client = fake.openai(max_retries=0)
    body = b"ID3" + b"\x00" * (120 * MIN_AUDIO_BYTES_PER_SECOND - 3)
    with killed_session(guard, "whisper-poor"):
        with pytest.raises(BudgetExceeded):
            client.audio.transcriptions.create(model="whisper-1", file=("talk.mp3", body))
    assert fake.count == 0
    with guard.session("whisper-fits") as s:
        client.audio.transcriptions.create(model="whisper-1", file=("talk.mp3", body[:30_000]))  # 60 s: fits
    assert fake.count == 1 and s.calls == 1


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK deprecates translations
@pytest.mark.parametrize("fmt", ["verbose_json", "json"])
def test_translations_are_billed_in_seconds(guard, fake, fmt):
    client = fake.openai(max_retries=0)
    with guard.session(f"translate-{fmt}") as s:
        r = client.audio.translations.create(model="whisper-1", file=("a.wav", wav(9.2)), response_format=fmt)
    assert r.text
    # verbose answers say 9.2 s (billed 10); plain json says nothing: the WAV header bounds it at 10
    assert s.calls == 1 and nano(s.cost_usd) == reference(Usage(audio_seconds=10, input_audio_seconds=10), "whisper-1")


def test_audio_routes_through_wrap_are_billed_once(make_guard, fake):
    guard = make_guard()
    client = guard.wrap(fake.openai(max_retries=0))
    with guard.session("audio-wrap") as s:
        client.audio.speech.create(model="tts-1", voice="alloy", input=TEXT)
        client.audio.transcriptions.create(model="whisper-1", file=("a.wav", wav(1)))
    assert fake.count == 2 and s.calls == 2
    expected = reference(Usage(input_characters=len(TEXT)), "tts-1") + reference(
        Usage(audio_seconds=1, input_audio_seconds=1), "whisper-1")
    assert nano(s.cost_usd) == expected


def test_audio_posted_directly_is_metered_once(guard, fake):
    from openai._legacy_response import HttpxBinaryResponseContent
    from openai.types.audio import Transcription

    client = fake.openai(max_retries=0)
    form = {"headers": {"Content-Type": "multipart/form-data"}}
    with guard.session("audio-post") as s:
        r = client.post("/audio/transcriptions", body={"model": "whisper-1"}, files=[("file", ("a.wav", wav(2)))],
                        cast_to=Transcription, options=form)
        audio = client.post("/audio/speech", body={"model": "tts-1", "input": TEXT, "voice": "alloy"},
                            cast_to=HttpxBinaryResponseContent)
    assert r.usage.seconds == 2 and audio.content.startswith(b"ID3")
    assert fake.requests[0].body["file"]["bytes"] == len(wav(2))  # the upload went as it came
    assert fake.count == 2 and s.calls == 2
    expected = reference(Usage(audio_seconds=2, input_audio_seconds=2), "whisper-1") + reference(
        Usage(input_characters=len(TEXT)), "tts-1")
    assert nano(s.cost_usd) == expected


def test_a_one_shot_upload_is_read_once_and_still_sent_whole(guard, fake):
    class Pipe(io.RawIOBase):  # a stream that cannot seek: read once, then gone
        def __init__(self, data: bytes) -> None:
            self.data, self.name = data, "pipe.wav"

        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:
            n = min(len(b), len(self.data))
            b[:n], self.data = self.data[:n], self.data[n:]
            return n

    data = wav(3)
    with guard.session("pipe") as s:
        fake.openai(max_retries=0).audio.transcriptions.create(model="whisper-1", file=Pipe(data))
    assert fake.requests[0].body["file"] == {"filename": "pipe.wav", "bytes": len(data), "seconds": 3.0}
    assert nano(s.cost_usd) == reference(Usage(audio_seconds=3, input_audio_seconds=3), "whisper-1")
