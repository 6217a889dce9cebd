"""``debrief eval``: a namespace's library evaluated on problems, paired, with intervals and controls."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from debrief.learner import LearnerError, Problem, generate_problems, load_generator, load_jsonl
from debrief.learner.accounting import TokenCount
from debrief.learner.controls import CONTROLS, ControlName, LibraryEvaluation, evaluate_library
from debrief.learner.evaluation import EVAL_TEMPERATURE, EVAL_TOP_P, ArmResult, Comparison, EvalProgress
from debrief.learner.verifiers import make_verifier
from debrief.server.backends.mcp_tools import agent_tools
from debrief.server.cli.flags import settings_from_flags
from debrief.server.cli.learn import add_agent_flags, agent_servers
from debrief.server.errors import InvalidInput
from debrief.server.learning.evaluations import summary_lines
from debrief.server.learning.run_config import run_config
from debrief.server.store.experience_store import ExperienceStore
from debrief.server.store.learner_library import StoreLibrary


def _tokens(count: TokenCount) -> dict[str, Any]:
    return {
        "prompt_tokens": count.prompt_tokens,
        "completion_tokens": count.completion_tokens,
        "requests": count.requests,
        "cost_usd": count.cost_usd,
    }


def _arm(result: ArmResult) -> dict[str, Any]:
    return {
        "mean_at_k": result.mean_at_k,
        "pass_at_k": result.pass_at_k,
        "experiences_shown_mean": result.experiences_shown_mean,
        "tokens": _tokens(result.tokens),
    }


def _delta(comparison: Comparison) -> dict[str, Any]:
    return {
        "mean_at_k": comparison.mean_at_k,
        "ci95": comparison.ci95,
        "pass_at_k": comparison.pass_at_k,
        "pass_ci95": comparison.pass_ci95,
        "p_value": comparison.p_value,
        "verdict": comparison.verdict,
        "problems": comparison.problems,
    }


def evaluation_json(result: LibraryEvaluation, namespace: str) -> dict[str, Any]:
    """The ``--json`` object: without, with, delta, controls, experiences, tokens, cost and time."""
    effects = result.effects
    return {
        "namespace": namespace,
        "library_size": result.library_size,
        "injection": result.injection,
        "k": result.k,
        "samples": result.samples,
        "temperature": result.temperature,
        "top_p": result.top_p,
        "seed": result.seed,
        "method": result.method,
        "without": _arm(result.without),
        "with": _arm(result.with_library),
        "delta": _delta(result.delta),
        "controls": {
            control.name: {
                "description": control.description,
                "size": control.size,
                "mean_at_k": control.arm.mean_at_k,
                "pass_at_k": control.arm.pass_at_k,
                "library_minus_control": _delta(control.comparison),
                "beaten": control.beaten,
                "build_tokens": _tokens(control.build_tokens),
            }
            for control in result.controls
        },
        "experiences": None
        if effects is None
        else [
            {
                "experience_id": effect.experience_id,
                "text": effect.text,
                "delta_mean": effect.delta_mean,
                "ci95": effect.ci95,
                "p_value": effect.p_value,
                "verdict": effect.verdict,
                "problems_shown": effect.problems_shown,
                "problems_evaluated": effect.problems_evaluated,
                "stopped_early": effect.stopped_early,
                "tokens": _tokens(effect.tokens),
            }
            for effect in effects.effects
        ],
        "experience_cost": None
        if effects is None
        else {
            "attempts_planned": effects.attempts_planned,
            "attempts_made": effects.attempts_made,
            "tokens_estimate": effects.tokens_estimate,
            "tokens": _tokens(effects.tokens),
        },
        "problems": [
            {"problem_id": item.problem_id, "rewards": item.rewards, "shown": item.shown}
            for item in result.report.problems
        ],
        "tokens": _tokens(result.tokens),
        "cost_usd": result.tokens.cost_usd,
        "wall_seconds": result.wall_seconds,
    }


def _interval(values: list[float]) -> str:
    return f"[{values[0]:+.3f}, {values[1]:+.3f}]"


def evaluation_tables(result: LibraryEvaluation, namespace: str) -> list[Table | str]:
    """What a person reads: arms, the library's difference and the controls, then per-experience effects."""
    k = result.samples
    arms = Table(title=f"{namespace!r}: {result.library_size} experiences, injection {result.injection}, K = {k}")
    for column in ("arm", f"Mean@{k}", f"Pass@{k}", "shown", "tokens"):
        arms.add_column(column, justify="right")
    for arm in result.report.arms:
        tokens = arm.tokens.prompt_tokens + arm.tokens.completion_tokens
        arms.add_row(
            arm.name, f"{arm.mean_at_k:.3f}", f"{arm.pass_at_k:.3f}", f"{arm.experiences_shown_mean:.1f}", f"{tokens:,}"
        )
    deltas = Table(title=f"differences, 95% intervals ({result.method})")
    for column in ("comparison", f"Δ Mean@{k}", "95% CI", f"Δ Pass@{k}", "95% CI ", "p", "verdict"):
        deltas.add_column(column, justify="right")
    for item in result.report.comparisons:
        deltas.add_row(
            f"{item.arm} − {item.baseline}",
            f"{item.mean_at_k:+.3f}",
            _interval(item.ci95),
            f"{item.pass_at_k:+.3f}",
            _interval(item.pass_ci95),
            f"{item.p_value:.3g}",
            item.verdict,
        )
    shown: list[Table | str] = [arms, deltas]
    if result.effects is not None:
        effects = Table(title="per-experience effect (leave-one-out where shown; most helpful first)")
        for column in ("id", "Δ Mean", "95% CI", "verdict", "problems", "experience"):
            effects.add_column(column, justify="right" if column != "experience" else "left")
        for effect in result.effects.effects:
            stopped = " (stopped early)" if effect.stopped_early else ""
            effects.add_row(
                effect.experience_id,
                f"{effect.delta_mean:+.3f}",
                _interval(effect.ci95),
                effect.verdict,
                f"{effect.problems_evaluated}/{effect.problems_shown}{stopped}",
                effect.text,
            )
        shown.append(effects)
    shown.extend(summary_lines(result))
    return shown


