"""A loopback chat-completions server with a context window, for the compaction tests.

Like a real server it refuses a prompt that does not fit with a 400 in its own dialect (vLLM, SGLang,
llama.cpp or OpenAI), and it records every request body. A request with tools gets the next scripted turn;
a request without tools (a summary request) gets `summary` (or a 500 when `summary` is None). The shared
replay server (agent/backends/replay_server.py) is left as it is: it has no window.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OVERFLOW_BODIES = {
    "vllm": {"object": "error", "type": "BadRequestError", "code": 400,
             "message": "This model's maximum context length is {window} tokens. However, you requested {used} tokens "
                        "in the messages, Please reduce the length of the messages."},
    "sglang": {"object": "error", "type": "BadRequestError", "code": 400,
               "message": "The input ({used} tokens) is longer than the model's context length ({window} tokens)."},
    "llamacpp": {"error": {"code": 400, "type": "exceed_context_size_error", "n_prompt_tokens": "{used}", "n_ctx": "{window}",
                           "message": "the request exceeds the available context size, try increasing it"}},
    "openai": {"error": {"message": "This model's maximum context length is {window} tokens. However, your messages "
                                    "resulted in {used} tokens.", "type": "invalid_request_error", "param": "messages",
                         "code": "context_length_exceeded"}},
}


def prompt_tokens(body: dict[str, Any]) -> int:
    """The server's own count: about four characters a token over messages and tools."""
    return (len(json.dumps(body.get("messages", []))) + len(json.dumps(body.get("tools", [])))) // 4


class ContextServer:
    def __init__(self, turns: list[dict[str, Any]], *, window: int, dialect: str = "vllm",
                 summary: str | None = "summary of the earlier steps") -> None:
        self.turns = list(turns)
        self.window = window
        self.dialect = dialect
        self.summary = summary
        self.requests: list[dict[str, Any]] = []
        self.refused = 0
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> ContextServer:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any] | None, dict[str, Any] | None]:
        """(status, error body, turn to stream)."""
        with self._lock:
            self.requests.append(body)
            used = prompt_tokens(body)
            if used > self.window:
                self.refused += 1
                text = json.dumps(OVERFLOW_BODIES[self.dialect]).replace("{window}", str(self.window))
                return 400, json.loads(text.replace("{used}", str(used))), None
            if not body.get("tools"):
                if self.summary is None:
                    return 400, {"error": {"message": "summaries are broken here"}}, None
                return 200, None, {"content": self.summary}
            if not self.turns:
                return 400, {"error": {"message": "the script has no reply left"}}, None
            return 200, None, self.turns.pop(0)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                status, error, turn = server._answer(body)
                if error is not None:
                    data = json.dumps(error).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                assert turn is not None
                chunks = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": turn.get("content", "")}}]}]
                for index, call in enumerate(turn.get("tool_calls", [])):
                    chunks.append({"choices": [{"index": 0, "delta": {"tool_calls": [{
                        "index": index, "id": f"call_{time.monotonic_ns()}_{index}", "type": "function",
                        "function": {"name": call["name"], "arguments": json.dumps(call.get("arguments", {}))}}]}}]})
                chunks.append({"choices": [{"index": 0, "delta": {},
                                            "finish_reason": "tool_calls" if turn.get("tool_calls") else "stop"}]})
                chunks.append({"choices": [], "usage": {"prompt_tokens": prompt_tokens(body), "completion_tokens": 10}})
                payload = b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks) + b"data: [DONE]\n\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler
