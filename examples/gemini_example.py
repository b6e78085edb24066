"""An agent on Google Gemini (google-genai), guarded, against the built-in fake model: no API key,
no network.

A plain call, a streamed one, a chat, and a runaway loop the session budget stops before it spends
more. Swap `fake.gemini()` for `genai.Client()` (it reads `GEMINI_API_KEY`) and it is the real thing.

Needs `pip install agent-cost-breaker[gemini]` (google-genai).
"""

from __future__ import annotations

from google.genai import types

import breaker
from breaker.testing import FakeLLM, Reply

MODEL = "gemini-2.5-flash"
NOTES = "Checked the order, the courier and the hub; nothing conclusive yet. " * 40

with FakeLLM(default=Reply(text="Your order 42 is at the hub.", reasoning_tokens=40)) as fake:
    guard = breaker.Breaker(budgets=[breaker.Budget(usd=0.01)], alerts=[])
    # fake.gemini() is genai.Client(api_key=..., http_options=types.HttpOptions(base_url=fake.gemini_base_url)).
    # wrap() guards this client and its async twin, client.aio.
    client = guard.wrap(fake.gemini())

    with guard.session("ticket-42", feature="support") as s:
        answer = client.models.generate_content(
            model=MODEL, contents="Where is my order 42?",
            config=types.GenerateContentConfig(max_output_tokens=200, system_instruction="Be brief."),
        )
        print("model:", answer.text)
        streamed = "".join(chunk.text or "" for chunk in client.models.generate_content_stream(
            model=MODEL, contents="And when will it arrive?"))
        print("streamed:", streamed)
        chat = client.chats.create(model=MODEL)
        print("chat:", chat.send_message("Thanks! Can I change the address?").text)
        print(f"${s.cost_usd:.6f} spent, {s.calls} calls, {s.tokens} tokens (thinking billed as output)")

    contents: list[types.Content] = [types.Content(role="user", parts=[types.Part(text="Find out why order 42 is late.")])]
    sent_before = fake.count
    try:
        with guard.session("runaway", feature="support") as runaway:
            for step in range(1, 1_000):
                try:
                    reply = client.models.generate_content(
                        model=MODEL, contents=contents, config=types.GenerateContentConfig(max_output_tokens=400))
                    contents += [reply.candidates[0].content, types.Content(role="user", parts=[types.Part(text=NOTES)])]
                except Exception as e:  # agent code swallows errors and keeps going...
                    print("agent swallowed:", e)
    except breaker.SessionKilled as killed:
        print("SessionKilled:", killed)
        print(f"spent ${runaway.cost_usd:.4f} of $0.01 in {runaway.calls} calls; "
              f"FakeLLM received {fake.count - sent_before} of them (none after the kill)")
