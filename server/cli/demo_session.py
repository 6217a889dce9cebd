"""``debrief demo``: start the server over stdio and drive a short scripted MCP session against it."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters

SAMPLE_EXPERIENCES = [
    "When a word problem mixes units, convert every quantity to one unit before doing any arithmetic.",
    "When an answer must be an integer, check the result by substituting it back into the original statement.",
    "When a task asks for a percentage change, divide the difference by the original value, not the new one.",
]
SAMPLE_TASK = "A shop raises a price from 80 to 100 dollars. By what percent did the price increase?"


def server_parameters(data_dir: Path, extra_env: dict[str, str] | None = None) -> StdioServerParameters:
    """How to start this install's ``debrief serve`` over stdio on ``data_dir``."""
    env = {key: value for key, value in os.environ.items() if key.startswith(("DEBRIEF_", "PATH", "HOME", "LANG"))}
    env["DEBRIEF_DATA_DIR"] = str(data_dir)
    env.update(extra_env or {})
    return StdioServerParameters(command=sys.executable, args=["-m", "debrief.server", "serve"], env=env)


async def run_session(
    data_dir: Path,
    namespace: str = "demo",
    out: Callable[[str], Any] = print,
    *,
    add_samples: bool = True,
    task: str = SAMPLE_TASK,
) -> None:
    """Optionally add sample experiences, retrieve for a task and show the history, over a real stdio connection."""
    async with Client(server_parameters(data_dir), read_timeout_seconds=120) as client:
        tools = await client.list_tools()
        out(f"connected over stdio; {len(tools.tools)} tools: {', '.join(tool.name for tool in tools.tools)}")
        for text in SAMPLE_EXPERIENCES if add_samples else []:
            result = await client.call_tool("add_experience", {"text": text, "namespace": namespace})
            data = result.structured_content or {}
            state = "added" if data.get("created") else "already there"
            out(f"  add_experience -> {data.get('experience', {}).get('experience_id')} ({state})")
        result = await client.call_tool("retrieve_experiences", {"task": task, "namespace": namespace, "k": 2})
        data = result.structured_content or {}
        out(f"\nretrieve_experiences for: {task}")
        for item in data.get("experiences", []):
            out(f"  {item['score']:.3f}  {item['text']}")
        if data.get("experiences"):
            out("\nprompt block handed to the model:\n" + str(data.get("prompt_block", "")))
        else:
            out(f"  (no experiences in {namespace!r} yet: nothing to hand to the model)")
        result = await client.call_tool("library_history", {"namespace": namespace})
        data = result.structured_content or {}
        out(f"\nlibrary_history: version {data.get('current_version')}")
        for change in data.get("changes", []):
            out(f"  v{change['version']} {change['kind']}: {change['reason']}")
    out(f"\nstore: {data_dir}")
