"""A calculator MCP server with one tool, for agent-mode tests. Run: python -m tests.support.calculator_server.

``--crash-after N`` makes the process exit abruptly while answering its N-th call (a tool server dying mid-run);
``--hang`` makes every call wait forever (a tool server that hangs); ``--http PORT`` serves Streamable HTTP.
``--log FILE`` appends one line per call, so tests can see which calls arrived.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import anyio
from mcp.server import MCPServer


def build(*, crash_after: int | None = None, hang: bool = False, log: Path | None = None) -> MCPServer:
    """The calculator server."""
    server = MCPServer("calculator")
    calls = 0

    @server.tool(description="Multiply two integers exactly.")
    async def multiply(a: int, b: int) -> int:
        nonlocal calls
        calls += 1
        if log is not None:
            with log.open("a", encoding="utf-8") as file:
                file.write(f"{os.getpid()} multiply {a} {b}\n")
        if crash_after is not None and calls >= crash_after:
            os._exit(3)
        if hang:
            await anyio.Event().wait()
        return a * b

    return server


def main() -> None:
    """Serve the calculator over stdio, or Streamable HTTP with --http."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--crash-after", type=int, default=None)
    parser.add_argument("--hang", action="store_true")
    parser.add_argument("--log", type=Path, default=None)
    parser.add_argument("--http", type=int, default=None)
    options = parser.parse_args()
    server = build(crash_after=options.crash_after, hang=options.hang, log=options.log)
    if options.http is None:
        server.run()
    else:
        server.run(transport="streamable-http", host="127.0.0.1", port=options.http, streamable_http_path="/mcp")


if __name__ == "__main__":
    main()