def _problems(args: argparse.Namespace) -> list[Problem]:
    try:
        if args.data is not None:
            return load_jsonl(
                args.data,
                question_fields=(args.question_field,) if args.question_field else ("question", "problem", "prompt"),
                answer_fields=(args.answer_field,)
                if args.answer_field
                else ("answer", "groundtruth", "ground_truth", "solution"),
                require_answer=True,
            )
        return generate_problems(load_generator(args.generator), args.count, seed=args.seed)
    except LearnerError as error:
        raise InvalidInput(str(error)) from error


def _controls(args: argparse.Namespace) -> list[ControlName]:
    chosen: list[ControlName] = []
    for name in args.control or []:
        names = [item for item in CONTROLS if item != ("whole" if args.injection == "all" else "retrieved")]
        for item in names if name == "all" else [name]:
            if item not in chosen:
                chosen.append(item)
    return chosen


def _eval(args: argparse.Namespace) -> int:
    settings = settings_from_flags(args)
    console = Console(stderr=True)
    problems = _problems(args)
    controls = _controls(args)
    mcp_servers = agent_servers(args)
    try:
        verifier = make_verifier(args.verifier)
    except LearnerError as error:
        raise InvalidInput(str(error)) from error

    async def run() -> int:
        from debrief.server.backends.provider import ModelProvider  # starts models only when needed
        from debrief.server.embedding.embedder import make_embedder  # loads weights only when needed

        store = await ExperienceStore.open(settings, make_embedder(settings))
        provider = ModelProvider(settings)
        exits = AsyncExitStack()  # agent mode's tool servers, stopped with the rest
        try:
            library = StoreLibrary(store, args.namespace)
            pool = None
            if args.random_from is not None:
                pool = list(await StoreLibrary(store, args.random_from).entries())
            backends, endpoint = await provider.backends()
            console.print(
                f"evaluating namespace [bold]{args.namespace}[/] on {len(problems)} problems, K = {args.samples}, "
                f"with {endpoint.model} at {endpoint.base_url}" + (" (embedded local model)" if endpoint.local else "")
            )
            config = run_config(
                settings,
                concurrency=args.concurrency,
                max_completion_tokens=args.max_tokens,
                agent=args.agent or None,
                max_turns=args.max_turns,
            )
            # Agent mode: every arm's attempts are tool-using loops with the same tools, started once.
            tools = await exits.enter_async_context(
                agent_tools(
                    mcp_servers, code_tool=args.code_tool, on_problem=lambda text: console.print(text, markup=False)
                )
            )
            backends = replace(backends, tools=tools)
            columns = (
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}"),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=console, transient=False) as progress:
                task = progress.add_task("attempts", total=None, detail="")

                def on_progress(event: EvalProgress) -> None:
                    tokens = event.tokens.prompt_tokens + event.tokens.completion_tokens
                    progress.update(
                        task,
                        completed=event.attempts_done,
                        total=event.attempts_total or None,
                        detail=f"{tokens:,} tok · ${event.tokens.cost_usd:.4f}",
                    )

                def on_plan(attempts: int, tokens: int) -> None:
                    progress.console.print(
                        f"per-experience effects: at most {attempts} more attempts, about {tokens:,} tokens "
                        "(stops early per experience once its interval clears zero)"
                    )

                result = await evaluate_library(
                    problems,
                    library,
                    backends=backends,
                    verifier=verifier,
                    samples=args.samples,
                    injection=args.injection,
                    k=args.k,
                    controls=controls,
                    random_pool=pool,
                    per_experience=args.per_experience,
                    effects_max_problems=args.max_problems_per_experience,
                    temperature=args.temperature,
                    top_p=args.top_p,
                    config=config,
                    seed=args.seed,
                    resamples=args.resamples,
                    on_progress=on_progress,
                    on_effects_plan=on_plan,
                )
        except LearnerError as error:
            raise InvalidInput(str(error)) from error
        finally:
            await exits.aclose()
            await provider.aclose()
            await store.aclose()
        if args.json:
            sys.stdout.write(json.dumps(evaluation_json(result, args.namespace)) + "\n")
        else:
            out = Console(width=None if sys.stdout.isatty() else 160)
            for item in evaluation_tables(result, args.namespace):
                out.print(item)
        if args.plot is not None:
            from debrief.server.cli.plots import plot_evaluation  # matplotlib is an optional extra

            plot_evaluation(result, args.namespace, args.plot)
            console.print(f"plot written to {args.plot}")
        return 0

    return anyio.run(run)


