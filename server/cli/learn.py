"""``debrief learn``: a learning run from the command line, into the same store the server reads."""

from __future__ import annotations

import argparse
import functools
import shlex
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from debrief.learner import (
    Backends,
    Checkpoint,
    LearnerError,
    Problem,
    ProgressEvent,
    RunConfig,
    RunReport,
    StepRecord,
    Verifier,
    generate_problems,
    load_generator,
    load_jsonl,
    run_learning,
)
from debrief.learner.report import fates
from debrief.learner.sources import data_verifier, is_named_source, load_source
from debrief.learner.validation import ValidationGate
from debrief.server.backends.mcp_tools import McpServerEntry, agent_tools, load_mcp_servers
from debrief.server.cli.flags import settings_from_flags
from debrief.server.cli.gate_options import add_gate_options, gate_from_args
from debrief.server.cli.plots import plot_learning_curve
from debrief.server.cli.run_console import console_logging, resume_command, run_verdict
from debrief.server.errors import InvalidInput
from debrief.server.learning.gated import keep_version, validation_cells, validation_lines
from debrief.server.learning.run_config import run_config
from debrief.server.learning.run_records import (
    CommandRun,
    new_run_id,
)
from debrief.server.learning.spend_ledger import SpendLedger
from debrief.server.learning.storage import run_storage
from debrief.server.store.experience_store import ExperienceStore
from debrief.server.store.learner_library import StoreLibrary
from debrief.server.store.models import check_namespace


async def learn_with_progress(
    *,
    store: ExperienceStore,
    backends: Backends,
    namespace: str,
    problems: Sequence[Problem],
    verifier: Verifier,
    config: RunConfig,
    gate: ValidationGate | None = None,
    checkpoint: Checkpoint,
    console: Console,
    on_event: Callable[[ProgressEvent], None] | None = None,
    verbose: bool | None = None,
) -> RunReport:
    """Run the learner on ``store``'s namespace with a live progress bar on ``console``, events also to ``on_event``.

    With ``verbose`` set (True or False), log records print through ``console`` too, one line each unless True;
    ``None`` leaves logging as the caller set it up.
    """
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    logs = nullcontext() if verbose is None else console_logging(console, verbose=verbose)
    with logs, Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("learning", total=None, detail="starting")

        def show(event: ProgressEvent) -> None:
            if on_event is not None:
                on_event(event)
            progress.update(
                task,
                description=f"step {min(event.step + 1, event.total_steps)}/{event.total_steps}",
                completed=event.attempts_done,
                total=event.attempts_total or None,
                detail=f"kept {event.groups_kept} groups · {event.operations_applied} edits · "
                f"{event.prompt_tokens + event.completion_tokens:,} tok · ${event.cost_usd:.4f}",
            )

        return await run_learning(
            config,
            backends=backends,
            library=StoreLibrary(store, namespace),
            problems=problems,
            verifier=verifier,
            gate=gate,
            checkpoint=checkpoint,
            on_event=show,
        )


def step_table(report: RunReport) -> Table:
    """One row per step: reward, groups kept, experiences added/modified/merged/deleted, tokens, cost, time."""
    title = f"run {report.run_id}: {report.status}"
    if report.failed_groups or report.pending_operations or report.failed_consolidations:
        title += (
            f" ({len(report.failed_groups)} groups still failed, {len(report.pending_operations)} proposals pending, "
            f"{report.failed_consolidations} failed consolidations; resume to retry)"
        )
    if report.retried_requests:
        title += f", {report.retried_requests} requests retried"
    table = Table(title=title, caption="fates: proposals applied/merged/dropped/rejected/pending")
    for column in (
        "step",
        "epoch",
        "mean reward",
        "groups kept",
        "added",
        "modified",
        "merged",
        "deleted",
        "rejected",
        "fates",
        "tokens",
        "cost $",
        "secs",
    ):
        table.add_column(column, justify="right")
    # Agent mode (issue 13): tool use per step, shown when the attempts were agent loops.
    agent = any(step.turns_per_attempt is not None for step in report.steps)
    for column in ("tools/att", "turns/att", "tool errs") if agent else ():
        table.add_column(column, justify="right")
    # Validation gate (issue 11): edits kept of those validated, and validation Mean@K before -> after the step.
    gated_run = any(step.validation is not None for step in report.steps)
    for column in ("validated", "val Mean@K") if gated_run else ():
        table.add_column(column, justify="right")
    for step in report.steps:
        kinds = Counter(applied.operation.op for applied in step.applied)
        table.add_row(
            str(step.step),
            str(step.epoch),
            "-" if step.mean_reward is None else f"{step.mean_reward:.3f}",
            f"{step.groups_kept}/{step.groups_seen}",
            str(kinds["add"]),
            str(kinds["modify"]),
            str(kinds["merge"]),
            str(kinds["delete"]),
            str(len(step.rejected)),
            fates(step),
            f"{step.total.prompt_tokens + step.total.completion_tokens:,}",
            f"{step.total.cost_usd:.4f}",
            f"{step.wall_seconds:.1f}",
            *(_agent_cells(step) if agent else ()),
            *(validation_cells(step) if gated_run else ()),
        )
    return table


