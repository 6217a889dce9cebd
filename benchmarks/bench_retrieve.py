"""`retrieve_experiences` round trip over stdio vs its two floors, at 10k and 100k experiences in one namespace.

Run by hand (not a test). For each size it (1) grows one namespace ("bench") to N distinct template-generated
experiences through the store's public API (``import_library`` in merge mode, in chunks), (2) starts
``python -m debrief.server serve`` as a real stdio subprocess and, for each of --queries distinct task texts, measures
in this process, interleaved so machine load hits all of them alike:

- the embed floor: ``MiniLMEmbedder.embed_sync([task])`` (warm);
- the Chroma floor: one ``collection.query`` on the namespace's active collection over the same shared Chroma
  host, with the task's precomputed vector, ``n_results = k + max(5, k)`` and the same ``include`` as the store;
- the in-process handler cost: ``ExperienceStore.relevant`` and ``ExperienceStore.retrieve`` (what the tool
  handler awaits: retrieval plus the ``retrieved`` counter bump) on a store opened here;
- the round trip: ``call_tool("retrieve_experiences", {task, namespace, k})`` wall time in the client.

It also reads the resident memory (VmRSS, VmHWM) of the server and of the shared Chroma host: idle (fresh
empty data dir, after initialize + list_tools) and after the retrieval round at each size.

    OPENBLAS_NUM_THREADS=1 /work/venv/bin/python benchmarks/bench_retrieve.py --data-dir /tmp/debrief-bench
    /work/venv/bin/python benchmarks/bench_retrieve.py --data-dir /tmp/debrief-bench   # reuse: no population

OPENBLAS_NUM_THREADS (and OMP_NUM_THREADS) are passed to the server unchanged, so floors and server embed
under the same setting. Population of 100k experiences embeds 100k texts: ~10-20 min on 2 busy cores.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from debrief.learner.library import Provenance
from debrief.learner.operations import AddOperation
from debrief.learner.words import count_words
from debrief.server.chroma.client import connect
from debrief.server.embedding.minilm import MiniLMEmbedder
from debrief.server.settings import Settings
from debrief.server.store.experience_store import ExperienceStore
from debrief.server.store.models import ExportedExperience, LibraryExport
from debrief.server.store.namespace_view import collection_name

NAMESPACE = "bench"
K = 5
ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "retrieve.md"

# ---- texts ---------------------------------------------------------------------------------------------

SITUATIONS = [
    "a test fails only on CI",
    "a migration touches a large table",
    "the error message names a missing key",
    "two services disagree on a timestamp",
    "a dependency upgrade breaks the build",
    "a query suddenly gets slow",
    "memory grows steadily under load",
    "a retry loop floods the logs",
    "a config value differs between environments",
    "a flaky test passes on rerun",
    "the cache returns stale data",
    "a deploy succeeds but traffic drops",
    "a word problem mixes units",
    "an answer must be an integer",
    "a percentage change is asked for",
    "the input file has mixed encodings",
    "a function has more than five parameters",
    "a lock is held across a network call",
    "a background job silently stops",
    "the disk fills up overnight",
    "a user reports wrong totals",
    "a schema change reaches production",
    "a secret appears in a log line",
    "the API returns partial results",
    "a rounding difference shows up in reports",
    "a timezone conversion looks off by one hour",
    "an import cycle appears",
    "a benchmark result looks too good",
    "a pull request grows past a thousand lines",
    "a regex is used to parse structured data",
    "the queue backlog keeps growing",
    "a null value reaches a numeric column",
    "a container restarts in a loop",
    "a feature flag is left on for months",
    "an external API starts rate limiting",
    "the same bug is reported twice",
    "a geometry problem gives an area",
    "a probability question involves draws without replacement",
    "a proof needs an induction step",
    "a list must stay sorted after inserts",
]
DOMAINS = [
    "a payments service",
    "a data pipeline",
    "a mobile app",
    "a Python library",
    "a Rust CLI",
    "a web frontend",
    "a Kubernetes cluster",
    "a reporting dashboard",
    "a search index",
    "an ML training job",
    "a billing system",
    "a legacy monolith",
    "a message broker",
    "an authentication service",
    "a spreadsheet export",
    "a math homework set",
    "a logistics planner",
    "a game server",
    "a scientific simulation",
    "an embedded controller",
    "a recommendation engine",
    "a customer support tool",
    "a CI pipeline",
    "a documentation site",
    "a compiler pass",
    "a SQL warehouse",
    "a chat bot",
    "an inventory system",
    "a trading backtest",
    "a healthcare records app",
]
ACTIONS = [
    "reproduce it locally with the same inputs",
    "read the full stack trace",
    "write down the expected result",
    "check the recent commits",
    "add a failing test",
    "pin the dependency versions",
    "measure with a profiler",
    "compare the two configurations side by side",
    "convert every quantity to one unit",
    "substitute the answer back into the statement",
    "look at the raw data",
    "check the logs around the first error",
    "bisect the change history",
    "verify the assumptions with the owner",
    "draw the data flow on paper",
    "isolate the smallest failing case",
    "check the units of every column",
    "run the query plan explainer",
    "count the rows before and after",
    "read the vendor changelog",
    "check clock skew between hosts",
    "take a heap snapshot",
    "add a timeout to the call",
    "lower the batch size",
    "snapshot the current state",
    "ask which result the user expected",
    "enumerate the edge cases",
    "restate the problem in your own words",
    "estimate the answer roughly",
    "list every input and output",
]
OTHER_ACTIONS = [
    "changing any code",
    "restarting the service",
    "rolling back",
    "opening a ticket",
    "rewriting the module",
    "adding more retries",
    "scaling up the hardware",
    "merging the fix",
    "doing any arithmetic",
    "reporting the final answer",
    "blaming the framework",
    "deleting data",
    "tuning parameters",
    "writing the summary",
    "asking for a review",
    "disabling the test",
    "upgrading everything",
    "touching production",
    "guessing a formula",
    "adding a cache",
]
REASONS = [
    "",
    "because the first symptom is rarely the cause",
    "since guesses waste more time than checks",
    "so the fix can be verified",
    "because silent assumptions cause most regressions",
    "since the cheapest check usually finds it",
    "so nobody repeats the same mistake",
    "because the numbers must match exactly",
]
TEMPLATES = [
    "When {s} in {d}, {a} before {o}{r}.",
    "If {s} in {d}, always {a} before {o}{r}.",
    "In {d}, when {s}, {a} first and only then consider {o}{r}.",
    "Before {o} in {d} because {s}, {a}{r}.",
    "For {d}: if {s}, {a} before {o}{r}.",
    "Whenever {s} in {d}, {a} rather than {o}{r}.",
]


def experience_texts(seed: int) -> Iterator[str]:
    """An endless deterministic stream of distinct one-sentence experiences of at most 32 words."""
    rng = random.Random(seed)
    seen: set[str] = set()
    while True:
        reason = rng.choice(REASONS)
        text = rng.choice(TEMPLATES).format(
            s=rng.choice(SITUATIONS),
            d=rng.choice(DOMAINS),
            a=rng.choice(ACTIONS),
            o=rng.choice(OTHER_ACTIONS),
            r=f", {reason}" if reason else "",
        )
        if text in seen or count_words(text) > 32:
            continue
        seen.add(text)
        yield text


TASK_VERBS = ["Fix", "Investigate", "Explain", "Speed up", "Review", "Debug", "Plan", "Solve", "Document", "Test"]
TASK_OBJECTS = [
    "intermittent timeouts",
    "a wrong invoice total",
    "a failing nightly build",
    "slow dashboard queries",
    "a memory leak",
    "duplicated events",
    "a unit conversion word problem",
    "an off-by-one in pagination",
    "a broken login redirect",
    "a percentage increase question",
    "stale search results",
    "a crashing import script",
    "an expensive cloud bill",
    "a race in the job scheduler",
    "a probability exercise with two dice",
]
TASK_DETAILS = [
    "that started after yesterday's deploy",
    "reported by three customers this week",
    "which only happens under heavy load",
    "where the logs show nothing useful",
    "before the release on Friday",
    "without access to production data",
    "in code nobody on the team wrote",
    "with a hard deadline tonight",
]


def task_texts(n: int, seed: int) -> list[str]:
    """``n`` distinct task descriptions, as an agent would send them before starting work."""
    rng = random.Random(seed)
    tasks: dict[str, None] = {}
    while len(tasks) < n:
        number = rng.randint(2, 999)
        text = (
            f"{rng.choice(TASK_VERBS)} {rng.choice(TASK_OBJECTS)} in {rng.choice(DOMAINS)} "
            f"{rng.choice(TASK_DETAILS)} (ticket {number})."
        )
        tasks[text] = None
    return list(tasks)


# ---- measuring helpers --------------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0-100) of ``values``."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary(values: list[float]) -> dict[str, float]:
    """p50 / p99 / mean in milliseconds (``values`` in seconds)."""
    return {"p50": pct(values, 50) * 1e3, "p99": pct(values, 99) * 1e3, "mean": statistics.fmean(values) * 1e3}


def proc_memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in KiB (empty when the process is gone)."""
    found: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0])
    except OSError:
        pass
    return found


