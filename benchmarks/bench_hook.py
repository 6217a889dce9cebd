"""Latency of the Claude Code ``UserPromptSubmit`` hook against a running ``debrief serve``, as Claude Code runs it.

Run by hand (not a test). It starts ``python -m debrief.server serve`` as a real stdio subprocess (the way Claude
Code starts the MCP server; the server offers its loopback hook endpoint), adds --lessons experiences to one
namespace through MCP, then runs the hook command a fresh process per call, exactly the command ``debrief config
claude-code --hooks`` installs, feeding it Claude Code's hook JSON on stdin, and times each call's wall time from
spawn to exit. Prompts alternate between related and unrelated ones. The first --warmup calls are left out. For
reference it also times the floor: a bare ``python -c pass`` spawned the same way.

    .venv/bin/python benchmarks/bench_hook.py --calls 200
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from debrief.server.cli.client_config import hook_commands

NAMESPACE = "bench"
TOPICS = ["dates", "json", "sql joins", "unit tests", "async code", "regexes", "file paths", "http retries"]
ACTIONS = ["parse", "validate", "log", "cache", "sort", "batch", "time out", "retry"]


def lessons(count: int, rng: random.Random) -> list[str]:
    """Distinct one-sentence lessons about common programming chores."""
    out: list[str] = []
    while len(out) < count:
        topic, action, other = rng.choice(TOPICS), rng.choice(ACTIONS), rng.choice(TOPICS)
        text = f"When working with {topic} near {other}, {action} early and check the result #{len(out)}."
        out.append(text)
    return out


def prompts(count: int, rng: random.Random) -> list[str]:
    """Half related to the lessons, half unrelated."""
    related = [f"Help me {rng.choice(ACTIONS)} the {rng.choice(TOPICS)} in this module." for _ in range(count)]
    unrelated = [f"Write a short poem about the sea, number {n}." for n in range(count)]
    return [related[n // 2] if n % 2 == 0 else unrelated[n // 2] for n in range(count)]


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def timed(command: list[str], stdin: bytes, cwd: Path) -> tuple[float, bytes]:
    started = time.perf_counter()
    done = subprocess.run(command, input=stdin, capture_output=True, cwd=cwd, check=False, timeout=30)
    return time.perf_counter() - started, done.stdout


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--lessons", type=int, default=300)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    rng = random.Random(0)
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="debrief-bench-hook-"))
    env = {**os.environ, "DEBRIEF_DATA_DIR": str(data_dir)}
    params = StdioServerParameters(command=sys.executable, args=["-m", "debrief.server", "serve"], env=env)
    hook = [*shlex.split(hook_commands(data_dir)["UserPromptSubmit"]), "--namespace", NAMESPACE]
    with open(data_dir / "server.log", "w") as errlog:
        async with Client(stdio_client(params, errlog=errlog), read_timeout_seconds=300) as client:
            started = time.perf_counter()
            for text in lessons(args.lessons, rng):
                await client.call_tool("add_experience", {"text": text, "namespace": NAMESPACE})
            print(f"added {args.lessons} lessons in {time.perf_counter() - started:.1f} s", file=sys.stderr)
            times: list[float] = []
            floor: list[float] = []
            answered = 0
            for index, prompt in enumerate(prompts(args.calls + args.warmup, rng)):
                payload = json.dumps(
                    {
                        "session_id": "bench",
                        "transcript_path": str(data_dir / "t.jsonl"),
                        "cwd": str(data_dir),
                        "hook_event_name": "UserPromptSubmit",
                        "prompt": prompt,
                    }
                ).encode()
                elapsed, out = await anyio.to_thread.run_sync(timed, hook, payload, data_dir)
                base, _ = await anyio.to_thread.run_sync(timed, [sys.executable, "-c", "pass"], b"", data_dir)
                if index >= args.warmup:
                    times.append(elapsed)
                    floor.append(base)
                    answered += bool(out)
    ms = [value * 1000 for value in times]
    base_ms = [value * 1000 for value in floor]
    print(
        f"hook: {len(ms)} calls, p50 {percentile(ms, 0.5):.0f} ms, p99 {percentile(ms, 0.99):.0f} ms, "
        f"mean {statistics.fmean(ms):.0f} ms, max {max(ms):.0f} ms; {answered} added lessons\n"
        f"floor (python -c pass): p50 {percentile(base_ms, 0.5):.0f} ms, p99 {percentile(base_ms, 0.99):.0f} ms"
    )


if __name__ == "__main__":
    anyio.run(main)
