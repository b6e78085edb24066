"""``FakeLLM``: a loopback HTTP server speaking the OpenAI, Anthropic and Gemini wire formats.

Point the real SDKs at it (``openai.OpenAI(base_url=fake.base_url)``,
``anthropic.Anthropic(base_url=fake.anthropic_base_url)``, ``fake.gemini()`` for
``google.genai.Client``, ``fake.bedrock()`` for boto3's ``bedrock-runtime``: ``bedrock_wire``) to test
code that makes model calls with no network and no API key. It answers each request
with the next scripted ``Reply`` (or the default one), in JSON or as
server-sent events, honours the request's output cap, and records every
request so a test can count what actually reached "the provider".
"""

from __future__ import annotations

import json
import socket
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterable

from .reply import Received, Reply, ReplyLike, render
from .media_wire import MEDIA_APIS, media_answer, media_request, media_route
from .wire import error_body, json_body, stream_events

__all__ = ["FakeLLM"]

_SECRET_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "cookie", "x-amz-security-token"})


def _route(path: str) -> str | None:
    path = path.split("?", 1)[0].rstrip("/")
    if path.endswith("/chat/completions"):
        return "chat"
    if path.endswith("/responses"):
        return "responses"
    if path.endswith("/messages/count_tokens"):
        return "count_tokens"
    if path.endswith("/messages"):
        return "messages"
    if path.endswith((":generateContent", ":streamGenerateContent")):
        return "gemini"
    if path.endswith(":countTokens"):
        return "gemini_count_tokens"
    return media_route(path)  # embeddings, images, audio


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-stream (a test abandoning or cutting a stream) is expected.
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class FakeLLM:
    """A scripted model server on ``127.0.0.1`` (a context manager; also ``start()``/``stop()``).

    Args:
        script: replies to give, in order, one per request (a ``Reply`` or a
            function ``(Received) -> Reply``).
        default: the reply once the script is used up; ``None`` answers 500
            ("script exhausted") so a test notices an unexpected extra call.

    Attributes:
        requests: every ``Received`` request, in arrival order.
        base_url: ``http://127.0.0.1:PORT/v1`` for ``openai.OpenAI(base_url=...)``
            (Anthropic clients also work with it, but ``anthropic_base_url`` is the natural one).
        anthropic_base_url: ``http://127.0.0.1:PORT`` for ``anthropic.Anthropic(base_url=...)``.
        gemini_base_url: ``http://127.0.0.1:PORT`` for ``google.genai.Client(http_options=
            types.HttpOptions(base_url=...))`` (the SDK adds ``/v1beta/models/...``).
        bedrock_endpoint_url: ``http://127.0.0.1:PORT`` for ``boto3.client("bedrock-runtime",
            endpoint_url=...)`` (``fake.bedrock()`` makes such a client with dummy credentials).
    """

    def __init__(self, script: Iterable[ReplyLike] = (), *, default: ReplyLike | None = Reply()) -> None:
        self.default = default
        self.requests: list[Received] = []
        self._script: deque[ReplyLike] = deque(script)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeLLM:
        if self._server is None:
            server = _Server(("127.0.0.1", 0), _Handler)
            server.fake = self  # type: ignore[attr-defined]
            self._server = server
            self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="FakeLLM", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeLLM is not running: use `with FakeLLM() as fake:` or call start()")
        return self._server.server_address[1]

    @property
    def anthropic_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def gemini_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    openai_base_url = base_url

    @property
    def bedrock_endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ script
    def push(self, *replies: ReplyLike) -> FakeLLM:
        """Queue replies for the next requests (before the default)."""
        with self._lock:
            self._script.extend(replies)
        return self

    def reset(self) -> None:
        """Forget received requests and the remaining script."""
        with self._lock:
            self.requests.clear()
            self._script.clear()

    @property
    def count(self) -> int:
        """How many model requests arrived (retries included)."""
        return len(self.requests)

    def _next(self, received: Received) -> Reply | None:
        with self._lock:
            self.requests.append(received)
            reply = self._script.popleft() if self._script else self.default
        if reply is not None and not isinstance(reply, Reply):
            reply = reply(received)
        return reply

    # ------------------------------------------------------------------ clients
    def openai(self, **kw: Any) -> Any:
        """An ``openai.OpenAI`` client pointed at this server."""
        import openai

        return openai.OpenAI(**{"base_url": self.base_url, "api_key": "fake-key", **kw})

    def async_openai(self, **kw: Any) -> Any:
        import openai

        return openai.AsyncOpenAI(**{"base_url": self.base_url, "api_key": "fake-key", **kw})

    def anthropic(self, **kw: Any) -> Any:
        """An ``anthropic.Anthropic`` client pointed at this server."""
        import anthropic

        return anthropic.Anthropic(**{"base_url": self.anthropic_base_url, "api_key": "fake-key", **kw})

    def async_anthropic(self, **kw: Any) -> Any:
        import anthropic

        return anthropic.AsyncAnthropic(**{"base_url": self.anthropic_base_url, "api_key": "fake-key", **kw})

    def gemini(self, **kw: Any) -> Any:
        """A ``google.genai.Client`` pointed at this server (its ``.aio`` is the async client).

        ``http_options`` given as a ``types.HttpOptions`` or a dict keeps its other
        settings; its ``base_url`` is this server's unless it names another. Keep a
        reference to the client while using it: google-genai closes its HTTP client
        when the ``Client`` object is collected, even if ``client.models`` is still held.
        """
        from google import genai
        from google.genai import types

        options = kw.pop("http_options", None)
        if options is None:
            options = types.HttpOptions()
        elif isinstance(options, dict):
            options = types.HttpOptions(**options)
        if options.base_url is None:
            options = options.model_copy(update={"base_url": self.gemini_base_url})
        return genai.Client(**{"api_key": "fake-key", "http_options": options, **kw})

    def bedrock(self, *, retries: int = 0, **kw: Any) -> Any:
        """A boto3 ``bedrock-runtime`` client pointed at this server, with dummy credentials and a
        region given, so botocore looks nothing up (no credential chain, no instance metadata).

        ``retries``: how many times botocore retries a throttled or failed request (its own
        default is 4, with back-off sleeps of up to seconds; 0 keeps tests fast).
        """
        import boto3  # type: ignore[import-untyped]
        from botocore.config import Config  # type: ignore[import-untyped]

        config = Config(retries={"total_max_attempts": retries + 1, "mode": "standard"})
        if kw.get("config") is not None:
            config = config.merge(kw.pop("config"))
        return boto3.client("bedrock-runtime", **{
            "region_name": "us-east-1", "endpoint_url": self.bedrock_endpoint_url, "aws_access_key_id": "fake-key",
            "aws_secret_access_key": "fake-secret", "config": config, **kw,
        })


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeLLM/1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        fake: FakeLLM = self.server.fake  # type: ignore[attr-defined]
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.startswith("/model/"):  # AWS Bedrock Runtime: its own errors and event-stream framing
            from .bedrock_wire import serve

            kept = {k.lower(): v for k, v in self.headers.items() if k.lower() not in _SECRET_HEADERS}
            return serve(self, fake, raw, kept)
        api = _route(self.path)
        if api is None:
            return self._json(404, {"error": {"message": f"FakeLLM does not serve {self.path}"}})
        try:
            media = api in MEDIA_APIS.values()
            body = media_request(self.headers.get("content-type", ""), raw) if media else json.loads(raw or b"{}")
        except ValueError:
            return self._json(400, error_body(api if api != "count_tokens" else "messages", 400, "body is not JSON"))
        if api == "count_tokens":
            from .reply import count_input

            return self._json(200, {"input_tokens": count_input(body)})
        if api == "gemini_count_tokens":
            from .gemini_wire import count_body
            from .reply import count_input

            return self._json(200, count_body(count_input(body)))
        headers = {k.lower(): v for k, v in self.headers.items() if k.lower() not in _SECRET_HEADERS}
        received = Received(api, self.path, body, headers)
        reply = fake._next(received)
        if reply is None:
            return self._json(500, error_body(api, 500, "FakeLLM script exhausted and no default reply"))
        if reply.status != 200:
            return self._json(reply.status, error_body(api, reply.status, reply.error),
                              {"retry-after-ms": "1", "x-should-retry": "true"})
        if media:
            return media_answer(self, api, reply, received)
        rendered = render(reply, received)
        model = str(received.model or "fake-model")
        if received.stream:
            return self._sse(stream_events(api, rendered, model, body), reply.break_after)
        return self._json(200, json_body(api, rendered, model, body))

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("x-request-id", "req_fake")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _sse(self, events: list[tuple[str | None, Any]], break_after: int | None) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("cache-control", "no-cache")
        self.end_headers()
        for i, (name, data) in enumerate(events):
            if break_after is not None and i >= break_after:
                # Drop the connection mid-body: no terminating chunk, so the client sees a broken stream.
                self.wfile.flush()
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            text = ("" if name is None else f"event: {name}\n") + "data: " + (
                data if isinstance(data, str) else json.dumps(data)
            ) + "\n\n"
            payload = text.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