def find_server_pid(data_dir: Path) -> int:
    """The ``python -m debrief.server serve --data-dir <data_dir>`` process (the data dir is unique to this run)."""
    wanted = str(data_dir).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in args and wanted in args and b"server" in args:
            return int(entry.name)
    raise RuntimeError(f"no server process found for {data_dir}")


def host_pid(data_dir: Path) -> int | None:
    """The shared Chroma host's pid from ``<data_dir>/chroma-host.json``."""
    import json

    try:
        return int(json.loads((data_dir / "chroma-host.json").read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return None


def mib(kib: int | None) -> str:
    return "n/a" if kib is None else f"{kib / 1024:.0f}"


def machine_facts() -> dict[str, str]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    load = Path("/proc/loadavg").read_text().split()[:3]
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    return {
        "nproc": subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip(),
        "cpu": model,
        "load": " ".join(load),
        "mem": f"{int(mem) / 1024 / 1024:.1f} GiB",
        "python": sys.version.split()[0],
        "openblas": os.environ.get("OPENBLAS_NUM_THREADS", "unset (OpenBLAS default: all cores)"),
    }


def server_env(data_dir: Path) -> dict[str, str]:
    # PYTHONPATH lets a patched copy of server/ be benchmarked (set it for this script too).
    keep = ("DEBRIEF_", "PATH", "HOME", "LANG", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "PYTHONPATH")
    env = {key: value for key, value in os.environ.items() if key.startswith(keep)}
    env.update(DEBRIEF_DATA_DIR=str(data_dir), DEBRIEF_CHROMA_MODE="shared", DEBRIEF_EMBEDDER="local")
    return env


def server_params(data_dir: Path) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "debrief.server", "serve", "--data-dir", str(data_dir)],
        env=server_env(data_dir),
    )