def register(commands: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the ``eval`` subcommand."""
    parser = commands.add_parser(
        "eval",
        help="evaluate a namespace's library: paired with/without, 95%% intervals, controls, per-experience effects",
        description="Attempt every problem K times without and K times with the library, with the same seeds; "
        "report Mean@K and Pass@K, their differences with 95% intervals (paired bootstrap over problems, "
        "seeded), the controls asked for and, with --per-experience, each experience's own effect.",
    )
    common(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="JSONL file of problems with answers")
    source.add_argument("--generator", help="module:function task generator (rng -> (question, answer))")
    parser.add_argument("--count", type=int, default=50, help="problems to generate (with --generator)")
    parser.add_argument("--question-field", default=None, help="JSONL field holding the question")
    parser.add_argument("--answer-field", default=None, help="JSONL field holding the ground truth")
    parser.add_argument("--namespace", "-n", required=True)
    parser.add_argument("--samples", "-k", type=int, default=4, help="attempts per problem and arm (K)")
    parser.add_argument("--verifier", default="math", help="math | exact | numeric[:tol] | regex[:p] | judge | mod:fn")
    parser.add_argument("--injection", choices=["all", "retrieve"], default="all", help="whole library or top-k")
    parser.add_argument("--k", type=int, default=5, dest="k", help="experiences retrieved per problem (retrieve)")
    parser.add_argument(
        "--control",
        action="append",
        choices=[*CONTROLS, "all"],
        help="add a control (repeatable): whole/retrieved (the other injection), random, tips, or all",
    )
    parser.add_argument("--random-from", default=None, metavar="NAMESPACE", help="draw the random control from here")
    parser.add_argument("--per-experience", action="store_true", help="each experience's leave-one-out effect")
    parser.add_argument(
        "--max-problems-per-experience", type=int, default=None, help="bound the per-experience cost further"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument("--plot", type=Path, default=None, metavar="FILE.png", help="write a plot (needs [plot])")
    parser.add_argument("--temperature", type=float, default=EVAL_TEMPERATURE)
    parser.add_argument("--top-p", type=float, default=EVAL_TOP_P)
    parser.add_argument("--max-tokens", type=int, default=None, help="completion cap per attempt")
    parser.add_argument("--seed", type=int, default=0, help="seed of sampling, bootstrap and generated problems")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--concurrency", type=int, default=None, help="requests in flight (default: the settings')")
    parser.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint (env DEBRIEF_MODEL_BASE_URL)")
    add_agent_flags(parser)
    parser.add_argument("--model", default=None, help="model name (env DEBRIEF_MODEL)")
    parser.add_argument("--reflect-model", default=None, help="model for the tips control (default: --model)")
    parser.add_argument("--api-key", default=None, help="API key (env DEBRIEF_MODEL_API_KEY or OPENAI_API_KEY)")
    parser.set_defaults(handler=_eval)
