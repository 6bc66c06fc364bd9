"""One MCP server connection, held open by the official SDK's `Client` on the session's MCP event loop.

The SDK's transports are anyio task groups, which must be entered and left by the same task, so each
connection is one long-lived task (`_hold`) that opens the client, lists the tools, then waits to be told
to stop; calls are made from other tasks on the same loop. Stdio servers get a safe environment (no
backend keys, no DSV4_* secrets) plus the env their entry gives, the repository root as working
directory, and a log file for their stderr (whose tail explains a failure).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any, TextIO

from ...tools.process import safe_environment
from .config import HttpServer, ServerEntry, StdioServer

HTTP_CONNECT_TIMEOUT_S = 30.0
HTTP_READ_TIMEOUT_S = 300.0  # a long tool call streams nothing until its result; the per-call timeout is ours
STOP_GRACE_S = 5.0
LIST_PAGES = 50  # a server whose pagination never ends cannot hang the start
STDERR_TAIL = 300
LOG_CAP = 1024 * 1024  # a server's log is started afresh once it is this big


class CallFailed(Exception):
    """A call that got no result from the server (timeout, cancel, crash, a stopped server): the model reads why."""


def describe(exc: BaseException) -> str:
    """One line for an exception from the SDK: the first leaf of an exception group, with its type when unclear."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror + (f": {exc.filename}" if exc.filename else "")
    return text or type(exc).__name__


class Connection:
    """A started server: `open()` (on the MCP loop) returns its tools; `call` and `close` follow."""

    def __init__(self, name: str, entry: ServerEntry, *, cwd: Path, secret_names: frozenset[str],
                 log_path: Path | None) -> None:
        self.name = name
        self.entry = entry
        self.cwd = cwd
        self.secret_names = secret_names
        self.log_path = log_path
        self._client: Any = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._log_offset = 0

    @property
    def alive(self) -> bool:
        return self._client is not None and self._task is not None and not self._task.done()

    def stderr_tail(self) -> str:
        """The last line the server wrote to stderr, for a failure message."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            text = log.read()[-64 * 1024:].decode("utf-8", "replace")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return lines[-1][-STDERR_TAIL:] if lines else ""

    async def open(self) -> list[Any]:
        """Start the server and list its tools; raises whatever the start raised."""
        ready: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._hold(ready), name=f"mcp-{self.name}")
        try:
            return await ready
        except asyncio.CancelledError:  # the start timed out: take the half-started server down too
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            raise

    async def _hold(self, ready: asyncio.Future[list[Any]]) -> None:
        from mcp import Client

        assert self._stop is not None
        try:
            async with contextlib.AsyncExitStack() as stack:
                transport = await self._transport(stack)
                client = await stack.enter_async_context(Client(transport))
                tools = await _list_tools(client)
                self._client = client
                ready.set_result(tools)
                await self._stop.wait()
        except Exception as exc:  # a server is untrusted input: whatever it did ends this connection, not the session
            if not ready.done():
                ready.set_exception(exc)
        finally:
            self._client = None

    async def _transport(self, stack: contextlib.AsyncExitStack) -> Any:
        if isinstance(self.entry, StdioServer):
            from mcp import StdioServerParameters
            from mcp.client.stdio import stdio_client

            params = StdioServerParameters(command=self.entry.command, args=self.entry.args, cwd=self.cwd,
                                           env=safe_environment(self.secret_names, self.entry.env))
            return stdio_client(params, errlog=stack.enter_context(self._errlog()))
        assert isinstance(self.entry, HttpServer)
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        http = await stack.enter_async_context(httpx2.AsyncClient(
            headers=self.entry.headers, timeout=httpx2.Timeout(HTTP_CONNECT_TIMEOUT_S, read=HTTP_READ_TIMEOUT_S)))
        return streamable_http_client(self.entry.url, http_client=http)

    def _errlog(self) -> contextlib.AbstractContextManager[TextIO]:
        if self.log_path is None:
            return open(os.devnull, "w")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        size = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._log_offset = 0 if size > LOG_CAP else size  # the tail of a failure is read from this start on
        return self.log_path.open("w" if size > LOG_CAP else "a", encoding="utf-8", errors="replace")

    async def call(self, tool: str, arguments: dict[str, Any]) -> Any:
        """The server's CallToolResult; raises ConnectionError when the connection is gone."""
        client = self._client
        if client is None or not self.alive:
            raise ConnectionError("the server is not running")
        return await client.call_tool(tool, arguments)

    async def close(self) -> None:
        if self._stop is not None:
            self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), STOP_GRACE_S)
            except (TimeoutError, asyncio.TimeoutError):
                self._task.cancel()
                with contextlib.suppress(BaseException):
                    await self._task
        self._client = None


async def _list_tools(client: Any) -> list[Any]:
    tools: list[Any] = []
    cursor: str | None = None
    for _ in range(LIST_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tools
