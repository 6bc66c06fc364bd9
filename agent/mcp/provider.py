"""The MCP servers of a session: started together at session start, their tools offered as `mcp__<server>__<tool>`,
restarted once after a crash, a timeout on every call, all stopped with the session.

Why at session start: the model's tool list is part of the prompt prefix and is fixed for the session
(agent/loop.py builds it once), and listing a server's tools needs the server running. So every server
starts in the background when the session opens (while the repository is scanned) and the session waits
for them, each at most `mcp_startup_timeout_s`. A server that fails to start is a warning and offers no
tools; the session goes on. A server that crashes later is started again on its next call, once; a
second crash leaves it stopped and its calls answer with an error.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .config import MissingVariable, ServerEntry, expanded
from .connection import CallFailed, Connection, describe
from .tools import McpTool, SchemaProblem, check_schema, tool_name

POLL_S = 0.05
MAX_RESTARTS = 1
State = Literal["starting", "ok", "failed", "ignored"]


@dataclass
class ServerStatus:
    name: str
    source: str  # "user config" | ".mcp.json" | ...
    state: State = "starting"
    reason: str = ""
    tools: list[Any] = field(default_factory=list)  # mcp.types.Tool, as the server listed them
    restarts: int = 0

    def describe(self) -> str:
        return f"{self.state}: {self.reason}" if self.reason else self.state


class _Loop:
    """An asyncio event loop on a daemon thread: every connection of one provider lives on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="mcp-loop", daemon=True)
        self.thread.start()

    def submit(self, coro: Any) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


