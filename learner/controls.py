"""Controls for a library's evaluation, and the evaluation of a library against them.

A library earns its place only if it beats what a cheaper prompt would do: no experiences; the other injection
(whole library against the top k retrieved); a random library of the same size (lessons from another namespace, or
the library's own words shuffled: as long, same vocabulary, no meaning); and **directly written tips**, the paper's
control: the model is asked for as many tips for the task without seeing any attempt.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import BaseModel, Field

from debrief.learner.accounting import TokenCount
from debrief.learner.backend import Backends, ChatRequest, Message
from debrief.learner.calls import Caller
from debrief.learner.config import RunConfig
from debrief.learner.datasets import Problem
from debrief.learner.errors import ConfigError
from debrief.learner.evaluation import (
    EVAL_TEMPERATURE,
    EVAL_TOP_P,
    Arm,
    ArmResult,
    Comparison,
    EffectsReport,
    EvalProgress,
    PairedEvaluator,
    PairedReport,
    fixed_library,
    library_arm,
    no_library,
)
from debrief.learner.fencing import DATA_RULE, fence
from debrief.learner.library import Library, LibraryEntry
from debrief.learner.prompts import EXPERIENCE_RULES
from debrief.learner.structured import ask_structured
from debrief.learner.verifiers import Verifier
from debrief.learner.words import MAX_EXPERIENCE_WORDS, count_words, normalize_experience_text

ControlName = Literal["whole", "retrieved", "random", "tips"]
"""whole library / top-k retrieved (the injection not evaluated) / random library of the same size / direct tips."""

CONTROLS: tuple[ControlName, ...] = ("whole", "retrieved", "random", "tips")
TIP_EXAMPLES = 5
"""Example questions (never answers) shown when asking for direct tips."""


def shuffled_library(entries: Sequence[LibraryEntry], *, seed: int = 0) -> list[LibraryEntry]:
    """Each experience with its words in random order: the same length and words, without the lesson."""
    rng = random.Random(seed)
    shuffled = []
    for entry in entries:
        words = entry.text.split()
        rng.shuffle(words)
        shuffled.append(LibraryEntry(experience_id=f"shuffled:{entry.experience_id}", text=" ".join(words)))
    return shuffled


def random_library(pool: Sequence[LibraryEntry], size: int, *, seed: int = 0) -> list[LibraryEntry]:
    """``size`` experiences drawn from ``pool`` (another namespace's library) without replacement."""
    if size > len(pool):
        raise ConfigError(f"the pool has {len(pool)} experiences; a random library of {size} needs at least as many")
    return random.Random(seed).sample(list(pool), size)


class DirectTips(BaseModel):
    """Tips for a kind of task, written without seeing any attempt."""

    tips: list[str] = Field(description="One sentence each, the most useful first.")


def tips_messages(questions: Sequence[str], count: int) -> tuple[Message, ...]:
    """Ask for ``count`` tips for problems like ``questions`` (fenced as data), without any attempt to learn from."""
    fenced = "\n\n".join(
        fence(f"example problem {number}", question) for number, question in enumerate(questions, start=1)
    )
    return (
        Message(
            role="system",
            content="You write experiences that help a model solve problems of one kind.\n\n"
            f"{EXPERIENCE_RULES}\n\n{DATA_RULE}",
        ),
        Message(
            role="user",
            content=f"Example problems of the kind to solve:\n\n{fenced}\n\n"
            f"Write exactly {count} experiences that would help solve problems of this kind.",
        ),
    )


async def write_direct_tips(
    caller: Caller, problems: Sequence[Problem], count: int, *, temperature: float = 0.0, max_reasks: int = 2
) -> list[LibraryEntry]:
    """Ask the reflection model for ``count`` tips for the task of ``problems``; tips over the word cap are dropped."""
    if count < 1:
        raise ConfigError(f"direct tips need a count of at least 1, not {count!r}")
    questions = [problem.question for problem in problems[:TIP_EXAMPLES]]
    request = ChatRequest(
        role="reflect", stage="advantage", temperature=temperature, messages=tips_messages(questions, count)
    )

    def check(reply: DirectTips) -> str | None:
        long = [tip for tip in reply.tips if count_words(tip) > MAX_EXPERIENCE_WORDS]
        if long:
            return f"These tips are longer than {MAX_EXPERIENCE_WORDS} words; reply again with each shortened: {long!r}"
        if len(reply.tips) < count:
            return f"Write exactly {count} tips; you wrote {len(reply.tips)}."
        return None

    reply = await ask_structured(caller, request, DirectTips, max_reasks=max_reasks, check=check)
    kept = [normalize_experience_text(tip) for tip in reply.tips if 0 < count_words(tip) <= MAX_EXPERIENCE_WORDS]
    return [LibraryEntry(experience_id=f"tip:{number}", text=tip) for number, tip in enumerate(kept[:count])]


class ControlResult(BaseModel):
    """The library against one control."""

    name: ControlName
    description: str = Field(description="What the control showed the model.")
    size: int = Field(description="Experiences in the control (per prompt, for retrieved).")
    arm: ArmResult = Field(description="How the control itself scored.")
    comparison: Comparison = Field(description="The library minus the control, with its 95% interval.")
    beaten: bool = Field(description="Whether the library is better than the control (interval above zero).")
    build_tokens: TokenCount = Field(default_factory=TokenCount, description="Tokens spent making the control.")


class LibraryEvaluation(BaseModel):
    """A library evaluated without and with it on the same problems and seeds, against the controls asked for."""

    injection: Literal["all", "retrieve"]
    k: int = Field(description="Experiences retrieved per problem when injection is retrieve.")
    library_size: int
    samples: int = Field(description="Attempts per problem and arm (K).")
    temperature: float
    top_p: float
    seed: int
    method: str = Field(description="How intervals were computed.")
    without: ArmResult
    with_library: ArmResult
    delta: Comparison = Field(description="With the library minus without it.")
    controls: list[ControlResult]
    effects: EffectsReport | None = Field(default=None, description="Per-experience effects, when asked for.")
    report: PairedReport = Field(description="Every arm, comparison and per-problem reward.")
    tokens: TokenCount = Field(description="Everything the evaluation spent.")
    wall_seconds: float


async def _control_arm(
    name: ControlName,
    *,
    entries: Sequence[LibraryEntry],
    library: Library,
    injection: str,
    k: int,
    problems: Sequence[Problem],
    evaluator: PairedEvaluator,
    random_pool: Sequence[LibraryEntry] | None,
    seed: int,
) -> tuple[Arm, int]:
    if name in ("whole", "retrieved") and (name == "whole") == (injection == "all"):
        other = "retrieved" if name == "whole" else "whole"
        raise ConfigError(f"control {name!r} is the library itself with injection {injection!r}; use {other!r}")
    if name == "whole":
        return fixed_library(entries, name="whole", description="the whole library in every prompt"), len(entries)
    if name == "retrieved":
        return library_arm(library, injection="retrieve", k=k, name="retrieved"), min(k, len(entries))
    if name == "random":
        if random_pool is not None and len(random_pool) >= len(entries):
            chosen = random_library(random_pool, len(entries), seed=seed)
            description = f"{len(chosen)} experiences drawn at random from another library"
        else:
            chosen = shuffled_library(entries, seed=seed)
            description = f"the library's {len(chosen)} experiences with their words shuffled"
        return fixed_library(chosen, name="random", description=description), len(chosen)
    tips = await write_direct_tips(
        evaluator.caller, problems, min(len(entries), 50), temperature=evaluator.config.extraction_temperature
    )
    description = f"{len(tips)} tips the model wrote for the task without any attempt"
    return fixed_library(tips, name="tips", description=description), len(tips)


async def evaluate_library(
    problems: Sequence[Problem],
    library: Library,
    *,
    backends: Backends,
    verifier: Verifier,
    samples: int = 4,
    injection: Literal["all", "retrieve"] = "all",
    k: int = 5,
    controls: Sequence[ControlName] = (),
    random_pool: Sequence[LibraryEntry] | None = None,
    per_experience: bool = False,
    effects_chunk: int = 8,
    effects_max_problems: int | None = None,
    temperature: float = EVAL_TEMPERATURE,
    top_p: float = EVAL_TOP_P,
    config: RunConfig | None = None,
    seed: int = 0,
    resamples: int = 2000,
    on_progress: Callable[[EvalProgress], None] | None = None,
    on_effects_plan: Callable[[int, int], None] | None = None,
) -> LibraryEvaluation:
    """Evaluate ``library`` on ``problems``: without vs with, each control, and optionally each experience.

    Raises:
        ConfigError: the library is empty, a control is the library itself, or a random pool is too small.
    """
    started = time.perf_counter()
    entries = list(await library.entries())
    if not entries:
        raise ConfigError("the library has no active experiences: there is nothing to evaluate")
    if len(set(controls)) != len(controls):
        raise ConfigError(f"controls are named twice: {list(controls)!r}")
    evaluator = PairedEvaluator(
        backends=backends,
        verifier=verifier,
        samples=samples,
        temperature=temperature,
        top_p=top_p,
        config=config,
        seed=seed,
        resamples=resamples,
        on_progress=on_progress,
    )
    with_arm = library_arm(library, injection=injection, k=k, name="with")
    arms = [no_library(), with_arm]
    sizes: dict[str, int] = {}
    build: dict[str, TokenCount] = {}
    for name in controls:
        before = evaluator.tokens
        arm, sizes[name] = await _control_arm(
            name,
            entries=entries,
            library=library,
            injection=injection,
            k=k,
            problems=problems,
            evaluator=evaluator,
            random_pool=random_pool,
            seed=seed,
        )
        spent = evaluator.tokens
        build[name] = TokenCount(
            prompt_tokens=spent.prompt_tokens - before.prompt_tokens,
            completion_tokens=spent.completion_tokens - before.completion_tokens,
            requests=spent.requests - before.requests,
            cost_usd=spent.cost_usd - before.cost_usd,
        )
        arms.append(arm)
    pairs = [("with", "without")]
    for name in controls:
        pairs += [("with", name), (name, "without")]
    report = await evaluator.compare(problems, arms, pairs)
    effects = None
    if per_experience:
        effects = await evaluator.experience_effects(
            problems, with_arm, chunk=effects_chunk, max_problems=effects_max_problems, on_plan=on_effects_plan
        )
    results = [
        ControlResult(
            name=name,
            description=report.arm(name).description,
            size=sizes[name],
            arm=report.arm(name),
            comparison=report.comparison("with", name),
            beaten=report.comparison("with", name).verdict == "better",
            build_tokens=build[name],
        )
        for name in controls
    ]
    return LibraryEvaluation(
        injection=injection,
        k=k,
        library_size=len(entries),
        samples=samples,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        method=report.method,
        without=report.arm("without"),
        with_library=report.arm("with"),
        delta=report.comparison("with", "without"),
        controls=results,
        effects=effects,
        report=report,
        tokens=evaluator.tokens,
        wall_seconds=time.perf_counter() - started,
    )
