"""A real MCP server for the tests, written with the SDK: `python tool_server.py [--http PORT]`.

Its tools cover what the client must handle: text, an image, a tool error, a crash (the process exits),
a call that hangs, and a look at the environment the server was given.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from mcp.server.mcpserver import Image, MCPServer

server = MCPServer("dsv4-test-server")
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


@server.tool(description="Echo the text back, with the server's process id")
def echo(text: str) -> str:
    return f"echo: {text} (pid {os.getpid()})"


@server.tool(description="Add two integers")
def add(a: int, b: int) -> str:
    return str(a + b)


@server.tool(description="A one-pixel PNG and a caption")
def picture() -> list:
    return ["a red dot", Image(data=PNG, format="png")]


@server.tool(description="Always fails")
def fail(reason: str) -> str:
    raise ValueError(f"failed on purpose: {reason}")


@server.tool(description="Exit the server process at once, as a crash would")
def crash() -> str:
    os._exit(3)


@server.tool(description="Sleep for the given seconds before answering")
async def hang(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "woke up"


@server.tool(description="The values of the named environment variables ('<unset>' when absent)")
def env(names: list[str]) -> str:
    return "\n".join(f"{name}={os.environ.get(name, '<unset>')}" for name in names)


@server.tool(description="Write a file in the server's working directory")
def touch(name: str) -> str:
    Path(name).write_text("made by the MCP server\n")
    return f"wrote {name} in {Path.cwd()}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=int, metavar="PORT")
    parser.add_argument("--crash-on-start", action="store_true")
    args = parser.parse_args()
    if args.crash_on_start:
        print("the test server refuses to start", file=sys.stderr)
        sys.exit(2)
    if args.http is not None:
        asyncio.run(server.run_streamable_http_async(host="127.0.0.1", port=args.http))
    else:
        server.run()


if __name__ == "__main__":
    main()
