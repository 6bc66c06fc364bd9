"""MCP client costs: how long a session waits for its servers, and what one tool call adds.

Runs the SDK test server (tests/mcp/tool_server.py) over stdio and over streamable HTTP on 127.0.0.1 through
the product's provider (agent/mcp), and reports per transport:

- start: seconds from start() to the tools listed (what AgentSession.open waits for, at most);
- call p50 / p95: milliseconds of one `echo` call through McpTool.run (schema check, the SDK, the server);
- restart: seconds from a crash to the next call's result (the restart happens inside that call);
- timeout overshoot: how far past a 1 s per-call timeout a hanging call returns.

    python evals/mcp_bench.py [--calls 50] [--out evals/results/mcp_bench.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dsv4.agent.mcp.config import HttpServer, ServerEntry, StdioServer
from dsv4.agent.mcp.provider import McpProvider
from dsv4.tools.base import ToolError
from dsv4.tools.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
SERVER = REPO / "tests" / "mcp" / "tool_server.py"


def _http_server() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, str(SERVER), "--http", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}/mcp"
        except OSError:
            time.sleep(0.05)


def _call(provider: McpProvider, workspace: Workspace, name: str, **arguments: object) -> bool:
    tool = {t.name: t for t in provider.tools()}[name]
    try:
        return not tool.run(tool.Args.model_validate(arguments), workspace).is_error
    except ToolError:
        return False


def measure(label: str, entry: ServerEntry, calls: int, workdir: Path, crash: bool) -> dict[str, object]:
    workspace = Workspace(workdir)
    started = time.perf_counter()
    provider = McpProvider({"b": (entry, label)}, cwd=workdir, call_timeout_s=1.0).start().wait_started()
    start_s = time.perf_counter() - started
    try:
        latencies = []
        for n in range(calls):
            t = time.perf_counter()
            assert _call(provider, workspace, "mcp__b__echo", text=f"call {n}")
            latencies.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        _call(provider, workspace, "mcp__b__hang", seconds=30)
        overshoot = time.perf_counter() - t - 1.0
        restart_s: float | None = None
        restarted: bool | None = None
        if crash:
            _call(provider, workspace, "mcp__b__crash")
            t = time.perf_counter()
            restarted = _call(provider, workspace, "mcp__b__echo", text="after the crash")
            restart_s = time.perf_counter() - t
    finally:
        provider.close()
    latencies.sort()
    return {"transport": label, "start_s": round(start_s, 3), "call_p50_ms": round(statistics.median(latencies), 2),
            "call_p95_ms": round(latencies[int(len(latencies) * 0.95) - 1], 2), "restart_s": None if restart_s is None else round(restart_s, 3),
            "restart_ok": restarted, "timeout_overshoot_s": round(overshoot, 3), "calls": calls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--out", type=Path, default=REPO / "evals" / "results" / "mcp_bench.json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(measure("stdio", StdioServer(command=sys.executable, args=[str(SERVER)]), args.calls, Path(tmp),
                            crash=True))
        proc, url = _http_server()
        try:
            # A remote server that dies is not ours to start again: no crash row for HTTP.
            rows.append(measure("http", HttpServer(type="http", url=url), args.calls, Path(tmp), crash=False))
        finally:
            proc.terminate()
            proc.wait()
    print(f"{'transport':<10}{'start s':>9}{'p50 ms':>9}{'p95 ms':>9}{'restart s':>11}{'ok':>5}{'timeout +s':>12}")
    for r in rows:
        print(f"{r['transport']:<10}{r['start_s']:>9}{r['call_p50_ms']:>9}{r['call_p95_ms']:>9}{str(r['restart_s'] or '-'):>11}"
              f"{str(r['restart_ok'] if r['restart_ok'] is not None else '-'):>5}{r['timeout_overshoot_s']:>12}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": platform.platform(), "python": platform.python_version(),
                                    "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
