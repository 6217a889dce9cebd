"""Pipelined vs stage-barrier schedule: one epoch of 100 problems x G = 5 against a heavy-tailed fake backend.

Every call sleeps for a lognormal latency (median 1 model-second, sigma --sigma) multiplied by --scale real
seconds per model-second; the latency of a call is drawn from a generator seeded by the call's content, so both
schedules meet the same latencies for the same calls. Replies are scripted (no model, no network).

    /work/venv/bin/python benchmarks/bench_learner.py            # about a minute on 2 cores
    /work/venv/bin/python benchmarks/bench_learner.py --scale 0.1 --sigma 1.0 --concurrency 32
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import time
import zlib
from dataclasses import dataclass

import anyio

from debrief.learner import (
    Backends,
    FunctionBackend,
    InMemoryLibrary,
    RunConfig,
    RunReport,
    generate_problems,
    make_verifier,
    run_learning,
)
from debrief.learner.backend import ChatReply, ChatRequest


def addition(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(100, 999), rng.randint(100, 999)
    return f"What is {a} + {b}? Show your work.", str(a + b)


def policy(request: ChatRequest, choice: int) -> str:
    question = request.messages[-1].content
    a, b = (int(word) for word in question.split("?")[0].split() if word.isdigit())
    rng = random.Random(zlib.crc32(question.encode()) + (request.seed or 0) + choice)
    value = a + b if rng.random() < 0.5 else a + b + 100
    return f"First I add the ones, then the tens, then the hundreds of {a} and {b}. " * 4 + f"\\boxed{{{value}}}"


def reflect(request: ChatRequest, choice: int) -> str:
    if request.stage == "summary":
        return json.dumps({"summary": "Added column by column; the carry into the hundreds was " + "checked " * 10})
    if request.stage == "advantage":
        number = zlib.crc32(request.messages[-1].content.encode()) % 7
        lesson = f"When adding three-digit numbers, check carry number {number} before writing the answer."
        return json.dumps({"analysis": "The correct ones carried.", "operations": [{"op": "add", "text": lesson}]})
    proposals = [line for line in request.messages[-1].content.splitlines() if re.match(r"P\d+: ", line)]
    texts = sorted({json.loads(line.split(": ", 1)[1])["text"] for line in proposals})[:3]
    return json.dumps({"reasoning": "kept three", "operations": [{"op": "add", "text": text} for text in texts]})


@dataclass
class LatencyBackend:
    """Wraps a FunctionBackend with a heavy-tailed, content-seeded delay per call."""

    inner: FunctionBackend
    scale: float
    sigma: float
    seed: int

    async def complete(self, request: ChatRequest) -> ChatReply:
        key = "|".join(message.content for message in request.messages) + f"|{request.seed}|{request.n}|{self.seed}"
        rng = random.Random(zlib.crc32(key.encode()))
        await anyio.sleep(rng.lognormvariate(0.0, self.sigma) * self.scale)  # median exp(0) = 1 model-second
        return await self.inner.complete(request)


@dataclass
class Result:
    label: str
    wall: float
    report: RunReport


async def one(label: str, *, schedule: str, honours_n: bool, args: argparse.Namespace) -> Result:
    problems = generate_problems(addition, args.problems, seed=args.seed)
    config = RunConfig(
        run_id=label,
        epochs=1,
        batch_size=args.problems,
        group_size=args.group_size,
        concurrency=args.concurrency,
        seed=args.seed,
        schedule="pipelined" if schedule == "pipelined" else "barrier",
    )
    policy_backend = LatencyBackend(FunctionBackend(policy, honours_n=honours_n), args.scale, args.sigma, args.seed)
    reflect_backend = LatencyBackend(FunctionBackend(reflect), args.scale, args.sigma, args.seed)
    started = time.perf_counter()
    report = await run_learning(
        config,
        backends=Backends(policy=policy_backend, reflect=reflect_backend),
        library=InMemoryLibrary(),
        problems=problems,
        verifier=make_verifier("numeric"),
    )
    return Result(label, time.perf_counter() - started, report)


async def main(args: argparse.Namespace) -> None:
    runs = [
        await one("barrier, G single requests", schedule="barrier", honours_n=False, args=args),
        await one("barrier, n=G", schedule="barrier", honours_n=True, args=args),
        await one("pipelined, G single requests", schedule="pipelined", honours_n=False, args=args),
        await one("pipelined, n=G", schedule="pipelined", honours_n=True, args=args),
    ]
    base = runs[0]
    print(
        f"{args.problems} problems x G={args.group_size}, concurrency {args.concurrency}, latency lognormal(median 1, "
        f"sigma {args.sigma}) model-s, {args.scale} real s per model-s, seed {args.seed}"
    )
    header = (
        f"{'schedule':<30} {'wall s':>7} {'model s':>8} {'x barrier':>9} {'requests':>8} {'rollout req':>11} "
        f"{'rollout prompt tok':>18} {'x':>5} {'prompt tok':>10} {'compl tok':>9} {'kept':>4} {'lib':>3}"
    )
    print(header)
    print("-" * len(header))
    base_rollout = base.report.tokens["rollout"].prompt_tokens
    for run in runs:
        step = run.report.steps[0]
        rollout = run.report.tokens["rollout"]
        print(
            f"{run.label:<30} {run.wall:>7.2f} {run.wall / args.scale:>8.1f} {run.wall / base.wall:>9.2f} "
            f"{run.report.total.requests:>8} {rollout.requests:>11} {rollout.prompt_tokens:>18} "
            f"{rollout.prompt_tokens / base_rollout:>5.2f} {run.report.total.prompt_tokens:>10} "
            f"{run.report.total.completion_tokens:>9} {step.groups_kept:>4} {step.library_size:>3}"
        )
    print(f"expected max of {args.problems} lognormal draws ~ {math.exp(args.sigma * 2.33):.1f} model-s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=100)
    parser.add_argument("--group-size", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--scale", type=float, default=0.05, help="real seconds per model-second")
    parser.add_argument("--sigma", type=float, default=1.0, help="lognormal sigma of the latency")
    parser.add_argument("--seed", type=int, default=0)
    anyio.run(main, parser.parse_args())
