"""An agent on AWS Bedrock (boto3 Converse), guarded, against the built-in fake model: no AWS account,
no credentials, no network.

A plain call, a streamed one, and a runaway loop the session budget stops before it spends more.
Swap `fake.bedrock()` for `boto3.client("bedrock-runtime", region_name="us-east-1")` and it is the
real thing (cross-region ids such as `us.anthropic...`, `eu.amazon.nova-pro-v1:0` are priced at AWS's rates).

Needs `pip install agent-cost-breaker[bedrock]` (boto3).
"""

from __future__ import annotations

import breaker
from breaker.testing import FakeLLM, Reply

MODEL = "us.anthropic.claude-sonnet-4-20250514-v1:0"
NOTES = "Checked the order, the courier and the hub; nothing conclusive yet. " * 40


def ask(text: str) -> list[dict]:
    return [{"role": "user", "content": [{"text": text}]}]


with FakeLLM(default=Reply(text="Your order 42 is at the hub.")) as fake:
    guard = breaker.Breaker(budgets=[breaker.Budget(usd=0.05)], alerts=[])
    # fake.bedrock() is boto3.client("bedrock-runtime", endpoint_url=fake.bedrock_endpoint_url, ...)
    # with dummy credentials and a region, so botocore looks nothing up.
    client = guard.wrap(fake.bedrock())

    with guard.session("ticket-42", feature="support") as s:
        answer = client.converse(modelId=MODEL, messages=ask("Where is my order 42?"),
                                 inferenceConfig={"maxTokens": 200})
        print("model:", answer["output"]["message"]["content"][0]["text"])
        stream = client.converse_stream(modelId=MODEL, messages=ask("And when will it arrive?"))
        text = "".join(e["contentBlockDelta"]["delta"].get("text", "") for e in stream["stream"]
                       if "contentBlockDelta" in e)
        print("streamed:", text)
    print(f"${s.cost_usd:.6f} spent, {s.calls} calls, {s.tokens} tokens")

    history = ask("Find out why order 42 is late.")
    try:
        with guard.session("runaway", feature="support") as runaway:
            for step in range(1, 1_000):
                try:
                    reply = client.converse(modelId=MODEL, messages=history, inferenceConfig={"maxTokens": 400})
                    history += [reply["output"]["message"], {"role": "user", "content": [{"text": NOTES}]}]
                except Exception as e:  # agent code swallows errors and keeps going...
                    print("agent swallowed:", e)
    except breaker.SessionKilled as killed:
        print("SessionKilled:", killed)
        print(f"spent ${runaway.cost_usd:.4f} of $0.05 in {runaway.calls} calls; "
              f"FakeLLM received {fake.count - 2} of them (none after the kill)")