def _agent_cells(step: StepRecord) -> tuple[str, str, str]:
    def mean(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    return mean(step.tool_calls_per_attempt), mean(step.turns_per_attempt), str(step.tool_errors)


def _problems(args: argparse.Namespace) -> list[Problem]:
    try:
        if args.data is not None and is_named_source(str(args.data)):
            return load_source(str(args.data)).problems
        if args.data is not None:
            return load_jsonl(
                args.data,
                question_fields=(args.question_field,) if args.question_field else ("question", "problem", "prompt"),
                answer_fields=(args.answer_field,)
                if args.answer_field
                else ("answer", "groundtruth", "ground_truth", "solution"),
            )
        return generate_problems(load_generator(args.generator), args.count, seed=args.seed)
    except LearnerError as error:
        raise InvalidInput(str(error)) from error


def _command(args: argparse.Namespace, count: int) -> str:
    """The run's ``debrief learn`` command line as the record shows it (no API key, no endpoint)."""
    words = ["debrief", "learn", "--namespace", args.namespace]
    words += (
        ["--data", str(args.data)] if args.data is not None else ["--generator", args.generator, "--count", str(count)]
    )
    for flag, value in (
        *([("--verifier", args.verifier)] if args.verifier is not None else []),
        ("--epochs", args.epochs),
        ("--group-size", args.group_size),
        ("--batch-size", args.batch_size),
        ("--seed", args.seed),
    ):
        words += [flag, str(value)]
    if args.no_ground_truth:
        words.append("--no-ground-truth")
    return shlex.join(words)


def _learn(args: argparse.Namespace) -> int:
    # Everything the user typed is checked before a store opens or a model starts.
    try:
        check_namespace(args.namespace)
    except ValueError as error:
        raise InvalidInput(str(error)) from None
    settings = settings_from_flags(args)
    # Off a terminal (a log file, a pipe) lines are not wrapped at 80 columns, so each stays one line.
    console = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 240)
    problems = _problems(args)
    if not problems:
        raise InvalidInput(f"no problems to learn from in {str(args.data or args.generator)!r}")
    try:
        verifier = data_verifier(args.verifier, None if args.data is None else str(args.data))
    except LearnerError as error:
        raise InvalidInput(str(error)) from error
    gated = gate_from_args(args, problems, verifier)
    problems = gated.train
    run_id = args.resume or new_run_id()
    resume = resume_command(sys.argv[1:], run_id)
    mcp_servers = agent_servers(args)

    async def run() -> int:
        from debrief.server.backends.provider import ModelProvider
        from debrief.server.embedding.embedder import make_embedder

        provider = ModelProvider(settings)
        exits = AsyncExitStack()  # agent mode's tool servers, stopped with the rest
        try:
            # The endpoint answers (or the local model starts) before the store is touched.
            backends, endpoint = await provider.backends()
            store = await ExperienceStore.open(settings, make_embedder(settings))
        except BaseException:
            await provider.aclose()
            raise
        try:
            console.print(
                f"run [bold]{run_id}[/] {'resumed' if args.resume else 'started'}: learning into namespace "
                f"[bold]{args.namespace}[/] from {len(problems)} problems with {endpoint.model} at "
                f"{endpoint.base_url}" + (" (embedded local model)" if endpoint.local else ""),
                highlight=False,
            )
            # Recorded like a run started over MCP: list_learning_runs and the daily cap see it.
            # In the data dir, or in the shared Chroma with a chroma_url (see server/learning/storage.py).
            storage = run_storage(settings, store)
            book = storage.book
            # The run's lease is shared with every server and command on this data dir (or Chroma server), and
            # today's cap with every one on this data dir.
            lease = storage.lease(run_id)
            await anyio.to_thread.run_sync(lease.take)
            exits.callback(lease.release)
            ledger = SpendLedger(settings.data_dir, settings.runs.daily_budget_usd)
            await anyio.to_thread.run_sync(ledger.check)
            recorded = CommandRun.begin(
                book,
                run_id=run_id,
                namespace=args.namespace,
                command=_command(args, len(problems)),
                model=endpoint.model,
                budget_tokens=args.budget_tokens,
                budget_usd=args.budget_usd,
                version_before=await store.version(args.namespace),
            )
            # A resumed run's budget covers the whole run, so its own earlier spending is not held against it twice.
            spent_before = recorded.record.progress.cost_usd
            wanted = None if args.budget_usd is None else max(args.budget_usd - spent_before, 0.0)
            grant = await anyio.to_thread.run_sync(ledger.reserve, run_id, wanted)
            version_before = await store.version(args.namespace)
            config = run_config(
                settings,
                embedded=endpoint.local,
                run_id=run_id,
                epochs=args.epochs,
                batch_size=args.batch_size,
                group_size=args.group_size,
                seed=args.seed,
                ground_truth=not args.no_ground_truth,
                max_operations=args.max_operations,
                concurrency=args.concurrency,
                budget_tokens=args.budget_tokens,
                budget_usd=None if grant.budget_usd is None else spent_before + grant.budget_usd,
                agent=args.agent or None,
                max_turns=args.max_turns,
                max_completion_tokens=args.max_tokens,
                reflect_max_tokens=args.reflect_max_tokens,
                top_p=args.top_p,
                rollout_temperature=args.temperature,
                placement=args.placement,
                instructions=args.instructions,
                reflection_input=args.reflection_input,
                request_timeout=args.request_timeout,
            )
            # Agent mode: the tool servers start once for the run, before its first attempt.
            tools = await exits.enter_async_context(
                agent_tools(
                    mcp_servers, code_tool=args.code_tool, on_problem=lambda text: console.print(text, markup=False)
                )
            )
            backends = replace(backends, tools=tools)
            report: RunReport | None = None
            error: BaseException | None = None
            try:
                with console_logging(console, verbose=bool(getattr(args, "verbose", False))):
                    report = await learn_with_progress(
                        store=store,
                        backends=backends,
                        namespace=args.namespace,
                        problems=problems,
                        verifier=verifier,
                        config=config,
                        gate=gated.gate,
                        checkpoint=storage.checkpoint(run_id, lease, lambda: recorded.record, book.save, lambda: None),
                        console=console,
                        on_event=recorded.progress,
                    )
            except BaseException as caught:
                error = caught
                raise
            finally:
                with anyio.CancelScope(shield=True):
                    version_after = await store.version(args.namespace)
                    await anyio.to_thread.run_sync(
                        functools.partial(recorded.finish, report=report, error=error, version_after=version_after)
                    )
                    spent_now = recorded.record.progress.cost_usd - spent_before
                    await anyio.to_thread.run_sync(ledger.release, run_id, spent_now)
            Console(width=None if sys.stdout.isatty() else 200).print(step_table(report))
            # Validation gate (issue 11): each validated edit's figures, then which library version is kept.
            for line in validation_lines(report.steps):
                console.print(line, markup=False, highlight=False)
            kept = await keep_version(
                store,
                args.namespace,
                report.steps,
                version_before=version_before,
                keep_best=args.keep_best,
                run_id=run_id,
            )
            if kept is not None:
                console.print(kept.message, markup=False, highlight=False)
            if args.plot is not None and report.steps:  # `--plot`: the learning curve (helper "eval", issue 11)
                plot_learning_curve(report.steps, run_id, args.plot)
                console.print(f"learning curve written to {args.plot}", highlight=False)
            total = report.total
            console.print(
                f"total {total.prompt_tokens:,} prompt + {total.completion_tokens:,} completion tokens, "
                f"{total.requests} requests, ${total.cost_usd:.4f}, {report.wall_seconds:.1f}s",
                highlight=False,
            )
            verdict = run_verdict(report)
            console.print(verdict.message, markup=False, highlight=False)
            if verdict.status != "succeeded":
                console.print(f"resume with: {resume}", markup=False, highlight=False)
            return verdict.exit_code
        finally:
            await exits.aclose()
            await provider.aclose()
            await store.aclose()

    try:
        return anyio.run(run)
    except KeyboardInterrupt:
        console.print(f"\ninterrupted; resume with: {resume}", markup=False, highlight=False)
        return 130