class McpProvider:
    def __init__(self, servers: dict[str, tuple[ServerEntry, str]], *, cwd: Path, secret_names: frozenset[str] = frozenset(),
                 call_timeout_s: float = 60.0, startup_timeout_s: float = 30.0, log_dir: Path | None = None) -> None:
        self.call_timeout_s = call_timeout_s
        self.startup_timeout_s = startup_timeout_s
        self._entries = {name: entry for name, (entry, _) in servers.items()}
        self.status = {name: ServerStatus(name=name, source=source) for name, (_, source) in servers.items()}
        self._cwd = cwd
        self._secret_names = secret_names
        self._log_dir = log_dir
        self._connections: dict[str, Connection] = {}
        self._starts: dict[str, concurrent.futures.Future[Any]] = {}
        self._locks = {name: threading.Lock() for name in servers}
        self._loop: _Loop | None = _Loop() if servers else None
        self.warnings: list[str] = []

    def add_ignored(self, names: list[str], source: str, reason: str) -> None:
        """Servers listed for the user but never started (an untrusted repository's `.mcp.json`)."""
        for name in names:
            self.status.setdefault(name, ServerStatus(name=name, source=source, state="ignored", reason=reason))

    # --- start -----------------------------------------------------------------------------------

    def start(self) -> McpProvider:
        """Start every server in the background; `wait_started` collects them."""
        for name in self._entries:
            self._starts[name] = self._begin(name)
        return self

    def _begin(self, name: str) -> concurrent.futures.Future[Any]:
        assert self._loop is not None
        try:
            entry = expanded(self._entries[name])
        except MissingVariable as exc:
            failed: concurrent.futures.Future[Any] = concurrent.futures.Future()
            failed.set_exception(exc)
            return failed
        log = self._log_dir / f"{name}.log" if self._log_dir is not None else None
        connection = self._connections[name] = Connection(name, entry, cwd=self._cwd, secret_names=self._secret_names,
                                                           log_path=log)
        return self._loop.submit(asyncio.wait_for(connection.open(), self.startup_timeout_s))

    def wait_started(self) -> McpProvider:
        """Wait until every server has listed its tools or failed; failures become `warnings`."""
        for name, future in self._starts.items():
            status = self.status[name]
            try:
                status.tools = future.result(timeout=self.startup_timeout_s + 5)
                status.state = "ok"
            except (TimeoutError, asyncio.TimeoutError, concurrent.futures.TimeoutError):
                self._fail(status, f"did not start within {self.startup_timeout_s:g} s")
            except Exception as exc:  # whatever the server or its command did wrong
                self._fail(status, self._reason(name, exc))
        self._starts.clear()
        return self

    def _reason(self, name: str, exc: BaseException) -> str:
        reason = describe(exc)
        connection = self._connections.get(name)
        tail = connection.stderr_tail() if connection is not None else ""
        return f"{reason} (stderr: {tail})" if tail else reason

    def _fail(self, status: ServerStatus, reason: str) -> None:
        status.state, status.reason, status.tools = "failed", reason, []
        self.warnings.append(f"MCP server {status.name!r} failed to start: {reason}; its tools are not available")

    def tools(self) -> list[Any]:
        """The tools of the servers that started, named `mcp__<server>__<tool>`; a clash or a bad schema is a warning."""
        offered: dict[str, McpTool] = {}
        for status in self.status.values():
            for listed in status.tools:
                name = tool_name(status.name, listed.name)
                try:
                    schema = check_schema(listed.input_schema)
                except SchemaProblem as exc:
                    self.warnings.append(f"MCP tool {listed.name!r} of server {status.name!r} is not offered: {exc}")
                    continue
                if name in offered:
                    self.warnings.append(f"MCP tool {listed.name!r} of server {status.name!r} is not offered: "
                                         f"its name {name} is taken by another tool")
                    continue
                offered[name] = McpTool(self, status.name, listed, name, schema)
        return list(offered.values())

    # --- calls -----------------------------------------------------------------------------------

    def call(self, server: str, tool: str, arguments: dict[str, Any], *, cancel: threading.Event | None = None,
             deadline: float | None = None) -> Any:
        """The server's CallToolResult, or CallFailed saying why there is none."""
        from mcp.shared.exceptions import MCPError
        from mcp.types import CONNECTION_CLOSED

        status = self.status[server]
        with self._locks[server]:
            connection = self._running(status, cancel, deadline)
            try:
                return self._wait(connection.call(tool, arguments), cancel, deadline,
                                  f"MCP server {server!r} did not answer {tool} within {{:g}} s")
            except MCPError as exc:
                if exc.code != CONNECTION_CLOSED:
                    raise CallFailed(f"MCP server {server!r} refused the call: {describe(exc)}") from None
                crashed = f"MCP server {server!r} closed the connection during the call (it crashed or exited)"
            except (ConnectionError, OSError) as exc:
                crashed = f"MCP server {server!r} could not be reached: {describe(exc)}"
            except CallFailed:
                raise
            except Exception as exc:  # e.g. a result that is not a valid CallToolResult: the server is untrusted input
                raise CallFailed(f"MCP server {server!r} sent an unusable answer: {describe(exc)}") from None
            self._stop_connection(server)
            if status.restarts >= MAX_RESTARTS:
                status.state, status.reason = "failed", "crashed again after a restart"
                raise CallFailed(f"{crashed}; it was already restarted once, so it stays stopped")
            status.state, status.reason = "failed", "crashed; restarted on the next call"
            raise CallFailed(f"{crashed}; it is started again for the next call")

    def _running(self, status: ServerStatus, cancel: threading.Event | None, deadline: float | None) -> Connection:
        """The live connection; a server that crashed is started again here, once."""
        connection = self._connections.get(status.name)
        if connection is not None and connection.alive and status.state == "ok":
            return connection
        if status.restarts >= MAX_RESTARTS:
            raise CallFailed(f"MCP server {status.name!r} is stopped ({status.describe()})")
        self._stop_connection(status.name)
        status.restarts += 1
        try:
            self._wait(self._begin(status.name), cancel, deadline, "MCP server restart took more than {:g} s",
                       limit=self.startup_timeout_s)
        except CallFailed as exc:
            status.state, status.reason = "failed", f"restart failed: {exc}"
            raise
        except Exception as exc:  # the restart failed the way a start can
            status.state, status.reason = "failed", f"restart failed: {self._reason(status.name, exc)}"
            raise CallFailed(f"MCP server {status.name!r} crashed and could not be started again: {status.reason}") from None
        status.state, status.reason = "ok", ""
        return self._connections[status.name]

    def _wait(self, work: Any, cancel: threading.Event | None, deadline: float | None, timeout_text: str,
              limit: float | None = None) -> Any:
        """Run `work` (a coroutine or a future on the loop) until done, the per-call timeout, the run's deadline or cancel."""
        assert self._loop is not None
        future = work if isinstance(work, concurrent.futures.Future) else self._loop.submit(work)
        limit = self.call_timeout_s if limit is None else limit
        stop_at = time.monotonic() + limit
        if deadline is not None and deadline < stop_at:
            stop_at, limit = deadline, max(deadline - time.monotonic(), 0)
        while True:
            try:
                return future.result(timeout=POLL_S)
            except concurrent.futures.TimeoutError:
                pass
            if cancel is not None and cancel.is_set():
                future.cancel()
                raise CallFailed("cancelled: the user stopped the turn during the MCP call")
            if time.monotonic() >= stop_at:
                future.cancel()
                raise CallFailed(timeout_text.format(limit))

    # --- stop ------------------------------------------------------------------------------------

    def _stop_connection(self, name: str) -> None:
        connection = self._connections.pop(name, None)
        if connection is not None and self._loop is not None:
            try:
                self._loop.submit(connection.close()).result(timeout=10)
            except concurrent.futures.TimeoutError:
                pass  # it is killed with the loop's process at exit at the latest

    def close(self) -> None:
        """Stop every server (stdio processes exit, HTTP sessions are ended) and the loop."""
        if self._loop is None:
            return
        pending = [self._loop.submit(connection.close()) for connection in self._connections.values()]
        concurrent.futures.wait(pending, timeout=10)
        self._connections.clear()
        self._loop.stop()
        self._loop = None
