"""``debrief prune``: retire the experiences whose measured effect on problems is significantly negative.

Each active experience is left out, paired, on the problems where it is shown (the evaluator's leave-one-out,
with a 95% interval by paired bootstrap over problems). An experience whose whole interval lies below zero is
retired as one recorded change, with its figures as the reason and ``evaluation`` as its source; a rollback to
the version before the prune brings every one of them back.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import anyio
from pydantic import BaseModel, Field
from rich.console import Console
from rich.table import Table

from debrief.learner import Backends, LearnerError, Problem, RunConfig, generate_problems, load_generator
from debrief.learner.accounting import TokenCount
from debrief.learner.evaluation import EVAL_TEMPERATURE, EVAL_TOP_P, PairedEvaluator, library_arm
from debrief.learner.library import Provenance
from debrief.learner.sources import load_source, source_verifier
from debrief.learner.stats import BOOTSTRAP_METHOD
from debrief.learner.verifiers import Verifier, make_verifier
from debrief.server.cli.flags import settings_from_flags
from debrief.server.errors import InvalidInput
from debrief.server.learning.run_config import run_config
from debrief.server.store.experience_store import ExperienceStore
from debrief.server.store.learner_library import StoreLibrary


class MeasuredExperience(BaseModel):
    """One experience's leave-one-out effect, and what the prune did with it."""

    experience_id: str = Field(description="The experience.")
    text: str = Field(description="Its text.")
    delta_mean: float = Field(description="Mean@K with it minus without it, on the problems where it is shown.")
    ci95: list[float] = Field(description="95% interval of delta_mean: [low, high].")
    p_value: float = Field(description="Paired sign-flip test p-value.")
    problems: int = Field(description="Problems it was measured on.")
    action: Literal["retired", "would_retire", "kept"] = Field(description="What the prune did.")
    reason: str = Field(description="The evidence, as written into its history when retired.")
    version: int | None = Field(default=None, description="Library version of its retirement, if retired.")


class PruneReport(BaseModel):
    """What a prune measured and changed."""

    namespace: str
    dry_run: bool
    samples: int = Field(description="Attempts per problem and arm (K).")
    method: str = Field(default=BOOTSTRAP_METHOD, description="How the intervals were computed.")
    version_before: int = Field(description="Library version before the prune: roll back to it to undo.")
    version_after: int = Field(description="Library version after the prune.")
    experiences: list[MeasuredExperience] = Field(description="Every measured experience, most harmful first.")
    tokens: TokenCount
    wall_seconds: float

    @property
    def retired(self) -> list[MeasuredExperience]:
        """The experiences retired (or, in a dry run, that would be)."""
        return [item for item in self.experiences if item.action != "kept"]


async def prune_namespace(
    store: ExperienceStore,
    namespace: str,
    problems: Sequence[Problem],
    *,
    backends: Backends,
    verifier: Verifier,
    samples: int = 4,
    injection: str = "all",
    k: int = 5,
    config: RunConfig | None = None,
    seed: int = 0,
    temperature: float = EVAL_TEMPERATURE,
    top_p: float = EVAL_TOP_P,
    max_problems: int | None = None,
    dry_run: bool = False,
    on_plan: Callable[[int, int], None] | None = None,
) -> PruneReport:
    """Measure each active experience's effect on ``problems``; retire those significantly below zero."""
    started = time.perf_counter()
    library = StoreLibrary(store, namespace)
    version_before = await store.version(namespace)
    evaluator = PairedEvaluator(
        backends=backends,
        verifier=verifier,
        samples=samples,
        temperature=temperature,
        top_p=top_p,
        config=config,
        seed=seed,
    )
    effects = await evaluator.experience_effects(
        problems, library_arm(library, injection=injection, k=k), max_problems=max_problems, on_plan=on_plan
    )
    measured: list[MeasuredExperience] = []
    for effect in sorted(effects.effects, key=lambda item: item.delta_mean):
        low, high = effect.ci95
        figures = (
            f"leave-one-out effect {effect.delta_mean:+.3f} Mean@{samples} (95% CI [{low:+.3f}, {high:+.3f}], "
            f"p = {effect.p_value:.3g}) on {effect.problems_evaluated} problems where it is shown"
        )
        harmful = effect.verdict == "worse"
        item = MeasuredExperience(
            experience_id=effect.experience_id,
            text=effect.text,
            delta_mean=effect.delta_mean,
            ci95=effect.ci95,
            p_value=effect.p_value,
            problems=effect.problems_evaluated,
            action="kept" if not harmful else "would_retire" if dry_run else "retired",
            reason=f"pruned: {figures}" if harmful else f"kept: {figures}",
        )
        if harmful and not dry_run:
            change = await store.retire(effect.experience_id, item.reason, source=Provenance(kind="evaluation"))
            item.version = change.version
        measured.append(item)
    return PruneReport(
        namespace=namespace,
        dry_run=dry_run,
        samples=samples,
        version_before=version_before,
        version_after=await store.version(namespace),
        experiences=measured,
        tokens=evaluator.tokens,
        wall_seconds=time.perf_counter() - started,
    )


