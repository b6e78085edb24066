"""A scripted LangChain chat model: the fake that stands in for a provider.

It counts the calls that reach it (in a list shared by its copies, since the
middleware degrades by copying the chat model), honours ``max_tokens`` like a
provider does, and reports usage the way LangChain integrations do.
"""

from __future__ import annotations

from typing import Any, Callable

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult


def usage(inp: int, out: int, *, cache_read: int = 0, cache_creation: int = 0, reasoning: int = 0) -> dict:
    meta: dict[str, Any] = {"input_tokens": inp, "output_tokens": out, "total_tokens": inp + out}
    if cache_read or cache_creation:
        meta["input_token_details"] = {"cache_read": cache_read, "cache_creation": cache_creation}
    if reasoning:
        meta["output_token_details"] = {"reasoning": reasoning}
    return meta


def runaway(n: int, messages: list[BaseMessage]) -> AIMessage:
    """A model that never stops calling tools, with fresh arguments each time (no loop signal)."""
    return AIMessage(
        content="",
        tool_calls=[{"name": "search", "args": {"q": f"attempt {n}"}, "id": f"call-{n}"}],
        usage_metadata=usage(2_000, 500),
    )


class ScriptedChat(BaseChatModel):
    model_name: str = "gpt-4o"
    provider: str = "openai"
    max_tokens: int | None = None
    script: Callable[[int, list[BaseMessage]], AIMessage] = runaway
    sent: list = []  # (model_name, max_tokens, message count) of each call that reached the model

    def _reply(self, messages: list[BaseMessage], kwargs: dict) -> ChatResult:
        cap = kwargs.get("max_tokens", self.max_tokens)
        self.sent.append((self.model_name, cap, len(messages)))
        message = self.script(len(self.sent), messages)
        meta = message.usage_metadata
        if cap is not None and meta and meta["output_tokens"] > cap:  # a provider stops at the cap
            message = message.model_copy(update={"usage_metadata": {**meta, "output_tokens": cap}})
        message = message.model_copy(update={"response_metadata": {"model_name": self.model_name, "model_provider": self.provider}})
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(self, messages, stop=None, run_manager=None, **kwargs: Any) -> ChatResult:
        return self._reply(messages, kwargs)

    async def _agenerate(self, messages, stop=None, run_manager=None, **kwargs: Any) -> ChatResult:
        return self._reply(messages, kwargs)

    def _stream(self, messages, stop=None, run_manager=None, **kwargs: Any):
        """Stream the scripted answer word by word (one token a chunk, like providers)."""
        from langchain_core.messages import AIMessageChunk
        from langchain_core.outputs import ChatGenerationChunk

        cap = kwargs.get("max_tokens", self.max_tokens)
        self.sent.append((self.model_name, cap, len(messages)))
        message = self.script(len(self.sent), messages)
        words = str(message.content).split(" ")
        for i, word in enumerate(words):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=word + " "))
            if run_manager is not None:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk
        yield ChatGenerationChunk(message=AIMessageChunk(content="", usage_metadata=message.usage_metadata))

    def bind_tools(self, tools, *, tool_choice=None, **kwargs: Any):
        return self.bind(tools=[getattr(t, "name", t) for t in tools], **kwargs)

    def _get_ls_params(self, stop=None, **kwargs: Any):
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = self.provider
        return params

    @property
    def _llm_type(self) -> str:
        return "scripted"


def fake(script=runaway, *, model: str = "gpt-4o", provider: str = "openai", sent: list | None = None) -> ScriptedChat:
    return ScriptedChat(model_name=model, provider=provider, script=script, sent=[] if sent is None else sent)


class HonestChat(ScriptedChat):
    """A ``ScriptedChat`` whose usage follows the request, for tests and benchmarks about money.

    ScriptedChat reports whatever its script says (2,000 input tokens for any prompt);
    this one reports what a provider would count for what it received: input is
    ``breaker.testing.reply.count_input`` of the request in the OpenAI wire format
    (``convert_to_openai_messages`` of the messages, and the tool schemas it was bound
    with), a count that is always below breaker's strict bound, as a tokenizer's is;
    output is the script's, never past the request's ``max_tokens``. A reply the cap
    cuts short is cut as a provider cuts it: its tool calls are dropped (a cut
    answer cannot carry a complete call), and ``cut`` counts such replies.
    """

    cut: list = []  # one entry per reply cut short by its max_tokens (shared by the degraded copies)
    inputs: list = []  # the input tokens reported for each call, in order

    def _reply(self, messages: list[BaseMessage], kwargs: dict) -> ChatResult:
        cap = kwargs.get("max_tokens", self.max_tokens)
        self.sent.append((self.model_name, cap, len(messages)))
        message = self.script(len(self.sent), messages)
        meta = dict(message.usage_metadata or usage(0, len(str(message.content).split())))
        meta["input_tokens"] = request_tokens(messages, kwargs.get("tools"))
        self.inputs.append(meta["input_tokens"])
        update: dict[str, Any] = {}
        if cap is not None and meta["output_tokens"] > cap:  # the provider stops at the cap
            meta["output_tokens"] = cap
            self.cut.append(len(self.sent))
            update = {"tool_calls": [], "content": " ".join(str(message.content).split()[:cap])}
        meta["total_tokens"] = meta["input_tokens"] + meta["output_tokens"]
        update.update(usage_metadata=meta,
                      response_metadata={"model_name": self.model_name, "model_provider": self.provider})
        return ChatResult(generations=[ChatGeneration(message=message.model_copy(update=update))])

    def _stream(self, messages, stop=None, run_manager=None, **kwargs: Any):  # pragma: no cover - not used
        raise NotImplementedError("HonestChat does not stream")

    def bind_tools(self, tools, *, tool_choice=None, **kwargs: Any):
        from langchain_core.utils.function_calling import convert_to_openai_tool

        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)


def request_tokens(messages: list[Any], tools: list | None = None) -> int:
    """What a provider counts for a LangChain request: ``count_input`` of its OpenAI wire form."""
    from langchain_core.messages import convert_to_openai_messages

    from breaker.testing.reply import count_input

    body: dict[str, Any] = {"messages": convert_to_openai_messages(messages)}
    if tools:
        body["tools"] = tools
    return count_input(body)


def honest(script=runaway, *, model: str = "gpt-4o", provider: str = "openai", max_tokens: int | None = None) -> HonestChat:
    return HonestChat(model_name=model, provider=provider, script=script, sent=[], cut=[], inputs=[],
                      max_tokens=max_tokens)
