"""``debrief demo``: the whole loop on the embedded defaults, measured, then a real client session."""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import anyio
from rich.console import Console
from rich.table import Table

from debrief.learner import DirectoryCheckpoint, Problem, make_verifier
from debrief.learner.errors import LearnerError
from debrief.learner.evaluation import ArmResult, Comparison, PairedEvaluator, PairedReport, library_arm, no_library
from debrief.learner.prompts import DEFAULT_INSTRUCTIONS
from debrief.learner.sources import load_source, source_verifier
from debrief.learner.verifiers import Verifier
from debrief.server.backends.provider import ModelProvider
from debrief.server.cli.demo_session import run_session
from debrief.server.cli.demo_tasks import generate_tasks
from debrief.server.cli.flags import settings_from_flags
from debrief.server.cli.learn import learn_with_progress, step_table
from debrief.server.cli.run_console import nothing_learned
from debrief.server.errors import InvalidInput
from debrief.server.learning.run_config import run_config
from debrief.server.settings import Settings
from debrief.server.store.experience_store import ExperienceStore
from debrief.server.store.learner_library import StoreLibrary

DEMO_INSTRUCTIONS = "You solve short math word problems. Think briefly, then end with a last line 'Answer: <number>'."


def _problems(tasks: Sequence[Any]) -> list[Problem]:
    return [Problem(problem_id=task.problem_id, question=task.question, answer=task.answer) for task in tasks]


def _accuracy_row(table: Table, label: str, arm: ArmResult) -> None:
    table.add_row(
        label,
        f"{arm.mean_at_k:.3f}",
        f"{arm.pass_at_k:.3f}",
        f"{arm.tokens.prompt_tokens:,}",
        f"{arm.tokens.completion_tokens:,}",
    )


def paired_verdict(delta: Comparison, samples: int, method: str) -> str:
    """The before/after difference in plain words: its 95% interval, and whether it is significant."""
    low, high = delta.ci95
    figures = (
        f"Mean@{samples} difference {delta.mean_at_k:+.3f}, 95% CI [{low:+.3f}, {high:+.3f}] "
        f"({method}, {delta.problems} held-out problems, same seeds), p = {delta.p_value:.2g}"
    )
    if delta.verdict == "better":
        return f"{figures}: significant, the experiences helped on these problems."
    if delta.verdict == "worse":
        return f"{figures}: significant, the experiences hurt on these problems."
    return (
        f"{figures}: not significant, the interval includes zero; this demo cannot tell a gain from noise "
        "(more held-out problems or samples narrow it)."
    )


def demo_problems(args: argparse.Namespace) -> tuple[list[Problem], list[Problem], Verifier, str]:
    """Training and held-out problems, their verifier and the policy's instructions.

    The built-in word problems by default; with ``--data`` any source (a JSONL file, ``dapo:``/``aime:`` files or
    ``reasoning-gym:NAME``), split by a seeded shuffle into ``--train`` and ``--heldout`` problems.
    """
    if args.data is None:
        split = generate_tasks(args.seed, args.train, args.heldout)
        verifier = make_verifier(args.verifier or "debrief.server.cli.demo_tasks:check_answer")
        return _problems(split.train), _problems(split.heldout), verifier, DEMO_INSTRUCTIONS
    try:
        source = load_source(args.data, require_answer=True)
        verifier = source_verifier(source, args.verifier)
    except LearnerError as error:
        raise InvalidInput(str(error)) from error
    problems = list(source.problems)
    if len(problems) < args.train + args.heldout:
        raise InvalidInput(
            f"{args.data!r} has {len(problems)} problems; the demo asks for {args.train} training and "
            f"{args.heldout} held-out ones: give more problems or lower --train/--heldout"
        )
    random.Random(args.seed).shuffle(problems)
    return problems[: args.train], problems[args.train : args.train + args.heldout], verifier, DEFAULT_INSTRUCTIONS