def agent_servers(args: argparse.Namespace) -> dict[str, McpServerEntry] | None:
    """The MCP servers of ``--mcp-config``, read and checked before anything starts (agent flags need --agent)."""
    if not args.agent and (args.mcp_config is not None or args.code_tool or args.max_turns is not None):
        raise InvalidInput("--mcp-config, --code-tool and --max-turns apply to agent mode: add --agent")
    return load_mcp_servers(args.mcp_config) if args.mcp_config is not None else None


def _at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def add_generation_flags(parser: argparse.ArgumentParser) -> None:
    """Sampling and reflection flags of ``learn`` (issue 10); unset flags keep the learner's defaults."""
    generation = parser.add_argument_group("generation", "sampling and reflection (defaults: the paper's)")
    generation.add_argument("--max-tokens", type=_at_least(1), default=None, help="completion cap per attempt (16384)")
    generation.add_argument(
        "--reflect-max-tokens", type=_at_least(1), default=None, help="completion cap of reflection calls (16384)"
    )
    generation.add_argument("--top-p", type=_positive_float, default=None, help="nucleus sampling of attempts")
    generation.add_argument("--temperature", type=float, default=None, help="sampling temperature of attempts (0.7)")
    generation.add_argument(
        "--placement", choices=("system", "user"), default=None, help="experiences in the system or user turn"
    )
    generation.add_argument("--instructions", default=None, help="instructions to the policy")
    generation.add_argument(
        "--reflection-input",
        choices=("auto", "summaries"),
        default=None,
        help="auto: read groups whole when they fit (default); summaries: summarize every attempt first",
    )
    generation.add_argument(
        "--request-timeout", type=_positive_float, default=None, help="seconds one model request may take (600)"
    )


