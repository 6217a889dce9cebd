"""Evaluation: sample problems K times with and without experiences, and say with intervals what the library adds.

:func:`evaluate` scores one condition. :class:`PairedEvaluator` compares several *arms* (which experiences each
problem's prompt shows) on the same problems with the same sampling seeds, so that the difference between arms is
measured problem by problem: Mean@K and Pass@K per arm, their differences, and a 95% interval of each difference
by paired bootstrap over problems (seeded). It also measures each experience's own effect by leaving it out on the
problems where it is shown. Experiences are shown exactly as in learning rollouts.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import anyio
from pydantic import BaseModel, Field

from debrief.learner.accounting import TokenCount
from debrief.learner.agent import AgentSettings, sample_agent_group
from debrief.learner.aliases import AliasMap
from debrief.learner.backend import Backends, ChatRequest, Stage
from debrief.learner.calls import Caller
from debrief.learner.config import RunConfig
from debrief.learner.datasets import Problem
from debrief.learner.errors import ConfigError
from debrief.learner.library import Library, LibraryEntry
from debrief.learner.prompts import rollout_messages
from debrief.learner.reflection import ReflectSettings, judge_response
from debrief.learner.stats import (
    BOOTSTRAP_METHOD,
    Verdict,
    mean_at_k,
    paired_bootstrap,
    pass_at_k,
    problem_mean,
    problem_pass,
    sign_flip_p_value,
)
from debrief.learner.verifiers import Verifier, safe_score

ExperiencesFor = Callable[[Problem], Awaitable[Sequence[LibraryEntry]]]
"""Which experiences to show for a problem (e.g. retrieved from a store); ``None`` evaluates without any."""

EVAL_TEMPERATURE = 0.3
"""The paper's evaluation sampling temperature."""
EVAL_TOP_P = 0.95
"""The paper's evaluation nucleus; sent to backends whose requests carry ``top_p``."""


class ProblemResult(BaseModel):
    """One problem's samples and their rewards."""

    problem_id: str
    rewards: list[float]
    experiences_shown: int = Field(description="How many experiences were in the prompt.")


class EvaluationReport(BaseModel):
    """Accuracy over a problem set at k samples each."""

    samples_per_problem: int
    mean_at_k: float = Field(description="Mean reward over every sample.")
    pass_at_k: float = Field(description="Share of problems with at least one sample scoring 1.")
    problems: list[ProblemResult]
    tokens: TokenCount
    wall_seconds: float


async def evaluate(
    problems: Sequence[Problem],
    *,
    backends: Backends,
    verifier: Verifier,
    samples: int,
    experiences_for: ExperiencesFor | None = None,
    config: RunConfig | None = None,
    seed: int = 0,
) -> EvaluationReport:
    """Sample every problem ``samples`` times at the rollout temperature and score each answer."""
    config = config or RunConfig()
    caller = Caller(backends, concurrency=config.concurrency, prices=config.prices)
    reflect = ReflectSettings.of(config)
    results: dict[str, ProblemResult] = {}
    started = time.perf_counter()

    async def judge(judged: Problem, response: str) -> bool:
        return await judge_response(caller, reflect, judged, response)

    async def one(index: int, problem: Problem) -> None:
        shown = list(await experiences_for(problem)) if experiences_for is not None else []
        request = ChatRequest(
            role="policy",
            stage="rollout",
            temperature=config.rollout_temperature,
            max_tokens=config.max_completion_tokens,
            seed=seed * 1_000_003 + index * 101,
            messages=rollout_messages(config.instructions, AliasMap.of(shown).render(), problem.question),
        )
        texts, _tokens = await caller.sample(request, samples)
        rewards = []
        for text in texts:
            reward, _error = await safe_score(verifier, problem, text, judge=judge, timeout=config.verifier_timeout)
            rewards.append(reward)
        results[problem.problem_id] = ProblemResult(
            problem_id=problem.problem_id, rewards=rewards, experiences_shown=len(shown)
        )

    async with anyio.create_task_group() as group:
        for index, problem in enumerate(problems):
            group.start_soon(one, index, problem)
    ordered = [results[problem.problem_id] for problem in problems]
    every = [reward for result in ordered for reward in result.rewards]
    return EvaluationReport(
        samples_per_problem=samples,
        mean_at_k=sum(every) / len(every) if every else 0.0,
        pass_at_k=sum(1 for result in ordered if any(r >= 1.0 for r in result.rewards)) / len(ordered)
        if ordered
        else 0.0,
        problems=ordered,
        tokens=caller.ledger.total,
        wall_seconds=time.perf_counter() - started,
    )