async def run_demo(
    settings: Settings, args: argparse.Namespace, console: Console, provider: ModelProvider | None = None
) -> None:
    """Generate tasks, measure, learn, measure again with retrieved experiences, then serve a client."""
    from debrief.server.embedding.embedder import make_embedder

    namespace = args.namespace or "demo-" + datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    train, heldout, verifier, instructions = demo_problems(args)
    config = run_config(
        settings,
        run_id=f"run-demo{int(time.time())}",
        epochs=args.epochs,
        batch_size=args.batch_size,
        group_size=args.group_size,
        seed=args.seed,
        instructions=instructions,
        max_completion_tokens=args.max_tokens,
        # A small local model rambles to its context's end when let: summaries and plans need a few hundred tokens.
        reflect_max_tokens=args.reflect_max_tokens,
        concurrency=2,
    )
    console.rule("[bold]Debrief demo")
    console.print(
        f"{len(train)} training and {len(heldout)} held-out word problems (seed {args.seed}); "
        f"namespace [bold]{namespace}[/]; data dir {settings.data_dir}"
    )
    store = await ExperienceStore.open(settings, make_embedder(settings))
    provider = provider or ModelProvider(settings)
    try:
        started = time.perf_counter()
        backends, endpoint = await provider.backends()
        kind = "embedded local model, for trying Debrief out" if endpoint.local else "configured endpoint"
        console.print(
            f"model: {endpoint.model} at {endpoint.base_url} ({kind}); ready in {time.perf_counter() - started:.1f}s"
        )

        console.rule("1. held-out accuracy without experiences")
        # One evaluator for before and after: the same problems and sampling seeds, so the two are paired, and
        # the "without" attempts made here are reused (not sampled again) in the paired comparison below.
        evaluator = PairedEvaluator(
            backends=backends,
            verifier=verifier,
            samples=args.samples,
            temperature=args.eval_temperature,
            config=config,
            seed=args.seed,
        )
        baseline = await evaluator.compare(heldout, [no_library()])
        before, evaluated_before = baseline.arm("without"), baseline.wall_seconds
        console.print(f"Mean@{args.samples} {before.mean_at_k:.3f}, Pass@{args.samples} {before.pass_at_k:.3f}")

        console.rule(f"2. learning: {args.epochs} epoch(s), G = {args.group_size}")
        report = await learn_with_progress(
            store=store,
            backends=backends,
            namespace=namespace,
            problems=train,
            verifier=verifier,
            config=config,
            checkpoint=DirectoryCheckpoint(settings.data_dir / "runs" / config.run_id / "checkpoint"),
            console=console,
            verbose=bool(getattr(args, "verbose", False)),
        )
        console.print(step_table(report))

        console.rule("3. held-out accuracy with retrieved experiences (paired with step 1)")
        retrieved = library_arm(StoreLibrary(store, namespace), injection="retrieve", k=args.k, name="with")
        paired: PairedReport = await evaluator.compare(heldout, [no_library(), retrieved])
        after = paired.arm("with")
        delta = paired.comparison("with", "without")
        console.print(f"Mean@{args.samples} {after.mean_at_k:.3f}, Pass@{args.samples} {after.pass_at_k:.3f}")

        library = await store.active(namespace)
        console.rule(f"the learned library ({len(library)} experiences)")
        for experience in library:
            console.print(f"[{experience.experience_id}] {experience.text}")
        if not library:
            console.print(nothing_learned(report), highlight=False)

        table = Table(title="before / after (the same held-out problems and seeds)")
        for column in ("held-out", f"Mean@{args.samples}", f"Pass@{args.samples}", "prompt tok", "compl tok"):
            table.add_column(column, justify="right")
        _accuracy_row(table, "without experiences", before)
        _accuracy_row(table, "with experiences", after)
        table.add_row("learning", "", "", f"{report.total.prompt_tokens:,}", f"{report.total.completion_tokens:,}")
        console.print(table)
        console.print(paired_verdict(delta, args.samples, paired.method), highlight=False)
        console.print(
            f"time: learning {report.wall_seconds:.1f}s, evaluation {paired.wall_seconds + evaluated_before:.1f}s",
            highlight=False,
        )
        console.print(f"store: {settings.data_dir} (namespace {namespace}); total {time.perf_counter() - started:.0f}s")
    finally:
        await provider.aclose()
        await store.aclose()

    console.rule("4. a real MCP client session (stdio) retrieving for a new task")
    [new_task] = generate_tasks(args.seed + 1, 1, 0).train
    await run_session(
        settings.data_dir, namespace=namespace, out=console.print, add_samples=False, task=new_task.question
    )


def demo_parser() -> argparse.ArgumentParser:
    """A parser with only the demo's options (for calling :func:`run_demo` from code)."""
    parser = argparse.ArgumentParser(prog="debrief demo")
    _options(parser)
    return parser


def _options(demo: argparse.ArgumentParser) -> None:
    demo.add_argument("--namespace", default=None, help="namespace to learn into (default: a new demo-<time>)")
    demo.add_argument(
        "--data",
        default=None,
        help="problems instead of the built-in word problems: FILE.jsonl, dapo:FILE, aime:FILE or "
        "reasoning-gym:NAME?size=&seed= (e.g. reasoning-gym:basic_arithmetic?size=60)",
    )
    demo.add_argument("--verifier", default=None, help="verifier for --data (default: the source's own, else math)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--train", type=int, default=16, help="training problems")
    demo.add_argument("--heldout", type=int, default=10, help="held-out problems")
    demo.add_argument("--samples", type=int, default=4, help="samples per held-out problem")
    demo.add_argument("--epochs", type=int, default=1)
    demo.add_argument("--batch-size", type=int, default=8)
    demo.add_argument("--group-size", type=int, default=4)
    demo.add_argument("--max-tokens", type=int, default=96, help="completion cap per attempt")
    demo.add_argument("-k", type=int, default=3, help="experiences retrieved per held-out problem")
    demo.add_argument(
        "--reflect-max-tokens", type=int, default=384, help="completion cap of summaries, advantages and plans"
    )
    demo.add_argument(
        "--eval-temperature", type=float, default=0.3, help="sampling temperature of the held-out evaluation"
    )


def _demo(args: argparse.Namespace) -> int:
    settings = settings_from_flags(args)
    console = Console(width=None if sys.stdout.isatty() else 120)
    anyio.run(run_demo, settings, args, console)
    return 0


def register(commands: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the ``demo`` subcommand."""
    demo = commands.add_parser(
        "demo",
        help="run the whole loop on the embedded defaults: measure, learn, measure again, serve a client",
    )
    common(demo)
    _options(demo)
    demo.set_defaults(handler=_demo)