# ---- population ------------------------------------------------------------------------------------------


class TimedEmbedder:
    """MiniLM with progress on stderr and the time spent embedding (the store sees the same name/dimension)."""

    def __init__(self, inner: MiniLMEmbedder, total: int) -> None:
        self.inner = inner
        self.name = inner.name
        self.dimension = inner.dimension
        self.seconds = 0.0
        self.texts = 0
        self.total = total

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), 1000):
            block = texts[start : start + 1000]
            began = time.perf_counter()
            vectors.extend(await self.inner.embed(block))
            self.seconds += time.perf_counter() - began
            self.texts += len(block)
            if self.texts // 5000 != (self.texts - len(block)) // 5000 or self.texts == self.total:
                log(f"  embedded {self.texts}/{self.total} ({self.texts / self.seconds:.0f} texts/s)")
        return vectors


async def active_count(store: ExperienceStore) -> int:
    for info in await store.namespaces():
        if info.namespace == NAMESPACE:
            return info.active
    return 0


async def populate(
    settings: Settings, embedder: MiniLMEmbedder, target: int, chunk: int, import_limit: int, apply_batch: int
) -> dict[str, Any] | None:
    """Grow the namespace to ``target`` active experiences; ``None`` when it already has them.

    ``import_library`` (merge) while the namespace has fewer than ``import_limit`` experiences: its planner reads
    every stored record with one unbounded Chroma ``get``, which fails from ~32.7k records on ("too many SQL
    variables", SQLite's 32,766 limit). Beyond that, ``apply`` with learner add operations (the learner's public
    seam, no full read) in batches of ``apply_batch`` (its in-batch near-duplicate check is pairwise, O(n^2)).
    """
    timed = TimedEmbedder(embedder, 0)
    store = await ExperienceStore.open(settings, timed)
    try:
        have = await active_count(store)
        if have >= target:
            log(f"namespace {NAMESPACE!r} already has {have} active experiences (>= {target}): no population")
            return None
        # Resuming: skip the texts earlier runs consumed; a text already stored is rejected by the store itself.
        stream = experience_texts(seed=20260)
        for _ in range(have):
            next(stream)
        timed.total = target - have
        log(f"populating {NAMESPACE!r}: {have} -> {target} experiences")
        began = time.perf_counter()
        imports, applies, skipped, writes = 0, 0, 0, 0.0
        while have < target:
            by_import = have + chunk <= import_limit
            texts = [next(stream) for _ in range(min(chunk if by_import else apply_batch, target - have))]
            embedded = timed.seconds
            step = time.perf_counter()
            if by_import:
                data = LibraryExport(
                    namespace=NAMESPACE,
                    version=0,
                    exported_at=datetime.now(UTC),
                    experiences=[
                        ExportedExperience(experience_id=f"gen-{have + i}", text=t) for i, t in enumerate(texts)
                    ],
                )
                change = await store.import_library(NAMESPACE, data, mode="merge")
                created = len(change.edits) if change is not None else 0
                imports += 1
            else:
                result = await store.apply(
                    NAMESPACE,
                    [AddOperation(text=t) for t in texts],
                    provenance=Provenance(kind="import"),
                    reason="benchmark population",
                )
                created = len(result.applied)
                applies += 1
            writes += time.perf_counter() - step - (timed.seconds - embedded)
            skipped += len(texts) - created
            have += created
            if by_import or applies % 20 == 0 or have >= target:
                log(
                    f"  {'import' if by_import else 'apply'}: +{created}, {have}/{target}, "
                    f"{time.perf_counter() - began:.0f} s"
                )
        total = time.perf_counter() - began
        return {
            "added": timed.texts,
            "imports": imports,
            "applies": applies,
            "chunk": chunk,
            "apply_batch": apply_batch,
            "skipped": skipped,
            "embed_s": timed.seconds,
            "embed_rate": timed.texts / timed.seconds,
            "write_s": writes,
            "total_s": total,
        }
    finally:
        await store.aclose()