# ---- arms --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Arm:
    """One condition of a paired evaluation: which experiences each problem's prompt shows (``None``: none)."""

    name: str
    shown: ExperiencesFor | None = None
    description: str = ""


def no_library(name: str = "without") -> Arm:
    """The arm without experiences."""
    return Arm(name=name, description="no experiences in the prompt")


def fixed_library(entries: Sequence[LibraryEntry], *, name: str, description: str = "") -> Arm:
    """An arm showing the same ``entries`` for every problem."""
    frozen = tuple(entries)

    async def shown(_problem: Problem) -> Sequence[LibraryEntry]:
        return frozen

    return Arm(name=name, shown=shown, description=description or f"the same {len(frozen)} experiences every time")


def library_arm(library: Library, *, injection: str, k: int, name: str = "with") -> Arm:
    """The library as learning shows it: ``all`` of it, or the ``k`` most relevant per problem (``retrieve``)."""
    if injection == "retrieve":

        async def relevant(problem: Problem) -> Sequence[LibraryEntry]:
            return await library.relevant(problem.question, k)

        return Arm(name=name, shown=relevant, description=f"the top {k} experiences retrieved per problem")
    if injection != "all":
        raise ConfigError(f"injection must be 'all' or 'retrieve', not {injection!r}")
    cached: list[Sequence[LibraryEntry]] = []
    lock = anyio.Lock()

    async def everything(_problem: Problem) -> Sequence[LibraryEntry]:
        async with lock:
            if not cached:
                cached.append(tuple(await library.entries()))
        return cached[0]

    return Arm(name=name, shown=everything, description="the whole library in every prompt")


# ---- reports -----------------------------------------------------------------------------------------------------


class ArmResult(BaseModel):
    """How one arm scored."""

    name: str = Field(description="Name of the arm, e.g. 'without' or 'with'.")
    description: str = Field(default="", description="What the arm shows the model.")
    mean_at_k: float = Field(description="Mean reward over every sample of every problem.")
    pass_at_k: float = Field(description="Share of problems with at least one sample scoring 1.")
    problems: int = Field(description="Problems evaluated.")
    experiences_shown_mean: float = Field(description="Mean number of experiences in a prompt.")
    tokens: TokenCount = Field(description="Tokens of this arm's attempts (zero where another arm's were reused).")


class Comparison(BaseModel):
    """One arm against another on the same problems and seeds: ``arm`` minus ``baseline``."""

    arm: str
    baseline: str
    problems: int = Field(description="Problems both arms attempted (the unit of resampling).")
    mean_at_k: float = Field(description="Difference of Mean@K (arm minus baseline).")
    ci95: list[float] = Field(description="95% interval [low, high] of the Mean@K difference.")
    pass_at_k: float = Field(description="Difference of Pass@K (arm minus baseline).")
    pass_ci95: list[float] = Field(description="95% interval [low, high] of the Pass@K difference.")
    p_value: float = Field(description="Two-sided p-value of a paired sign-flip test on per-problem Mean@K.")
    verdict: Verdict = Field(description="better/worse when the Mean@K interval excludes zero, else inconclusive.")


class PairedProblem(BaseModel):
    """One problem's rewards and shown experiences per arm."""

    problem_id: str
    rewards: dict[str, list[float]] = Field(description="Rewards per arm name, one per sample (same seeds).")
    shown: dict[str, list[str]] = Field(description="Experience ids shown per arm name.")


class PairedReport(BaseModel):
    """Arms compared on the same problems with the same sampling seeds."""

    samples_per_problem: int
    temperature: float
    top_p: float
    seed: int = Field(description="Seed of the sampling seeds and of the bootstrap.")
    method: str = Field(description="How intervals were computed.")
    arms: list[ArmResult]
    comparisons: list[Comparison]
    problems: list[PairedProblem]
    tokens: TokenCount = Field(description="Every call of this evaluation, judge calls included.")
    wall_seconds: float

    def arm(self, name: str) -> ArmResult:
        """The result of the arm called ``name``."""
        for result in self.arms:
            if result.name == name:
                return result
        raise KeyError(name)

    def comparison(self, arm: str, baseline: str) -> Comparison:
        """The comparison of ``arm`` against ``baseline``."""
        for result in self.comparisons:
            if (result.arm, result.baseline) == (arm, baseline):
                return result
        raise KeyError((arm, baseline))


