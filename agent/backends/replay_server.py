"""A loopback OpenAI chat-completions server that replays a script, with injectable faults.

Used by the backend tests, the headless end-to-end eval and for trying the TUI without a model:
`python -m dsv4.agent.backends.replay_server --script turns.json --port 8000`, then
`dsv4-code --base-url http://127.0.0.1:8000/v1 --model replay`.

Faults are consumed one per request, in order: `429`, `500`, `401`, `cut` (half the reply, then the
connection drops), `slow:<seconds>` (delay before the first byte), `pings` (a 200 that sends only
keep-alive comments, forever), `retry_after:<seconds>` (a 429 asking to wait that long), `ok` (no
fault). A fault may also be a `RawReply`: exact status, headers and body bytes, for servers whose
transcripts are recorded (tests/agent/backends/transcripts) and for malformed answers (the fuzz).
"""

from __future__ import annotations

import argparse
import base64
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from .script import ScriptedTurn, chunk_text, load_script


class RawReply(BaseModel):
    """One answer sent exactly as given; `body` is text, or base64 bytes when `body_base64` is set."""

    status: int = 200
    headers: dict[str, str] = Field(default_factory=lambda: {"Content-Type": "text/event-stream"})
    body: str = ""
    body_base64: bool = False
    chunked: bool = True  # else Content-Length framing
    close_early: bool = False  # drop the connection after the body, without the terminating chunk

    def body_bytes(self) -> bytes:
        return base64.b64decode(self.body) if self.body_base64 else self.body.encode()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up mid-reply (a timeout, a cancel) is what the fault tests provoke