# ---- the measured round --------------------------------------------------------------------------------


async def idle_memory(parent: Path) -> dict[str, Any]:
    """Server and Chroma host memory on a fresh empty data dir after initialize + list_tools."""
    data_dir = Path(tempfile.mkdtemp(prefix="idle-", dir=parent))
    with (parent / "server-idle.log").open("w") as errlog:
        async with Client(stdio_client(server_params(data_dir), errlog=errlog), read_timeout_seconds=300) as client:
            tools = await client.list_tools()
            await anyio.sleep(1.0)
            server = proc_memory(find_server_pid(data_dir))
            chroma = host_pid(data_dir)
            host = proc_memory(chroma) if chroma else {}
    log(f"idle: {len(tools.tools)} tools, server {server}, chroma host {host}")
    return {"server": server, "host": host}


async def measure(
    settings: Settings, embedder: MiniLMEmbedder, tasks: list[str], warmup: list[str], log_path: Path
) -> dict[str, Any]:
    """Interleaved floors, in-process handler costs and stdio round trips for each task."""
    store = await ExperienceStore.open(settings, embedder)
    connection = await connect(settings)
    try:
        name = collection_name(NAMESPACE, "active")
        collection = await anyio.to_thread.run_sync(
            lambda: connection.client.get_collection(name, embedding_function=None)
        )
        size = await anyio.to_thread.run_sync(collection.count)
        n_results = K + max(5, K)
        include = ["documents", "metadatas", "distances"]
        times: dict[str, list[float]] = {"embed": [], "chroma": [], "relevant": [], "retrieve": [], "round_trip": []}
        with log_path.open("w") as errlog:
            async with AsyncExitStack() as stack:
                started = time.perf_counter()
                client = await stack.enter_async_context(
                    Client(stdio_client(server_params(settings.data_dir), errlog=errlog), read_timeout_seconds=300)
                )
                await client.list_tools()
                startup = time.perf_counter() - started
                pid = find_server_pid(settings.data_dir)
                for task in warmup:
                    vector = embedder.embed_sync([task])[0].tolist()
                    collection.query(query_embeddings=[vector], n_results=n_results, include=include)
                    await store.relevant(NAMESPACE, task, k=K)
                    result = await client.call_tool("retrieve_experiences", {"task": task, "namespace": NAMESPACE})
                    assert not result.is_error, result
                gc.collect()
                for index, task in enumerate(tasks):
                    t0 = time.perf_counter()
                    vector = embedder.embed_sync([task])[0].tolist()
                    t1 = time.perf_counter()
                    collection.query(query_embeddings=[vector], n_results=n_results, include=include)
                    t2 = time.perf_counter()
                    await store.relevant(NAMESPACE, task, k=K)
                    t3 = time.perf_counter()
                    await store.retrieve(NAMESPACE, task, k=K)
                    t4 = time.perf_counter()
                    args = {"task": task, "namespace": NAMESPACE, "k": K}
                    result = await client.call_tool("retrieve_experiences", args)
                    t5 = time.perf_counter()
                    got = (result.structured_content or {}).get("experiences", [])
                    assert not result.is_error and len(got) == K, result
                    for key, value in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
                        times[key].append(value)
                    if (index + 1) % 50 == 0:
                        log(f"  {index + 1}/{len(tasks)} queries, round trip p50 so far {summary(times['round_trip'])}")
                server = proc_memory(pid)
                chroma = host_pid(settings.data_dir)
                host = proc_memory(chroma) if chroma else {}
        return {
            "size": size,
            "startup_s": startup,
            **{key: summary(values) for key, values in times.items()},
            "server_mem": server,
            "host_mem": host,
        }
    finally:
        await connection.aclose()
        await store.aclose()


