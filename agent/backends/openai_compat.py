"""Any OpenAI-compatible chat-completions endpoint (DeepSeek API, vLLM, SGLang, llama.cpp server) over httpx + SSE.

Retries with backoff and jitter happen only before the first streamed byte; a stream cut after that
is reported as an `Error` event, never silently resumed.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from ..events import Done, Error, Event, ReasoningDelta, TextDelta, Usage
from ..messages import Message, ToolCall
from .base import GenerationParams, estimate_tokens

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class _Retry(Exception):
    def __init__(self, reason: str, wait_s: float | None = None) -> None:
        super().__init__(reason)
        self.wait_s = wait_s


class OpenAICompatBackend:
    def __init__(self, base_url: str, model: str, api_key: str | None = None, *, context_window: int = 131072,
                 timeout_s: float = 600.0, connect_timeout_s: float = 10.0, max_retries: int = 4,
                 backoff_s: float = 0.5, backoff_cap_s: float = 20.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._model = model
        self._api_key = api_key
        self._context_window = context_window
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.backoff_cap_s = backoff_cap_s
        headers = {"Accept": "text/event-stream"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s))
        self.retries_done = 0

    @property
    def model_id(self) -> str:
        return self._model

    @property
    def context_window(self) -> int:
        return self._context_window

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return estimate_tokens(messages)

    def request_body(self, messages: Sequence[Message], tools: Sequence[dict[str, Any]], params: GenerationParams) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self._model, "messages": [m.to_openai() for m in messages], "stream": True,
                                "stream_options": {"include_usage": True}}
        if tools:
            body["tools"] = list(tools)
        for field in ("max_tokens", "temperature", "top_p", "seed", "stop"):
            value = getattr(params, field)
            if value is not None:
                body[field] = value
        return body

    def stream(self, messages: Sequence[Message], tools: Sequence[dict[str, Any]], params: GenerationParams) -> Iterator[Event]:
        body = self.request_body(messages, tools, params)
        attempt = 0
        while True:
            try:
                yield from self._attempt(body)
                return
            except _Retry as retry:
                if attempt >= self.max_retries:
                    yield Error(kind="http", message=self._redact(f"{retry} (gave up after {attempt + 1} attempts)"))
                    return
                wait = retry.wait_s if retry.wait_s is not None else min(self.backoff_cap_s, self.backoff_s * 2 ** attempt)
                time.sleep(wait * random.uniform(0.5, 1.0) if retry.wait_s is None else wait)
                attempt += 1
                self.retries_done += 1

    def _attempt(self, body: dict[str, Any]) -> Iterator[Event]:
        url = f"{self.base_url}/chat/completions"
        started = False
        try:
            with self._client.stream("POST", url, json=body) as response:
                if response.status_code >= 400:
                    yield self._http_error(response)
                    return
                started = True
                yield from self._read_sse(response)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise _Retry(f"cannot connect to {self.base_url}: {type(exc).__name__}") from None
        except (httpx.TimeoutException, httpx.RemoteProtocolError, httpx.ReadError) as exc:
            if not started:
                raise _Retry(f"{type(exc).__name__} waiting for {self.base_url}") from None
            yield Error(kind="stream_cut", message=f"the response stream from {self.base_url} was cut ({type(exc).__name__})")

    def _http_error(self, response: httpx.Response) -> Error:
        detail = response.read().decode("utf-8", "replace")[:300].strip()
        code = response.status_code
        if code in RETRY_STATUS:
            retry_after = response.headers.get("retry-after")
            wait = float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit() else None
            raise _Retry(f"HTTP {code} from {self.base_url}: {detail}", wait)
        if code in (401, 403):
            return Error(kind="auth", status_code=code,
                         message=f"HTTP {code} from {self.base_url}: the API key was refused (check --api-key-env)")
        return Error(kind="http", status_code=code, message=self._redact(f"HTTP {code} from {self.base_url}: {detail}"))

    def _read_sse(self, response: httpx.Response) -> Iterator[Event]:
        calls: dict[int, dict[str, str]] = {}
        usage: Usage | None = None
        finish_reason: str | None = None
        saw_done = False
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                saw_done = True
                break
            try:
                chunk = json.loads(data)
            except json.JSONDecodeError:
                yield Error(kind="bad_response", message=f"the server sent a line that is not JSON: {data[:120]!r}")
                return
            if chunk.get("error"):
                yield Error(kind="http", message=self._redact(f"server error mid-stream: {chunk['error']}"))
                return
            if chunk.get("usage"):
                usage = _usage(chunk["usage"])
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                if reasoning:
                    yield ReasoningDelta(text=reasoning)
                if delta.get("content"):
                    yield TextDelta(text=delta["content"])
                for call in delta.get("tool_calls") or []:
                    slot = calls.setdefault(call.get("index", len(calls)), {"id": "", "name": "", "arguments": ""})
                    function = call.get("function") or {}
                    slot["id"] = call.get("id") or slot["id"]
                    slot["name"] += function.get("name") or ""
                    slot["arguments"] += function.get("arguments") or ""
                if choice.get("finish_reason"):
                    finish_reason = choice["finish_reason"]
        if not saw_done and finish_reason is None:
            yield Error(kind="stream_cut", message=f"the response stream from {self.base_url} ended before the reply was complete")
            return
        for index in sorted(calls):
            slot = calls[index]
            yield ToolCall(id=slot["id"] or f"call_{index}", name=slot["name"], arguments=slot["arguments"] or "{}")
        if usage is not None:
            yield usage
        yield Done(finish_reason=finish_reason or "stop")

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "[redacted]") if self._api_key else text

    def close(self) -> None:
        self._client.close()


def _usage(raw: dict[str, Any]) -> Usage:
    details = raw.get("prompt_tokens_details") or {}
    cached = raw.get("prompt_cache_hit_tokens")
    if cached is None:
        cached = details.get("cached_tokens") or 0
    return Usage(prompt_tokens=raw.get("prompt_tokens") or 0, completion_tokens=raw.get("completion_tokens") or 0,
                 cached_prompt_tokens=cached)
