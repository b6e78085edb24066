"""instrument() imports no SDK: what is imported later is patched when it is imported.

Each test runs in a fresh interpreter (this process has every SDK imported already), against the
loopback FakeLLM, and prints what it saw for the assertions here.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

LAZY = r"""
import json, sys
import wrapt
import breaker
from breaker.testing import FakeLLM

out = {}
guard = breaker.Breaker(alerts=[])
guard.instrument()
out["loaded_by_instrument"] = [m for m in ("openai", "anthropic", "google.genai", "botocore") if m in sys.modules]

import openai  # after instrument(): patched as it is imported
from openai.resources.chat.completions.completions import Completions
out["chat_patched"] = isinstance(vars(Completions)["create"], wrapt.FunctionWrapper)
out["post_patched"] = isinstance(vars(openai._base_client.SyncAPIClient)["post"], wrapt.FunctionWrapper)
with FakeLLM() as fake:
    with guard.session("late") as s:
        fake.openai(max_retries=0).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=20)
        out["calls"], out["sent"] = s.calls, fake.count
    import anthropic.resources.messages.messages as am
    out["anthropic_patched"] = isinstance(vars(am.Messages)["create"], wrapt.FunctionWrapper)
    guard.uninstrument()
    out["restored"] = not any(isinstance(vars(c)[m], wrapt.FunctionWrapper) for c, m in
                              ((Completions, "create"), (am.Messages, "create"), (openai._base_client.SyncAPIClient, "post")))
    import openai.resources.embeddings as emb  # imported while nothing is instrumented: left alone
    out["embeddings_after_uninstrument"] = isinstance(vars(emb.Embeddings)["create"], wrapt.FunctionWrapper)
    other = breaker.Breaker(alerts=[])
    other.instrument()  # a second guard: what is imported now is patched for it, now
    out["embeddings_second_guard"] = isinstance(vars(emb.Embeddings)["create"], wrapt.FunctionWrapper)
    with other.session("second") as s:
        fake.openai(max_retries=0).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "again"}], max_tokens=20)
        out["second_calls"], out["second_sent"] = s.calls, fake.count
    other.uninstrument()
print(json.dumps(out))
"""

WRAP = r"""
import json, sys
import openai, breaker
client = openai.OpenAI(api_key="x", base_url="http://127.0.0.1:9/v1")
breaker.Breaker(alerts=[]).wrap(client)
print(json.dumps({"beta": "openai.resources.beta" in sys.modules, "anthropic": "anthropic" in sys.modules,
                  "chat_wrapped": "create" in vars(client.chat.completions)}))
"""


def _run(code: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def lazy() -> dict:
    return _run(LAZY)


def test_instrument_imports_no_sdk(lazy):
    assert lazy["loaded_by_instrument"] == []


def test_an_sdk_imported_after_instrument_is_patched_and_its_calls_counted(lazy):
    assert lazy["chat_patched"] and lazy["post_patched"] and lazy["anthropic_patched"]
    assert (lazy["calls"], lazy["sent"]) == (1, 1)


def test_uninstrument_restores_late_patches_and_a_second_guard_patches_again(lazy):
    assert lazy["restored"]
    assert lazy["embeddings_after_uninstrument"] is False
    assert lazy["embeddings_second_guard"] is True
    assert (lazy["second_calls"], lazy["second_sent"]) == (1, 2)


def test_wrap_of_an_openai_client_does_not_import_its_beta_namespace_nor_other_sdks():
    seen = _run(WRAP)
    assert seen == {"beta": False, "anthropic": False, "chat_wrapped": True}


BOTO = r"""
import json, sys
import breaker
from breaker.testing import FakeLLM

guard = breaker.Breaker(alerts=[])
guard.instrument()
out = {"botocore_before": "botocore" in sys.modules}
import boto3  # after instrument(): botocore.session is patched by its hook, inside its own import
with FakeLLM() as fake:
    client = fake.bedrock()
    with guard.session("late-bedrock") as s:
        client.converse(modelId="us.anthropic.claude-sonnet-4-20250514-v1:0",
                        messages=[{"role": "user", "content": [{"text": "hi"}]}], inferenceConfig={"maxTokens": 20})
        out["calls"], out["sent"] = s.calls, fake.count
print(json.dumps(out))
"""


def test_boto3_imported_after_instrument_imports_and_its_bedrock_calls_are_counted():
    """The hook runs inside ``import botocore.session``, before the package has it as an attribute:
    reading ``botocore.session`` there failed the program's own ``import boto3``."""
    pytest.importorskip("boto3")
    assert _run(BOTO) == {"botocore_before": False, "calls": 1, "sent": 1}
