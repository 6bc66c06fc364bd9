"""One streamed HTTP request whose reader runs in a worker thread, so the caller's deadline and cancel always hold.

httpx's timeouts are per socket read: a server that sends a keep-alive comment every few seconds, or
trickles a byte at a time, never trips them. Here the worker thread does the blocking reads and hands
what it got to a queue; the caller waits on that queue for at most the time left before its deadline,
so it gets control back at the deadline whatever the server does. `abort` (from any thread) wakes the
caller at once and shuts the socket down so the worker's blocked read ends too.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx

MAX_ERROR_BODY = 64 * 1024
_HEAD, _DATA, _END, _FAIL, _ABORTED = "head", "data", "end", "fail", "aborted"


class DeadlinePassed(Exception):
    pass


class Aborted(Exception):
    pass


class Exchange:
    def __init__(self, client: httpx.Client, url: str, body: dict[str, Any], timeout: httpx.Timeout) -> None:
        self._client = client
        self._url = url
        self._body = body
        self._timeout = timeout
        self._queue: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._aborted = threading.Event()
        self._response: httpx.Response | None = None
        self._thread = threading.Thread(target=self._run, name="dsv4-http", daemon=True)

    def start(self) -> Exchange:
        self._thread.start()
        return self

    # --- the worker thread --------------------------------------------------------------------

    def _run(self) -> None:
        try:
            with self._client.stream("POST", self._url, json=self._body, timeout=self._timeout) as response:
                self._response = response
                if self._aborted.is_set():
                    return
                self._queue.put((_HEAD, response))
                limit = MAX_ERROR_BODY if response.status_code >= 400 else None
                read = 0
                for chunk in response.iter_bytes():
                    if self._aborted.is_set():
                        return
                    self._queue.put((_DATA, chunk))
                    read += len(chunk)
                    if limit is not None and read >= limit:
                        break
                self._queue.put((_END, None))
        except Exception as exc:  # noqa: BLE001 - handed to the caller's thread, which decides what it means
            self._queue.put((_FAIL, exc))

    # --- the caller's side --------------------------------------------------------------------

    def _next(self, deadline: float | None) -> tuple[str, Any]:
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            kind, value = self._queue.get(timeout=wait)
        except queue.Empty:
            self.abort()
            raise DeadlinePassed() from None
        if kind == _ABORTED:
            raise Aborted()
        if kind == _FAIL:
            raise value
        return kind, value

    def head(self, deadline: float | None) -> httpx.Response:
        """The response once its status line and headers are in; transport errors are raised as httpx raised them."""
        kind, value = self._next(deadline)
        if kind != _HEAD:  # the worker always sends the head first, or fails
            raise httpx.RemoteProtocolError("the connection ended before a response")
        return value

    def chunks(self, deadline: float | None) -> Iterator[bytes]:
        while True:
            kind, value = self._next(deadline)
            if kind == _END:
                return
            yield value

    def abort(self) -> None:
        """Safe from any thread, any number of times."""
        if self._aborted.is_set():
            return
        self._aborted.set()
        self._queue.put((_ABORTED, None))
        response = self._response
        stream = response.extensions.get("network_stream") if response is not None else None
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the worker's blocked recv; close() alone would not
            except OSError:
                pass  # already closed by the server or by the worker