class ExperienceEffect(BaseModel):
    """What one experience adds: the arm with it minus the arm without it, on the problems where it is shown."""

    experience_id: str
    text: str
    delta_mean: float = Field(description="Mean@K with the experience minus Mean@K without it (leave-one-out).")
    ci95: list[float] = Field(description="95% interval [low, high] of delta_mean (paired bootstrap over problems).")
    p_value: float = Field(description="Two-sided p-value of a paired sign-flip test.")
    verdict: Verdict
    problems_shown: int = Field(description="Problems whose prompt showed the experience.")
    problems_evaluated: int = Field(description="Of those, how many were evaluated before stopping.")
    stopped_early: bool = Field(description="Whether evaluation stopped once the interval cleared zero.")
    tokens: TokenCount = Field(description="Tokens of the leave-one-out attempts.")


class EffectsReport(BaseModel):
    """Per-experience effects and what measuring them cost."""

    arm: str = Field(description="The arm whose experiences were left out one at a time.")
    effects: list[ExperienceEffect] = Field(description="Most helpful first.")
    attempts_planned: int = Field(description="Attempts if no experience stopped early (the cost bound).")
    attempts_made: int = Field(description="Attempts actually sampled.")
    tokens_estimate: int = Field(description="Token estimate before starting (attempts_planned x tokens/attempt).")
    tokens: TokenCount = Field(description="Tokens actually spent on the leave-one-out attempts.")


@dataclass(frozen=True, kw_only=True)
class EvalProgress:
    """Where an evaluation is: attempts done of those expected so far, and the tokens spent."""

    attempts_done: int
    attempts_total: int
    tokens: TokenCount
    message: str = ""


@dataclass
class _Slot:
    done: anyio.Event = field(default_factory=anyio.Event)
    rewards: list[float] | None = None


def attempt_seed(seed: int, problem_id: str) -> int:
    """The sampling seed of one problem's attempts: the same in every arm, whatever the problem's position."""
    return zlib.crc32(f"eval:{seed}:{problem_id}".encode())


# ---- the evaluator -----------------------------------------------------------------------------------------------


