"""Throughput and resident memory of debrief.server.embedding.minilm.MiniLMEmbedder.

Run from the repository root:  .venv/bin/python benchmarks/bench_minilm.py
(and with OPENBLAS_NUM_THREADS=1 in front to compare BLAS threading).
"""

import os
import random
import resource
import time

import anyio

from debrief.server.embedding.minilm import MiniLMEmbedder


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def main() -> None:
    before = rss_mb()
    started = time.perf_counter()
    model = MiniLMEmbedder()
    loaded = time.perf_counter() - started
    print(f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, load avg {os.getloadavg()[0]:.1f}")
    print(f"RSS before load {before:.0f} MB, after load {rss_mb():.0f} MB, load took {loaded:.2f}s")
    random.seed(0)
    words = (
        "the agent retrieved stored experience lesson group rollout verifier rejected answer "
        "because wrong unit check before summing every attempt improved reward task math code"
    ).split()
    texts = [" ".join(random.choice(words) for _ in range(random.randint(5, 20))) for _ in range(1000)]
    for batch_size in (32, 64):
        model._batch_size = batch_size  # same weights, other batch size
        await model.embed(texts[:64])  # warm-up
        best = 0.0
        for _ in range(3):
            started = time.perf_counter()
            await model.embed(texts)
            best = max(best, len(texts) / (time.perf_counter() - started))
        print(f"batch_size={batch_size}: {best:.0f} texts/s (best of 3; 1000 texts of 5-20 words)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"RSS after runs {rss_mb():.0f} MB, peak {peak:.0f} MB")


anyio.run(main)
