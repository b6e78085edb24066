"""Provider adapters: they know request and response shapes, nothing about money.

``patching``   ``instrument()`` / ``uninstrument()`` / ``wrap(client)``: what is patched, and how
``attempt``    the pure part of one call through an adapter (describe → patch → usage → settlement)
``drivers``    the sync and async I/O around an ``Attempt``, stream managers included
``streams``    stream proxies: metered as events arrive, cut at the reservation, billed once
``openai``     OpenAI chat completions and Responses shapes
``anthropic``  Anthropic Messages shape
``bedrock``    AWS Bedrock Runtime shapes (Converse, InvokeModel with Anthropic bodies)
``bedrock_client``  boto3 ``bedrock-runtime`` clients: wrapped per object (``instrument()`` via ``create_client``)
``embeddings`` ``images`` ``audio``  the OpenAI SDK's other billed routes; ``media`` what they share;
``openai_routes``  their patch targets, ``post()`` paths and ``wrap()`` resources
``effort``     reasoning effort: one vocabulary, lowered never raised; Anthropic thinking budgets
``trim``       a shorter history per request shape (``Degrade(keep_last_messages=...)``)

Nothing here imports the engine: adapters talk to it through ``breaker.adapter.Guard``.
"""