class ReplayServer:
    def __init__(self, turns: list[ScriptedTurn], faults: list[str | RawReply] | None = None, api_key: str | None = None,
                 cached_tokens: int = 0, host: str = "127.0.0.1", port: int = 0,
                 models_listing: dict[str, Any] | None = None, send_usage: bool = True) -> None:
        self.turns = list(turns)
        self.send_usage = send_usage  # False: no usage chunk, as llama-cpp-python's server (it ignores stream_options)
        self.faults = list(faults or [])
        self.api_key = api_key
        self.cached_tokens = cached_tokens
        # What GET /models answers (a server's own listing, e.g. vLLM's with max_model_len)
        self.models_listing = models_listing or {"object": "list", "data": [{"id": "replay", "object": "model"}]}
        self.gets: list[str] = []
        self.requests: list[dict[str, Any]] = []
        self.headers_seen: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._next_turn = 0
        self.httpd = _QuietServer((host, port), self._handler_class())
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> ReplayServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _take(self) -> tuple[str | RawReply, ScriptedTurn | None]:
        with self._lock:
            fault = self.faults.pop(0) if self.faults else "ok"
            turn = None
            if isinstance(fault, str) and (fault in ("ok", "cut") or fault.startswith("slow")):
                if self._next_turn < len(self.turns):
                    turn = self.turns[self._next_turn]
                    self._next_turn += 1
            return fault, turn

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read their own output
                pass

            def do_GET(self) -> None:
                with server._lock:
                    server.gets.append(self.path)
                if self.path.rstrip("/").endswith("/models"):
                    self._json(200, server.models_listing)
                else:
                    self._json(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    server.requests.append(body)
                    server.headers_seen.append(dict(self.headers))
                if server.api_key and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                    self._json(401, {"error": {"message": "Authentication Fails (invalid api key)"}})
                    return
                fault, turn = server._take()
                if isinstance(fault, RawReply):
                    self._raw(fault)
                elif fault == "pings":
                    self._pings()
                elif fault.startswith("retry_after:"):
                    self._json(429, {"error": {"message": "slow down"}}, {"Retry-After": fault.split(":", 1)[1]})
                elif fault == "429":
                    self._json(429, {"error": {"message": "rate limited"}}, {"Retry-After": "0"})
                elif fault == "500":
                    self._json(500, {"error": {"message": "internal error"}})
                elif fault == "401":
                    self._json(401, {"error": {"message": "Authentication Fails"}})
                elif turn is None:
                    self._json(400, {"error": {"message": "the replay script has no reply left"}})
                else:
                    if fault.startswith("slow"):
                        time.sleep(float(fault.split(":", 1)[1]) if ":" in fault else 2.0)
                    self._stream(body, turn, cut=fault == "cut")

            def _json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def _raw(self, reply: RawReply) -> None:
                data = reply.body_bytes()
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.send_header("Transfer-Encoding" if reply.chunked else "Content-Length",
                                 "chunked" if reply.chunked else str(len(data)))
                self.end_headers()
                if reply.chunked:
                    if data:
                        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    if not reply.close_early:
                        self.wfile.write(b"0\r\n\r\n")
                else:
                    self.wfile.write(data)
                self.wfile.flush()
                if reply.close_early:
                    self.close_connection = True
                    self.connection.shutdown(2)

            def _pings(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                ping = b": ping\n\n"
                while True:  # until the client hangs up (the write fails) or the server stops
                    self.wfile.write(f"{len(ping):x}\r\n".encode() + ping + b"\r\n")
                    self.wfile.flush()
                    time.sleep(0.2)

            def _stream(self, body: dict[str, Any], turn: ScriptedTurn, cut: bool) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                completion_id = "chatcmpl-" + uuid.uuid4().hex[:12]
                chunks = _sse_chunks(completion_id, body.get("model", "replay"), turn, body, server.cached_tokens)
                if not server.send_usage:
                    chunks = [c for c in chunks if "usage" not in c]
                if cut:
                    chunks = chunks[: max(1, len(chunks) // 2)]
                for chunk in chunks:
                    data = f"data: {json.dumps(chunk)}\n\n".encode()
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    self.wfile.flush()
                if cut:
                    self.close_connection = True
                    self.connection.shutdown(2)  # drop without the terminating chunk: a torn stream
                    return
                done = b"data: [DONE]\n\n"
                self.wfile.write(f"{len(done):x}\r\n".encode() + done + b"\r\n0\r\n\r\n")
                self.wfile.flush()

        return Handler


def _sse_chunks(completion_id: str, model: str, turn: ScriptedTurn, body: dict[str, Any], cached: int) -> list[dict[str, Any]]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": completion_id, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    chunks = [chunk({"role": "assistant", "content": ""})]
    if turn.reasoning_content:
        chunks.append(chunk({"reasoning_content": turn.reasoning_content}))
    chunks += [chunk({"content": piece}) for piece in chunk_text(turn.content)]
    for index, call in enumerate(turn.tool_calls):
        arguments = call.raw_arguments()
        half = len(arguments) // 2
        chunks.append(chunk({"tool_calls": [{"index": index, "id": f"call_{uuid.uuid4().hex[:8]}", "type": "function",
                                             "function": {"name": call.name, "arguments": arguments[:half]}}]}))
        chunks.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments[half:]}}]}))
    chunks.append(chunk({}, "tool_calls" if turn.tool_calls else "stop"))
    prompt_tokens = len(json.dumps(body.get("messages", []))) // 4
    completion_tokens = max(1, (len(turn.content) + sum(len(c.raw_arguments()) for c in turn.tool_calls)) // 4)
    chunks.append({"id": completion_id, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
                   "choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                                            "total_tokens": prompt_tokens + completion_tokens,
                                            "prompt_tokens_details": {"cached_tokens": min(cached, prompt_tokens)}}})
    return chunks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--script", type=Path, required=True)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--fault", action="append", default=[], help="429, 500, 401, cut, slow:SECONDS, pings, retry_after:SECONDS (one per request)")
    parser.add_argument("--no-usage", action="store_true", help="send no usage chunk (as llama-cpp-python's server)")
    args = parser.parse_args()
    server = ReplayServer(load_script(args.script), faults=args.fault, port=args.port, send_usage=not args.no_usage)
    print(f"replaying {len(server.turns)} turns at {server.base_url}", flush=True)
    server.httpd.serve_forever()


if __name__ == "__main__":
    main()
