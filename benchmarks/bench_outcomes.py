"""Latency of ``record_outcome`` with a large outcome history, through a real in-process MCP client.

Run by hand (not a test). It writes --outcomes synthetic outcomes straight into a namespace's outcome file (the
same JSON lines the server appends, each with its 384-d task vector), starts the server on that data dir with the
deterministic test embedder, and calls ``record_outcome`` --calls times: half with a ``task_key``, half matched to
earlier tasks by similarity, a quarter of them naming an experience. The first call builds the index from the file
(a one-off, reported apart); the rest are the steady state. For reference it also times what every call cost
before the index: reading and parsing the whole file once.

    .venv/bin/python benchmarks/bench_outcomes.py --outcomes 100000 --calls 200
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

from debrief.server.embedding.hashed import HashEmbedder
from debrief.server.mcp.app import create_server
from debrief.server.settings import OutcomeSettings, Settings

NAMESPACE = "bench"
VERBS = ["parse", "sort", "merge", "validate", "cache", "retry", "format", "index"]
THINGS = ["dates", "invoices", "log lines", "user records", "sql rows", "json blobs", "file paths", "http calls"]


def task(rng: random.Random, number: int) -> str:
    return f"{rng.choice(VERBS)} the {rng.choice(THINGS)} for report {number % 5000}"


def write_history(path: Path, count: int, embedder: HashEmbedder, rng: random.Random) -> None:
    start = datetime.now(UTC) - timedelta(days=2)
    tasks = [task(rng, n) for n in range(5000)]
    vectors = {text: json.dumps([round(x, 5) for x in embedder.vector(text)]) for text in tasks}
    with path.open("w", encoding="utf-8") as handle:
        for n in range(count):
            text = tasks[n % len(tasks)]
            keyed = n % 2 == 0
            outcome: dict[str, Any] = {
                "outcome_id": f"out-{n:012x}",
                "namespace": NAMESPACE,
                "task": text,
                "task_key": f"key-{n % 20000}" if keyed else None,
                "attempt": "did the usual steps",
                "reward": float(n % 3 == 0),
                "feedback": None,
                "experience_ids_used": [],
                "group_id": f"key:key-{n % 20000}" if keyed else f"grp-{n % 20000:012x}",
                "recorded_at": (start + timedelta(seconds=n)).isoformat().replace("+00:00", "Z"),
            }
            handle.write(f'{{"type": "outcome", "outcome": {json.dumps(outcome)}, "vector": {vectors[text]}}}\n')


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def main(arguments: argparse.Namespace) -> None:
    rng = random.Random(0)
    embedder = HashEmbedder()
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "data"
        outcomes = data / "outcomes"
        outcomes.mkdir(parents=True)
        began = time.perf_counter()
        write_history(outcomes / f"{NAMESPACE}.jsonl", arguments.outcomes, embedder, rng)
        size = (outcomes / f"{NAMESPACE}.jsonl").stat().st_size
        written = time.perf_counter() - began
        print(f"history: {arguments.outcomes} outcomes, {size / 1e6:.0f} MB, written in {written:.1f}s")

        began = time.perf_counter()
        with (outcomes / f"{NAMESPACE}.jsonl").open(encoding="utf-8") as handle:
            parsed = sum(1 for line in handle if json.loads(line))
        full_read = time.perf_counter() - began
        print(f"before the index, every call read and parsed the whole file: {full_read * 1000:.0f} ms ({parsed})")

        settings = Settings(data_dir=data, chroma_mode="in-process", outcomes=OutcomeSettings(reflection="client"))
        async with Client(create_server(settings, embedder=embedder)) as client:
            added = await client.call_tool(
                "add_experience",
                {"namespace": NAMESPACE, "text": "When parsing dates from reports, normalise the time zone first."},
            )
            assert added.structured_content is not None
            experience_id = added.structured_content["experience"]["experience_id"]
            timings: list[float] = []
            for n in range(arguments.calls):
                call: dict[str, Any] = {
                    "namespace": NAMESPACE,
                    "task": task(rng, rng.randrange(100_000)),
                    "attempt": "tried the documented approach",
                    "outcome": rng.choice(["success", "failure"]),
                }
                if n % 2 == 0:
                    call["task_key"] = f"key-{rng.randrange(20000)}"
                if n % 4 == 1:
                    call["experience_ids_used"] = [experience_id]
                began = time.perf_counter()
                result = await client.call_tool("record_outcome", call)
                timings.append(time.perf_counter() - began)
                assert not result.is_error, result.content
        first, steady = timings[0], timings[1:]
        print(f"first call (builds the index from the file): {first * 1000:.0f} ms")
        print(
            f"record_outcome over MCP at {arguments.outcomes} outcomes, {len(steady)} calls: "
            f"p50 {statistics.median(steady) * 1000:.1f} ms, p95 {percentile(steady, 0.95) * 1000:.1f} ms, "
            f"max {max(steady) * 1000:.1f} ms"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outcomes", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=200)
    anyio.run(main, parser.parse_args())