class PairedEvaluator:
    """Samples problems for any number of arms with shared seeds and a shared cache.

    An arm that shows a problem exactly the experiences another arm showed it reuses that arm's rewards instead
    of sampling again: the difference is then exactly zero, as it should be, and costs nothing.
    """

    def __init__(
        self,
        *,
        backends: Backends,
        verifier: Verifier,
        samples: int,
        temperature: float = EVAL_TEMPERATURE,
        top_p: float = EVAL_TOP_P,
        config: RunConfig | None = None,
        seed: int = 0,
        resamples: int = 2000,
        on_progress: Callable[[EvalProgress], None] | None = None,
        caller: Caller | None = None,
        stage: Stage = "rollout",
    ) -> None:
        if samples < 1:
            raise ConfigError(f"samples must be at least 1, not {samples!r}")
        self.config = config or RunConfig()
        # A learning run's validation gate passes its own caller and stage, so its attempts count in the run.
        self.caller = caller or Caller(backends, concurrency=self.config.concurrency, prices=self.config.prices)
        self.stage: Stage = stage
        self.verifier = verifier
        self.samples = samples
        self.temperature = temperature
        self.top_p = top_p
        self.seed = seed
        self.resamples = resamples
        self._reflect = ReflectSettings.of(self.config)
        self._on_progress = on_progress
        self._cache: dict[tuple[str, tuple[str, ...]], _Slot] = {}
        self._attempts_done = 0
        self._attempts_total = 0
        self._rollout_tokens = 0
        self._rollout_attempts = 0

    @property
    def tokens(self) -> TokenCount:
        """Everything this evaluator has spent."""
        return self.caller.ledger.total

    @property
    def tokens_per_attempt(self) -> float:
        """Mean tokens of one sampled attempt so far (0 before any)."""
        return self._rollout_tokens / self._rollout_attempts if self._rollout_attempts else 0.0

    def _progress(self, message: str) -> None:
        if self._on_progress is not None:
            self._on_progress(
                EvalProgress(
                    attempts_done=self._attempts_done,
                    attempts_total=self._attempts_total,
                    tokens=self.tokens,
                    message=message,
                )
            )

    def expect(self, attempts: int, message: str = "") -> None:
        """Announce ``attempts`` more attempts (for progress totals)."""
        self._attempts_total += attempts
        self._progress(message)

    async def rewards(self, problem: Problem, shown: Sequence[LibraryEntry]) -> tuple[list[float], TokenCount]:
        """The rewards of ``samples`` attempts at ``problem`` with ``shown`` in the prompt, and what they cost.

        Attempts already made with the same experiences are reused at no cost.
        """
        key = (problem.problem_id, tuple(entry.text for entry in shown))
        while True:
            slot = self._cache.get(key)
            if slot is None:
                break
            await slot.done.wait()
            if slot.rewards is not None:
                self._attempts_done += self.samples
                self._progress(f"reused {problem.problem_id}")
                return list(slot.rewards), TokenCount()
        slot = _Slot()
        self._cache[key] = slot
        try:
            rewards, spent = await self._sample(problem, shown)
        except BaseException:
            del self._cache[key]
            slot.done.set()
            raise
        slot.rewards = rewards
        slot.done.set()
        self._attempts_done += self.samples
        self._rollout_tokens += spent.total_tokens
        self._rollout_attempts += self.samples
        self._progress(f"sampled {problem.problem_id}")
        return list(rewards), spent

    async def _sample(self, problem: Problem, shown: Sequence[LibraryEntry]) -> tuple[list[float], TokenCount]:
        request = ChatRequest(
            role="policy",
            stage=self.stage,
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=self.config.max_completion_tokens,
            seed=attempt_seed(self.seed, problem.problem_id),
            messages=rollout_messages(self.config.instructions, AliasMap.of(shown).render(), problem.question),
        )
        # Agent mode (issue 13): K concurrent tool-using loops; the verifier grades their final answers.
        if self.config.agent:
            agents = await sample_agent_group(
                self.caller, self.caller.backends.tools, request, self.samples, AgentSettings.of(self.config)
            )
            texts, spent = agents.answers, agents.tokens
        else:
            texts, spent = await self.caller.sample(request, self.samples)
        scores: dict[int, float] = {}

        async def judge(judged: Problem, response: str) -> bool:
            return await judge_response(self.caller, self._reflect, judged, response)

        async def score(index: int) -> None:
            scores[index], _error = await safe_score(
                self.verifier, problem, texts[index], judge=judge, timeout=self.config.verifier_timeout
            )

        async with anyio.create_task_group() as group:
            for index in range(len(texts)):
                group.start_soon(score, index)
        return [scores[index] for index in range(len(texts))], spent

    def compare_rewards(
        self, arm: str, baseline: str, rewards: Sequence[tuple[Sequence[float], Sequence[float]]]
    ) -> Comparison:
        """Compare per-problem ``(arm, baseline)`` reward lists: differences, intervals, p-value, verdict."""
        means = [problem_mean(mine) - problem_mean(theirs) for mine, theirs in rewards]
        passes = [problem_pass(mine) - problem_pass(theirs) for mine, theirs in rewards]
        interval = paired_bootstrap(means, resamples=self.resamples, seed=self.seed)
        pass_interval = paired_bootstrap(passes, resamples=self.resamples, seed=self.seed)
        return Comparison(
            arm=arm,
            baseline=baseline,
            problems=len(rewards),
            mean_at_k=mean_at_k([mine for mine, _ in rewards]) - mean_at_k([theirs for _, theirs in rewards]),
            ci95=interval.as_list(),
            pass_at_k=pass_at_k([mine for mine, _ in rewards]) - pass_at_k([theirs for _, theirs in rewards]),
            pass_ci95=pass_interval.as_list(),
            p_value=sign_flip_p_value(means, resamples=self.resamples, seed=self.seed),
            verdict=interval.verdict,
        )

    async def compare(
        self,
        problems: Sequence[Problem],
        arms: Sequence[Arm],
        comparisons: Sequence[tuple[str, str]] | None = None,
    ) -> PairedReport:
        """Attempt every problem in every arm and compare arms; by default each arm against the first."""
        names = [arm.name for arm in arms]
        if len(set(names)) != len(names) or not names:
            raise ConfigError(f"arms need distinct names, got {names!r}")
        pairs = list(comparisons) if comparisons is not None else [(name, names[0]) for name in names[1:]]
        unknown = sorted({name for pair in pairs for name in pair} - set(names))
        if unknown:
            raise ConfigError(f"comparisons name unknown arms {unknown!r}; the arms are {names!r}")
        if len({problem.problem_id for problem in problems}) != len(problems):
            raise ConfigError("problems must have distinct problem ids")
        started = time.perf_counter()
        before = self.tokens
        self.expect(len(problems) * len(arms) * self.samples, f"evaluating {len(arms)} arms")
        rewards: dict[tuple[str, str], list[float]] = {}
        shown_ids: dict[tuple[str, str], list[str]] = {}
        arm_tokens = {name: TokenCount() for name in names}

        async def one(arm: Arm, problem: Problem) -> None:
            shown = list(await arm.shown(problem)) if arm.shown is not None else []
            got, spent = await self.rewards(problem, shown)
            rewards[arm.name, problem.problem_id] = got
            shown_ids[arm.name, problem.problem_id] = [entry.experience_id for entry in shown]
            arm_tokens[arm.name] = arm_tokens[arm.name].plus(spent)

        async with anyio.create_task_group() as group:
            for problem in problems:
                for arm in arms:
                    group.start_soon(one, arm, problem)
        results = []
        for arm in arms:
            per_problem = [rewards[arm.name, problem.problem_id] for problem in problems]
            shown_counts = [len(shown_ids[arm.name, problem.problem_id]) for problem in problems]
            results.append(
                ArmResult(
                    name=arm.name,
                    description=arm.description,
                    mean_at_k=mean_at_k(per_problem),
                    pass_at_k=pass_at_k(per_problem),
                    problems=len(problems),
                    experiences_shown_mean=sum(shown_counts) / len(shown_counts) if shown_counts else 0.0,
                    tokens=arm_tokens[arm.name],
                )
            )
        compared = [
            self.compare_rewards(
                arm,
                baseline,
                [(rewards[arm, problem.problem_id], rewards[baseline, problem.problem_id]) for problem in problems],
            )
            for arm, baseline in pairs
        ]
        spent = self.tokens
        return PairedReport(
            samples_per_problem=self.samples,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=self.seed,
            method=f"{BOOTSTRAP_METHOD}, {self.resamples} resamples, seed {self.seed}",
            arms=results,
            comparisons=compared,
            problems=[
                PairedProblem(
                    problem_id=problem.problem_id,
                    rewards={name: rewards[name, problem.problem_id] for name in names},
                    shown={name: shown_ids[name, problem.problem_id] for name in names},
                )
                for problem in problems
            ],
            tokens=TokenCount(
                prompt_tokens=spent.prompt_tokens - before.prompt_tokens,
                completion_tokens=spent.completion_tokens - before.completion_tokens,
                cached_tokens=spent.cached_tokens - before.cached_tokens,
                requests=spent.requests - before.requests,
                cost_usd=spent.cost_usd - before.cost_usd,
            ),
            wall_seconds=time.perf_counter() - started,
        )

    async def experience_effects(  # noqa: C901 - leave-one-out with early stop reads best as one loop
        self,
        problems: Sequence[Problem],
        arm: Arm,
        *,
        chunk: int = 8,
        min_problems: int = 8,
        max_problems: int | None = None,
        on_plan: Callable[[int, int], None] | None = None,
    ) -> EffectsReport:
        """Each experience ``arm`` shows, left out on the problems where it is shown: its effect with an interval.

        Problems are taken ``chunk`` at a time; an experience stops once at least ``min_problems`` are done and its
        interval clears zero, or after ``max_problems``. ``on_plan(attempts_planned, tokens_estimate)`` is called
        before any leave-one-out attempt is made. The arm's own attempts are reused from :meth:`compare` when it
        ran on these problems.
        """
        if chunk < 1 or min_problems < 1:
            raise ConfigError("chunk and min_problems must be at least 1")
        shown: dict[str, list[LibraryEntry]] = {}

        async def show(problem: Problem) -> None:
            shown[problem.problem_id] = list(await arm.shown(problem)) if arm.shown is not None else []

        async with anyio.create_task_group() as group:
            for problem in problems:
                group.start_soon(show, problem)
        experiences: dict[str, LibraryEntry] = {}
        where: dict[str, list[Problem]] = {}
        for problem in problems:
            for entry in shown[problem.problem_id]:
                experiences.setdefault(entry.experience_id, entry)
                where.setdefault(entry.experience_id, []).append(problem)
        if max_problems is not None:
            where = {key: found[:max_problems] for key, found in where.items()}
        planned = sum(len(found) for found in where.values()) * self.samples
        estimate = round(planned * self.tokens_per_attempt)
        if on_plan is not None:
            on_plan(planned, estimate)
        self.expect(planned, f"leave-one-out over {len(experiences)} experiences")
        made = 0
        effects: list[ExperienceEffect] = []
        before = self.tokens

        async def measure(entry: LibraryEntry) -> None:
            nonlocal made
            targets = where[entry.experience_id]
            pairs: list[tuple[list[float], list[float]]] = []
            spent_here = TokenCount()
            stopped = False

            async def pair(problem: Problem, results: dict[str, tuple[list[float], list[float]]]) -> None:
                nonlocal spent_here
                full = shown[problem.problem_id]
                with_it, _ = await self.rewards(problem, full)
                rest = [item for item in full if item.experience_id != entry.experience_id]
                without_it, spent = await self.rewards(problem, rest)
                spent_here = spent_here.plus(spent)
                results[problem.problem_id] = (with_it, without_it)

            for start in range(0, len(targets), chunk):
                batch = targets[start : start + chunk]
                results: dict[str, tuple[list[float], list[float]]] = {}
                async with anyio.create_task_group() as group:
                    for problem in batch:
                        group.start_soon(pair, problem, results)
                pairs.extend(results[problem.problem_id] for problem in batch)
                made += len(batch) * self.samples
                interval = paired_bootstrap(
                    [problem_mean(a) - problem_mean(b) for a, b in pairs], resamples=self.resamples, seed=self.seed
                )
                remaining = len(targets) - start - len(batch)
                if remaining and len(pairs) >= min_problems and interval.verdict != "inconclusive":
                    stopped = True
                    self._attempts_total -= remaining * self.samples
                    break
            compared = self.compare_rewards(entry.experience_id, "", pairs)
            effects.append(
                ExperienceEffect(
                    experience_id=entry.experience_id,
                    text=entry.text,
                    delta_mean=compared.mean_at_k,
                    ci95=compared.ci95,
                    p_value=compared.p_value,
                    verdict=compared.verdict,
                    problems_shown=len(where[entry.experience_id]),
                    problems_evaluated=len(pairs),
                    stopped_early=stopped,
                    tokens=spent_here,
                )
            )

        async with anyio.create_task_group() as group:
            for entry in experiences.values():
                group.start_soon(measure, entry)
        spent = self.tokens
        order = list(experiences)
        effects.sort(key=lambda effect: (-effect.delta_mean, order.index(effect.experience_id)))
        return EffectsReport(
            arm=arm.name,
            effects=effects,
            attempts_planned=planned,
            attempts_made=made,
            tokens_estimate=estimate,
            tokens=TokenCount(
                prompt_tokens=spent.prompt_tokens - before.prompt_tokens,
                completion_tokens=spent.completion_tokens - before.completion_tokens,
                cached_tokens=spent.cached_tokens - before.cached_tokens,
                requests=spent.requests - before.requests,
                cost_usd=spent.cost_usd - before.cost_usd,
            ),
        )


async def paired_evaluation(
    problems: Sequence[Problem],
    *,
    backends: Backends,
    verifier: Verifier,
    arms: Sequence[Arm],
    samples: int = 4,
    comparisons: Sequence[tuple[str, str]] | None = None,
    temperature: float = EVAL_TEMPERATURE,
    top_p: float = EVAL_TOP_P,
    config: RunConfig | None = None,
    seed: int = 0,
    resamples: int = 2000,
    on_progress: Callable[[EvalProgress], None] | None = None,
) -> PairedReport:
    """Compare ``arms`` on ``problems``: each problem sampled ``samples`` times per arm with the same seeds.

    By default every arm is compared against the first (e.g. ``[no_library(), library_arm(...)]``).
    """
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
    return await evaluator.compare(problems, arms, comparisons)
