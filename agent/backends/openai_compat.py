"""Any OpenAI-compatible chat-completions endpoint (DeepSeek API, vLLM, SGLang, llama.cpp server) over httpx + SSE.

Retries with backoff and jitter happen only before the first streamed byte; a stream cut after that
is reported as an `Error` event, never silently resumed. The server's answer is untrusted: every
chunk is validated (`wire.py`), and whatever it sends, `stream` ends with one `Done` or `Error` by
`params.deadline` (`http_exchange.py`). Every error message passes through `agent.redact`.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from ..events import Done, Error, Event, ReasoningDelta, TextDelta, Usage
from ..messages import Message
from ..redact import redact
from .base import GenerationParams, estimate_tokens
from .http_exchange import Aborted, DeadlinePassed, Exchange
from .server_info import discover_context_window
from .sse import SSEProblem, sse_data
from .tool_calls import ToolCallAccumulator
from .wire import ChunkProblem, error_document, error_text, parse_chunk, printable

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
DEFAULT_CONTEXT_WINDOW = 131072
RETRY_AFTER_CAP_S = 60.0  # a server asking for a day's pause gets at most a minute, and never past the deadline


class _Retry(Exception):
    def __init__(self, reason: str, wait_s: float | None = None, kind: str = "http") -> None:
        super().__init__(reason)
        self.wait_s = wait_s
        self.kind = kind  # the Error kind if this was the last try


class _Stop(Exception):
    """The attempt ended with this error event; nothing more to try."""

    def __init__(self, error: Error) -> None:
        super().__init__(error.message)
        self.error = error


class OpenAICompatBackend:
    exact_token_count = False  # counts are estimates (about 4 characters a token); the server's tokenizer is remote

    def __init__(self, base_url: str, model: str, api_key: str | None = None, *, context_window: int | None = None,
                 timeout_s: float = 600.0, connect_timeout_s: float = 10.0, max_retries: int = 4,
                 backoff_s: float = 0.5, backoff_cap_s: float = 20.0, extra_body: dict[str, Any] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._model = model
        self._api_key = api_key
        self._context_window_override = context_window
        self._context_window: int | None = None
        self._window_lock = threading.Lock()
        self.extra_body = dict(extra_body or {})
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.backoff_cap_s = backoff_cap_s
        headers = {"Accept": "text/event-stream"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s))
        self._cancelled = threading.Event()
        self._exchange: Exchange | None = None
        self.retries_done = 0

    @property
    def model_id(self) -> str:
        return self._model

    @property
    def context_window(self) -> int:
        """An explicit setting, else what the server's `/models` reports (asked once, on first use), else 131072."""
        if self._context_window_override is not None:
            return self._context_window_override
        with self._window_lock:
            if self._context_window is None:
                reported = discover_context_window(self._client, self.base_url, self._model)
                self._context_window = reported or DEFAULT_CONTEXT_WINDOW
            return self._context_window

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return estimate_tokens(messages)

    def drop_cache(self) -> None:
        """Nothing is cached on this side: the server's prompt cache is the server's business."""

    def cancel(self) -> None:
        """From any thread: the in-flight request is closed and `stream` ends promptly with an Error."""
        self._cancelled.set()
        exchange = self._exchange
        if exchange is not None:
            exchange.abort()

    def request_body(self, messages: Sequence[Message], tools: Sequence[dict[str, Any]], params: GenerationParams) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self._model, "messages": [m.to_openai() for m in messages], "stream": True,
                                "stream_options": {"include_usage": True}}
        if tools:
            body["tools"] = list(tools)
        for field in ("max_tokens", "temperature", "top_p", "seed", "stop"):
            value = getattr(params, field)
            if value is not None:
                body[field] = value
        # Server-specific fields (e.g. vLLM's `chat_template_kwargs`); the core fields above stay ours.
        return {**self.extra_body, **body}

    def stream(self, messages: Sequence[Message], tools: Sequence[dict[str, Any]], params: GenerationParams) -> Iterator[Event]:
        self._cancelled.clear()
        body = self.request_body(messages, tools, params)
        deadline = params.deadline
        attempt = 0
        while True:
            try:
                yield from self._attempt(body, deadline, messages, tools)
                return
            except _Stop as stop:
                yield stop.error
                return
            except _Retry as retry:
                if attempt >= self.max_retries:
                    yield self._error(retry.kind, f"{retry} (gave up after {attempt + 1} attempts)")
                    return
                wait = self._retry_wait(retry, attempt)
                if deadline is not None and time.monotonic() + wait >= deadline:
                    asked = f" (the server asked for {retry.wait_s:g} s)" if retry.wait_s is not None else ""
                    yield self._error("timeout", f"{retry}; the next try{asked} would pass the run's deadline")
                    return
                if self._cancelled.wait(wait):
                    yield self._error("stream_cut", "the request was cancelled")
                    return
                attempt += 1
                self.retries_done += 1

    def _retry_wait(self, retry: _Retry, attempt: int) -> float:
        if retry.wait_s is not None:
            return min(retry.wait_s, RETRY_AFTER_CAP_S)
        return min(self.backoff_cap_s, self.backoff_s * 2 ** attempt) * random.uniform(0.5, 1.0)

    def _timeout(self, deadline: float | None) -> httpx.Timeout:
        """httpx's per-read limits, shortened to the time left so the worker thread does not outlive the deadline much."""
        left = self.timeout_s if deadline is None else max(0.05, min(self.timeout_s, deadline - time.monotonic()))
        return httpx.Timeout(left, connect=min(self.connect_timeout_s, left))

    def _attempt(self, body: dict[str, Any], deadline: float | None, messages: Sequence[Message],
                 tools: Sequence[dict[str, Any]]) -> Iterator[Event]:
        if deadline is not None and time.monotonic() >= deadline:
            raise _Stop(self._error("timeout", f"the run's deadline passed before {self.base_url} answered"))
        url = f"{self.base_url}/chat/completions"
        exchange = Exchange(self._client, url, body, self._timeout(deadline)).start()
        self._exchange = exchange
        started = False
        try:
            response = exchange.head(deadline)
            if response.status_code >= 400:
                raise _Stop(self._http_error(response, b"".join(exchange.chunks(deadline))))
            content_type = response.headers.get("content-type", "")
            if "html" in content_type:
                raise _Stop(self._error("bad_response", f"{url} answered an HTML page, not an event stream{self._v1_hint()}"))
            started = True
            yield from self._read_stream(exchange.chunks(deadline), messages, tools)
        except DeadlinePassed:
            waited = "the first byte" if not started else "the rest of the reply"
            raise _Stop(self._error("timeout", f"the run's deadline passed while waiting for {waited} from {self.base_url}")) from None
        except Aborted:
            raise _Stop(self._error("stream_cut", "the request was cancelled")) from None
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise _Retry(f"cannot connect to {self.base_url}: {type(exc).__name__}", kind="connect") from None
        except httpx.DecodingError as exc:
            raise _Stop(self._error("bad_response", f"the response from {self.base_url} could not be decoded "
                                                    f"(its Content-Encoding is broken): {exc}")) from None
        except (httpx.TimeoutException, httpx.RemoteProtocolError, httpx.ReadError) as exc:
            if not started:
                kind = "timeout" if isinstance(exc, httpx.TimeoutException) else "http"
                raise _Retry(f"{type(exc).__name__} waiting for {self.base_url}", kind=kind) from None
            raise _Stop(self._error("stream_cut", f"the response stream from {self.base_url} was cut ({type(exc).__name__})")) from None
        except httpx.HTTPError as exc:
            raise _Stop(self._error("http", f"the request to {self.base_url} failed: {type(exc).__name__}: {exc}")) from None
        finally:
            self._exchange = None
            exchange.abort()  # a no-op when the worker is done; stops it when the caller stopped reading early

    def _http_error(self, response: httpx.Response, raw: bytes) -> Error:
        text = raw.decode("utf-8", "replace")
        code = response.status_code
        detail = _error_detail(text)
        if code in RETRY_STATUS:
            raise _Retry(self._redact(f"HTTP {code} from {self.base_url}: {detail}"), _retry_after(response))
        if code in (401, 403):
            return self._error("auth", f"HTTP {code} from {self.base_url}: the API key was refused (check --api-key-env)", code)
        looks_html = "html" in response.headers.get("content-type", "") or text.lstrip().startswith("<")
        if code in (404, 405) or looks_html:
            return self._error("http", f"HTTP {code} from {self.base_url}/chat/completions: {detail[:160]}{self._v1_hint()}", code)
        return self._error("http", f"HTTP {code} from {self.base_url}: {detail}", code)

    def _v1_hint(self) -> str:
        if self.base_url.endswith("/v1"):
            return " (is this an OpenAI-compatible server, and is the model loaded?)"
        return f" (most servers serve the API under /v1: try --base-url {self.base_url}/v1)"

    def _read_stream(self, chunks: Iterator[bytes], messages: Sequence[Message], tools: Sequence[dict[str, Any]]) -> Iterator[Event]:
        calls = ToolCallAccumulator()
        usage: Usage | None = None
        finish_reason: str | None = None
        saw_done = False
        streamed_chars = 0
        try:
            for data in sse_data(chunks):
                if data == "[DONE]":
                    saw_done = True
                    break
                chunk = parse_chunk(data)
                if chunk.failure is not None:
                    raise _Stop(self._error("http", f"server error mid-stream: {chunk.failure}"))
                if chunk.usage is not None:
                    usage = Usage(prompt_tokens=chunk.usage.prompt_tokens or 0,
                                  completion_tokens=chunk.usage.completion_tokens or 0,
                                  cached_prompt_tokens=chunk.usage.cached_tokens)
                for choice in chunk.choices or []:
                    delta = choice.delta
                    if delta is not None:
                        if delta.reasoning_text:
                            streamed_chars += len(delta.reasoning_text)
                            yield ReasoningDelta(text=delta.reasoning_text)
                        if delta.content:
                            streamed_chars += len(delta.content)
                            yield TextDelta(text=delta.content)
                        for call in delta.tool_calls or []:
                            calls.add(call)
                    if choice.finish_reason:
                        finish_reason = choice.finish_reason
        except SSEProblem as problem:
            document = error_document(problem.line)
            if document is not None:  # llama-cpp-python answers a streamed request it refuses with a 200 and a JSON error
                raise _Stop(self._error("http", f"server error from {self.base_url}: {document}")) from None
            raise _Stop(self._error("bad_response", f"{problem} (from {self.base_url})")) from None
        except ChunkProblem as problem:
            raise _Stop(self._error("bad_response", f"{problem} (from {self.base_url})")) from None
        if not saw_done and finish_reason is None:
            raise _Stop(self._error("stream_cut", f"the response stream from {self.base_url} ended before the reply was complete"))
        yield from calls.calls()
        if usage is None:  # llama-cpp-python ignores stream_options: estimate, and say so
            tool_chars = len(json.dumps(list(tools))) if tools else 0
            usage = Usage(prompt_tokens=estimate_tokens(messages) + tool_chars // 4,
                          completion_tokens=(streamed_chars + calls.argument_chars) // 4 + 1, estimated=True)
        yield usage
        yield Done(finish_reason=finish_reason or "stop")

    def _redact(self, text: str) -> str:
        return redact(text, [self._api_key])

    def _error(self, kind: str, message: str, status_code: int | None = None) -> Error:
        """Every Error this backend yields is built here, so none skips redaction."""
        return Error(kind=kind, message=self._redact(message), status_code=status_code)

    def close(self) -> None:
        self._client.close()


def _error_detail(text: str) -> str:
    try:
        return error_text(json.loads(text))
    except json.JSONDecodeError:
        return printable(text[:300].strip())


def _retry_after(response: httpx.Response) -> float | None:
    value = (response.headers.get("retry-after") or "").strip()
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date or garbage: ordinary backoff
    return seconds if seconds >= 0 else None
