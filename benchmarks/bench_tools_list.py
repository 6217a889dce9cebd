"""Bytes of ``tools/list`` a client receives: the SDK's full output schemas against the lean ones Debrief serves.

Run from the repository root:  .venv/bin/python benchmarks/bench_tools_list.py
"""

import json
import tempfile
from pathlib import Path

import anyio
from mcp.server import MCPServer

from debrief.server.embedding.hashed import HashEmbedder
from debrief.server.mcp.app import create_server
from debrief.server.settings import Settings


def wire(tools: list) -> tuple[int, int, int]:
    dumped = [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools]
    size = sum(len(json.dumps(item, separators=(",", ":"))) for item in dumped)
    inputs = sum(len(json.dumps(item.get("inputSchema", {}), separators=(",", ":"))) for item in dumped)
    outputs = sum(len(json.dumps(item.get("outputSchema", {}), separators=(",", ":"))) for item in dumped)
    return size, inputs, outputs


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), chroma_mode="in-process")
        server = create_server(settings, embedder=HashEmbedder())
        full = await MCPServer.list_tools(server)
        served = await server.list_tools()
        for label, tools in (("SDK (full schemas)", full), ("served (lean)", served)):
            size, inputs, outputs = wire(tools)
            print(f"{label}: {len(tools)} tools, tools/list {size:,} B; input {inputs:,} B, output {outputs:,} B")


anyio.run(main)