def prune_table(report: PruneReport) -> Table:
    """One row per measured experience, most harmful first."""
    title = f"{report.namespace!r}: per-experience effect, K = {report.samples} ({report.method})"
    table = Table(title=title + (" — dry run, nothing changed" if report.dry_run else ""))
    for column in ("id", "Δ Mean", "95% CI", "p", "problems", "action", "experience"):
        table.add_column(column, justify="left" if column == "experience" else "right")
    for item in report.experiences:
        table.add_row(
            item.experience_id,
            f"{item.delta_mean:+.3f}",
            f"[{item.ci95[0]:+.3f}, {item.ci95[1]:+.3f}]",
            f"{item.p_value:.3g}",
            str(item.problems),
            item.action.replace("_", " "),
            item.text,
        )
    return table


def summary(report: PruneReport) -> str:
    """What happened and how to undo it, in a sentence or two."""
    count = len(report.retired)
    tokens = report.tokens
    spent = tokens.prompt_tokens + tokens.completion_tokens
    cost = f"{spent:,} tokens, ${tokens.cost_usd:.4f}, {report.wall_seconds:.1f}s"
    if report.dry_run:
        return f"dry run: {count} experience(s) would be retired; nothing changed ({cost})."
    if not count:
        return f"no experience has a significantly negative effect; nothing retired ({cost})."
    return (
        f"retired {count} experience(s): version {report.version_before} -> {report.version_after} ({cost}). "
        f"Undo with rollback_library(namespace={report.namespace!r}, version={report.version_before}) over MCP."
    )


def _problems(args: argparse.Namespace) -> tuple[list[Problem], Verifier]:
    try:
        if args.data is not None:
            source = load_source(args.data, require_answer=True)
            return source.problems, source_verifier(source, args.verifier)
        problems = generate_problems(load_generator(args.generator), args.count, seed=args.seed)
        return problems, make_verifier(args.verifier or "math")
    except LearnerError as error:
        raise InvalidInput(str(error)) from error


def _prune(args: argparse.Namespace) -> int:
    settings = settings_from_flags(args)
    console = Console(stderr=True)
    problems, verifier = _problems(args)

    async def run() -> int:
        from debrief.server.backends.provider import ModelProvider  # starts models only when needed
        from debrief.server.embedding.embedder import make_embedder  # loads weights only when needed

        store = await ExperienceStore.open(settings, make_embedder(settings))
        provider = ModelProvider(settings)
        try:
            backends, endpoint = await provider.backends()
            console.print(
                f"measuring each experience of [bold]{args.namespace}[/] on {len(problems)} problems, "
                f"K = {args.samples}, with {endpoint.model}" + (" (dry run)" if args.dry_run else "")
            )

            def on_plan(attempts: int, tokens: int) -> None:
                console.print(f"at most {attempts} attempts, about {tokens:,} tokens (stops early when clear)")

            report = await prune_namespace(
                store,
                args.namespace,
                problems,
                backends=backends,
                verifier=verifier,
                samples=args.samples,
                injection=args.injection,
                k=args.k,
                config=run_config(settings, concurrency=args.concurrency, max_completion_tokens=args.max_tokens),
                seed=args.seed,
                max_problems=args.max_problems_per_experience,
                dry_run=args.dry_run,
                on_plan=on_plan,
            )
        except LearnerError as error:
            raise InvalidInput(str(error)) from error
        finally:
            await provider.aclose()
            await store.aclose()
        if args.json:
            sys.stdout.write(json.dumps(report.model_dump(mode="json")) + "\n")
        else:
            Console(width=None if sys.stdout.isatty() else 160).print(prune_table(report))
        console.print(summary(report))
        return 0

    return anyio.run(run)


def register(commands: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the ``prune`` subcommand."""
    parser = commands.add_parser(
        "prune",
        help="retire experiences whose measured effect is significantly negative (recorded; rollback restores)",
        description="Leave each active experience out, paired, on the problems where it is shown; retire those "
        "whose 95% interval lies below zero, with the figures in their history.",
    )
    common(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--data", help="problems with answers: FILE.jsonl, dapo:FILE, aime:FILE or reasoning-gym:NAME?size=&seed="
    )
    source.add_argument("--generator", help="module:function task generator (rng -> (question, answer))")
    parser.add_argument("--count", type=int, default=50, help="problems to generate (with --generator)")
    parser.add_argument("--namespace", "-n", required=True)
    parser.add_argument("--dry-run", action="store_true", help="measure and report; retire nothing")
    parser.add_argument("--samples", type=int, default=4, help="attempts per problem and arm (K)")
    parser.add_argument(
        "--verifier",
        default=None,
        help="math | exact | numeric[:tol] | regex[:p] | judge | mod:fn (default: the source's own, else math)",
    )
    parser.add_argument("--injection", choices=["all", "retrieve"], default="all", help="whole library or top-k")
    parser.add_argument("--k", type=int, default=5, dest="k", help="experiences retrieved per problem (retrieve)")
    parser.add_argument("--max-problems-per-experience", type=int, default=None, help="bound the cost")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.add_argument("--max-tokens", type=int, default=None, help="completion cap per attempt")
    parser.add_argument("--seed", type=int, default=0, help="seed of sampling, bootstrap and generated problems")
    parser.add_argument("--concurrency", type=int, default=None, help="requests in flight (default: the settings')")
    parser.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint (env DEBRIEF_MODEL_BASE_URL)")
    parser.add_argument("--model", default=None, help="model name (env DEBRIEF_MODEL)")
    parser.add_argument("--api-key", default=None, help="API key (env DEBRIEF_MODEL_API_KEY or OPENAI_API_KEY)")
    parser.set_defaults(handler=_prune)
