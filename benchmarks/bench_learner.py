"""One learning step of 100 problems x G = 5: the official code's schedule vs Debrief's default, same fake, same seeds.

Every call sleeps for a lognormal latency (median 1 model-second, sigma --sigma) times --scale real seconds per
model-second, drawn from a generator seeded by the call's content, so every schedule meets the same latency for
the same call. Replies are scripted (no model, no network).

Schedules:
- official: stage barriers, G single requests per group, rollouts at 32 in flight, reflection stages at 128,
  a summary per attempt (what the official training_free_GRPO code does);
- Debrief default: pipelined groups, one n = G request per group, groups that fit read whole by the advantage
  stage, adaptive concurrency per endpoint starting at 128;
- Debrief with per-attempt summaries (reflection_input=summaries), to measure what reading whole saves;
- Debrief default against a rate-limited fake (429 with Retry-After above --rate-limit requests in flight).
A paired placement comparison (experiences in the system prompt vs after the problem) reports the share of
rollout prompt text that is a common prefix across problems (what a prefix cache can reuse).

    .venv/bin/python benchmarks/bench_learner.py            # about a minute on 2 cores
    .venv/bin/python benchmarks/bench_learner.py --scale 0.1 --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import time
import zlib
from dataclasses import dataclass, field

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
from debrief.learner.errors import BackendError

LESSONS = 7


def addition(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(100, 999), rng.randint(100, 999)
    return f"What is {a} + {b}? Show your work.", str(a + b)


def policy(request: ChatRequest, choice: int) -> str:
    question = next(message.content for message in request.messages if message.role == "user")
    a, b = (int(word) for word in question.split("?")[0].split() if word.isdigit())
    problem = question.split("?")[0]  # only the problem seeds the draw: both placements get the same attempts
    rng = random.Random(zlib.crc32(problem.encode()) + (request.seed or 0) + choice)
    value = a + b if rng.random() < 0.5 else a + b + 100
    return f"First I add the ones, then the tens, then the hundreds of {a} and {b}. " * 4 + f"\\boxed{{{value}}}"


def reflect(request: ChatRequest, choice: int) -> str:
    if request.stage == "summary":
        return json.dumps({"summary": "Added column by column; the carry into the hundreds was " + "checked " * 10})
    if request.stage == "advantage":
        number = zlib.crc32(request.messages[-1].content.encode()) % LESSONS
        lesson = f"When adding three-digit numbers, check carry number {number} before writing the answer."
        return json.dumps({"analysis": "The correct ones carried.", "operations": [{"op": "add", "text": lesson}]})
    labels = re.findall(r"^(P\d+): ", request.messages[-1].content, re.MULTILINE)
    decisions = [{"proposal": label, "decision": "drop", "reason": "keep three"} for label in labels[3:]]
    return json.dumps({"reasoning": "kept three", "decisions": decisions, "operations": []})


@dataclass
class LatencyBackend:
    """Wraps a FunctionBackend with a heavy-tailed, content-seeded delay per call; optionally rate-limited."""

    inner: FunctionBackend
    scale: float
    sigma: float
    seed: int
    rate_limit: int | None = None
    in_flight: int = 0
    peak: int = 0
    refused: int = 0
    prompts: list[str] = field(default_factory=list)

    async def complete(self, request: ChatRequest) -> ChatReply:
        if self.rate_limit is not None and self.in_flight >= self.rate_limit:
            self.refused += 1
            await anyio.sleep(0.02 * self.scale / 0.05)  # the refusal's own round trip
            raise BackendError("rate limited", status=429, retry_after=0.5 * self.scale)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            if request.stage == "rollout":
                self.prompts.append("\n".join(message.content for message in request.messages))
            key = "|".join(m.content for m in request.messages) + f"|{request.seed}|{request.n}|{self.seed}"
            rng = random.Random(zlib.crc32(key.encode()))
            await anyio.sleep(rng.lognormvariate(0.0, self.sigma) * self.scale)  # median exp(0) = 1 model-second
            return await self.inner.complete(request)
        finally:
            self.in_flight -= 1


@dataclass
class Result:
    label: str
    seed: int
    wall: float
    report: RunReport
    policy: LatencyBackend


async def one(label: str, seed: int, args: argparse.Namespace, **settings: object) -> Result:
    honours_n = bool(settings.pop("honours_n", True))
    rate_limit = settings.pop("rate_limit", None)
    problems = generate_problems(addition, args.problems, seed=seed)
    config = RunConfig.model_validate(
        {
            "run_id": label,
            "epochs": 1,
            "batch_size": args.problems,
            "group_size": args.group_size,
            "seed": seed,
            "retry_backoff": 0.5 * args.scale,
            **settings,
        }
    )
    limit = rate_limit if isinstance(rate_limit, int) else None
    policy_backend = LatencyBackend(FunctionBackend(policy, honours_n=honours_n), args.scale, args.sigma, seed, limit)
    reflect_backend = LatencyBackend(FunctionBackend(reflect), args.scale, args.sigma, seed, limit)
    started = time.perf_counter()
    report = await run_learning(
        config,
        backends=Backends(policy=policy_backend, reflect=reflect_backend),
        library=InMemoryLibrary(),
        problems=problems,
        verifier=make_verifier("numeric"),
    )
    return Result(label, seed, time.perf_counter() - started, report, policy_backend)


def common_prefix_share(prompts: list[str]) -> float:
    """The share of rollout prompt text that is a prefix common to every rollout prompt."""
    if not prompts:
        return 0.0
    prefix = os.path.commonprefix(prompts)
    return len(prefix) * len(prompts) / sum(len(prompt) for prompt in prompts)


SCHEDULES: list[tuple[str, dict[str, object]]] = [
    (
        "official: barriers, G singles, 32/128",
        {
            "schedule": "barrier",
            "honours_n": False,
            "concurrency": 32,
            "reflect_concurrency": 128,
            "adaptive_concurrency": False,
            "reflection_input": "summaries",
        },
    ),
    ("Debrief default", {}),
    ("Debrief, per-attempt summaries", {"reflection_input": "summaries"}),
]


async def main(args: argparse.Namespace) -> None:
    seeds = [int(seed) for seed in args.seeds.split(",")]
    schedules = [*SCHEDULES, (f"Debrief default, 429 above {args.rate_limit}", {"rate_limit": args.rate_limit})]
    results: dict[str, list[Result]] = {label: [] for label, _ in schedules}
    for seed in seeds:
        for label, settings in schedules:
            results[label].append(await one(label, seed, args, **dict(settings)))
    print(
        f"{args.problems} problems x G={args.group_size}, one step, latency lognormal(median 1, sigma {args.sigma}) "
        f"model-s, {args.scale} real s per model-s, seeds {seeds}"
    )
    header = (
        f"{'schedule':<36} {'wall (model s)':>22} {'x official':>18} {'requests':>8} {'x':>5} {'retried':>7} "
        f"{'failed groups':>13} {'status':>9} {'kept':>4} {'lib':>3}"
    )
    print(header)
    print("-" * len(header))
    official = results[schedules[0][0]]
    for label, runs in results.items():
        walls = " / ".join(f"{run.wall / args.scale:.1f}" for run in runs)
        ratios = " / ".join(f"{run.wall / base.wall:.2f}" for run, base in zip(runs, official, strict=True))
        requests = runs[0].report.total.requests
        failed = sum(len(run.report.failed_groups) + sum(s.groups_failed for s in run.report.steps) for run in runs)
        step = runs[0].report.steps[0]
        print(
            f"{label:<36} {walls:>22} {ratios:>18} {requests:>8} {requests / official[0].report.total.requests:>5.2f} "
            f"{sum(run.report.retried_requests for run in runs):>7} {failed:>13} {runs[-1].report.status:>9} "
            f"{step.groups_kept:>4} {step.library_size:>3}"
        )
    limited = results[schedules[-1][0]]
    print(
        f"rate-limited fake: {sum(run.policy.refused for run in limited)} requests refused with 429, "
        f"peak in flight at the policy endpoint {max(run.policy.peak for run in limited)} (limit {args.rate_limit})"
    )
    print(f"expected max of {args.problems} lognormal draws ~ {math.exp(args.sigma * 2.33):.1f} model-s")
    await placement(args, seeds[0])


async def placement(args: argparse.Namespace, seed: int) -> None:
    """Paired: the same run with experiences in the system prompt or after the problem (after one learned step)."""
    for where in ("system", "user"):
        result = await one(f"placement {where}", seed, args, placement=where, epochs=2, batch_size=args.problems // 2)
        second_step = result.policy.prompts[args.problems // 2 :]
        reward = [step.mean_reward for step in result.report.steps]
        print(
            f"placement {where:<6}: rollout prompts with experiences share a common prefix of "
            f"{common_prefix_share(second_step):.0%} of their text; mean reward per step {reward}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=100)
    parser.add_argument("--group-size", type=int, default=5)
    parser.add_argument("--scale", type=float, default=0.05, help="real seconds per model-second")
    parser.add_argument("--sigma", type=float, default=1.0, help="lognormal sigma of the latency")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--rate-limit", type=int, default=24, help="requests in flight above which the fake 429s")
    anyio.run(main, parser.parse_args())
