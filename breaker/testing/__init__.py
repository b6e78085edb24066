"""Test helpers for code that uses breaker: a fake model server, no network, no API key.

```python
from breaker.testing import FakeLLM, Reply

with FakeLLM(default=Reply(text="hi", input_tokens=100, cached_tokens=40)) as fake:
    client = openai.OpenAI(base_url=fake.base_url, api_key="x")
    client.chat.completions.create(model="gpt-4o-mini", messages=[...])
    assert fake.count == 1
```
"""

from __future__ import annotations

from .reply import Received, Reply
from .server import FakeLLM

__all__ = ["FakeLLM", "Received", "Reply"]
