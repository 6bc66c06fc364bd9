"""A loopback OpenAI chat-completions server that replays a script, with injectable faults.

Used by the backend tests, the headless end-to-end eval and for trying the TUI without a model:
`python -m dsv4.agent.backends.replay_server --script turns.json --port 8000`, then
`dsv4-code --base-url http://127.0.0.1:8000/v1 --model replay`.

Faults are consumed one per request, in order: `429`, `500`, `401`, `cut` (half the reply, then the
connection drops), `slow:<seconds>` (delay before the first byte), `ok` (no fault).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .script import ScriptedTurn, chunk_text, load_script


class ReplayServer:
    def __init__(self, turns: list[ScriptedTurn], faults: list[str] | None = None, api_key: str | None = None,
                 cached_tokens: int = 0, host: str = "127.0.0.1", port: int = 0) -> None:
        self.turns = list(turns)
        self.faults = list(faults or [])
        self.api_key = api_key
        self.cached_tokens = cached_tokens
        self.requests: list[dict[str, Any]] = []
        self.headers_seen: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._next_turn = 0
        self.httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> ReplayServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _take(self) -> tuple[str, ScriptedTurn | None]:
        with self._lock:
            fault = self.faults.pop(0) if self.faults else "ok"
            turn = None
            if fault in ("ok", "cut") or fault.startswith("slow"):
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
                if self.path.rstrip("/").endswith("/models"):
                    self._json(200, {"object": "list", "data": [{"id": "replay", "object": "model"}]})
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
                if fault == "429":
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

            def _stream(self, body: dict[str, Any], turn: ScriptedTurn, cut: bool) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                completion_id = "chatcmpl-" + uuid.uuid4().hex[:12]
                chunks = _sse_chunks(completion_id, body.get("model", "replay"), turn, body, server.cached_tokens)
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
    parser.add_argument("--fault", action="append", default=[], help="429, 500, 401, cut, slow:SECONDS (one per request)")
    args = parser.parse_args()
    server = ReplayServer(load_script(args.script), faults=args.fault, port=args.port)
    print(f"replaying {len(server.turns)} turns at {server.base_url}", flush=True)
    server.httpd.serve_forever()


if __name__ == "__main__":
    main()