def add_agent_flags(parser: argparse.ArgumentParser) -> None:
    """The agent-mode flags, shared by ``learn`` and ``eval``."""
    agent = parser.add_argument_group("agent mode", "attempts as multi-turn loops that call tools")
    agent.add_argument("--agent", action="store_true", help="attempts may call tools until they answer")
    agent.add_argument("--mcp-config", type=Path, default=None, metavar="FILE", help='{"mcpServers": ...} file')
    agent.add_argument("--code-tool", action="store_true", help="offer run_python (subprocess, limits, no network)")
    agent.add_argument("--max-turns", type=_at_least(1), default=None, help="model replies per attempt (default 50)")


def register(commands: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the ``learn`` subcommand."""
    learn = commands.add_parser(
        "learn",
        help="learn experiences from training problems (Training-Free GRPO)",
        description="Sample groups of attempts, score them, reflect on what separated winners from losers, and "
        "write the lessons into the namespace's library.",
    )
    common(learn)
    source = learn.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--data",
        type=Path,
        help="training problems: FILE.jsonl, dapo:FILE, aime:FILE or reasoning-gym:NAME?size=&seed=",
    )
    source.add_argument("--generator", help="module:function task generator (rng -> (question, answer))")
    learn.add_argument("--count", type=_at_least(1), default=50, help="problems to generate (with --generator)")
    learn.add_argument("--question-field", default=None, help="JSONL field holding the question")
    learn.add_argument("--answer-field", default=None, help="JSONL field holding the ground truth")
    learn.add_argument(
        "--verifier",
        default=None,
        help="math | exact | numeric[:tol] | regex[:p] | judge | mod:fn (default: the data's own, else math)",
    )
    learn.add_argument("--namespace", "-n", required=True, help="the library to learn into, e.g. 'math'")
    learn.add_argument("--epochs", type=_at_least(1), default=3, help="passes over the problems")
    learn.add_argument("--group-size", type=_at_least(1), default=5, help="attempts per problem (G)")
    learn.add_argument("--batch-size", type=_at_least(1), default=100, help="problems per learning step")
    learn.add_argument("--max-operations", type=_at_least(0), default=1, help="library edits a group may propose")
    learn.add_argument(
        "--concurrency", type=_at_least(1), default=None, help="requests in flight (env DEBRIEF_RUN_CONCURRENCY)"
    )
    learn.add_argument("--seed", type=_at_least(0), default=0, help="seed for shuffling and sampling")
    learn.add_argument("--no-ground-truth", action="store_true", help="hide answers; the model judges attempts")
    learn.add_argument("--budget-tokens", type=_at_least(1), default=None, help="stop before exceeding these tokens")
    learn.add_argument("--budget-usd", type=_positive_float, default=None, help="stop before exceeding these dollars")
    learn.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint (env DEBRIEF_MODEL_BASE_URL)")
    learn.add_argument("--model", default=None, help="model name (env DEBRIEF_MODEL)")
    learn.add_argument("--reflect-model", default=None, help="model for reflection (default: --model)")
    learn.add_argument("--api-key", default=None, help="API key (env DEBRIEF_MODEL_API_KEY or OPENAI_API_KEY)")
    learn.add_argument("--resume", default=None, metavar="RUN_ID", help="continue a stopped run")
    add_gate_options(learn)
    learn.add_argument("--plot", type=Path, default=None, metavar="FILE.png", help="draw the learning curve ([plot])")
    add_agent_flags(learn)
    add_generation_flags(learn)
    learn.set_defaults(handler=_learn)
