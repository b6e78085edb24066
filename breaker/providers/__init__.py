"""Provider adapters: they know request and response shapes, nothing about money.

``patching``   ``instrument()`` / ``uninstrument()`` / ``wrap(client)``: what is patched, and how
``attempt``    the pure part of one call through an adapter (describe → patch → usage → settlement)
``drivers``    the sync and async I/O around an ``Attempt``, stream managers included
``streams``    stream proxies: metered as events arrive, cut at the reservation, billed once
``openai``     OpenAI chat completions and Responses shapes
``anthropic``  Anthropic Messages shape
``effort``     reasoning effort: one vocabulary, lowered never raised; Anthropic thinking budgets
``trim``       a shorter history per request shape (``Degrade(keep_last_messages=...)``)

Nothing here imports the engine: adapters talk to it through ``breaker.adapter.Guard``.
"""