# ---- report ------------------------------------------------------------------------------------------------


def report(command: str, facts: dict[str, str], idle: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    lines = [
        "# `retrieve_experiences` round trip over stdio vs its floors",
        "",
        f"Command (from the repo root): `{command}`",
        "",
        f"Machine: {facts['nproc']} cores ({facts['cpu']}), {facts['mem']} RAM, load average at start "
        f"{facts['load']} (shared with other sessions); Python {facts['python']}; "
        f"OPENBLAS_NUM_THREADS={facts['openblas']} (bench process and server alike).",
        "",
        f"k = {K}; one namespace; {rows[0]['queries'] if rows else 0} distinct task texts per size after warm-up. "
        "All times in ms. Floors are measured in the client process, interleaved with the round trips: embed = "
        "`MiniLMEmbedder.embed_sync([task])`, chroma = one `collection.query` (n_results 10, documents + "
        "metadatas + distances) on the shared host. `relevant`/`retrieve` = the store methods called in the "
        "client process (retrieve = what the tool handler awaits, incl. the `retrieved` counter bump).",
        "",
        "| experiences | round trip p50 / p99 / mean | embed floor p50 / p99 | chroma floor p50 / p99 | sum of floor "
        "p50s | ratio p50 / sum (goal <= 1.5) | in-process relevant p50 | in-process retrieve p50 | server RSS "
        "(peak) MiB | Chroma host RSS MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        floor = row["embed"]["p50"] + row["chroma"]["p50"]
        ratio = row["round_trip"]["p50"] / floor
        lines.append(
            f"| {row['size']:,} | {row['round_trip']['p50']:.1f} / {row['round_trip']['p99']:.1f} / "
            f"{row['round_trip']['mean']:.1f} | {row['embed']['p50']:.1f} / {row['embed']['p99']:.1f} | "
            f"{row['chroma']['p50']:.1f} / {row['chroma']['p99']:.1f} | {floor:.1f} | **{ratio:.2f}** "
            f"{'met' if ratio <= 1.5 else 'MISSED'} | {row['relevant']['p50']:.1f} | {row['retrieve']['p50']:.1f} | "
            f"{mib(row['server_mem'].get('VmRSS'))} ({mib(row['server_mem'].get('VmHWM'))}) | "
            f"{mib(row['host_mem'].get('VmRSS'))} |"
        )
    lines += [
        "",
        f"Idle memory (fresh empty data dir, after initialize + list_tools): server "
        f"{mib(idle['server'].get('VmRSS'))} MiB RSS (peak {mib(idle['server'].get('VmHWM'))}), "
        f"Chroma host {mib(idle['host'].get('VmRSS'))} MiB.",
        "",
    ]
    for row in rows:
        lines.append(f"Server startup to first list_tools at {row['size']:,}: {row['startup_s']:.1f} s.")
        pop = row.get("population")
        if pop:
            lines.append(
                f"Population to {row['size']:,}: {pop['added']:,} texts embedded in {pop['embed_s']:.0f} s "
                f"({pop['embed_rate']:.0f} texts/s), Chroma writes/planning {pop['write_s']:.0f} s, total "
                f"{pop['total_s']:.0f} s in {pop['imports']} merge imports of <= {pop['chunk']:,} and {pop['applies']} "
                f"applies of <= {pop['apply_batch']} add operations ({pop['skipped']} duplicates skipped)."
            )
    return "\n".join(lines) + "\n"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="namespace sizes, ascending (grown in place)")
    parser.add_argument("--queries", type=int, default=200, help="measured retrievals per size")
    parser.add_argument("--warmup", type=int, default=10, help="unmeasured retrievals first")
    parser.add_argument("--data-dir", type=Path, default=None, help="store dir; reuse a populated one to skip work")
    parser.add_argument("--embedder", choices=["local"], default="local")
    parser.add_argument(
        "--chunk",
        type=int,
        default=5000,
        help="experiences per import (10,000 fails: the merge planner's one Chroma query with every "
        "imported vector exceeds Chroma's request size limit, 'Payload too large')",
    )
    parser.add_argument(
        "--import-limit",
        type=int,
        default=30_000,
        help="use import_library only up to this namespace size (it fails from ~32.7k: see populate)",
    )
    parser.add_argument("--apply-batch", type=int, default=250, help="learner add operations per apply beyond it")
    parser.add_argument("--output", type=Path, default=RESULTS, help="Markdown result file")
    args = parser.parse_args()
    command = (
        "OPENBLAS_NUM_THREADS=" + os.environ["OPENBLAS_NUM_THREADS"] + " "
        if "OPENBLAS_NUM_THREADS" in os.environ
        else ""
    )
    command += "python benchmarks/bench_retrieve.py " + " ".join(sys.argv[1:])
    facts = machine_facts()
    log(f"machine: {facts}")
    data_dir = (args.data_dir or Path(tempfile.mkdtemp(prefix="debrief-bench-"))).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings(data_dir=data_dir, chroma_mode="shared", dedup_threshold=0.99)
    sizes = [int(part) for part in args.sizes.split(",")]
    tasks = task_texts(args.queries + args.warmup, seed=7)
    warmup, tasks = tasks[: args.warmup], tasks[args.warmup :]
    embedder = MiniLMEmbedder()
    idle = await idle_memory(data_dir)
    rows: list[dict[str, Any]] = []
    for size in sizes:
        population = await populate(settings, embedder, size, args.chunk, args.import_limit, args.apply_batch)
        log(f"measuring at {size}: {len(tasks)} queries")
        row = await measure(settings, embedder, tasks, warmup, data_dir / f"server-{size}.log")
        row.update(population=population, queries=len(tasks))
        rows.append(row)
        log(f"at {size}: {row}")
        text = report(command, facts, idle, rows)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    anyio.run(main)
