"""The validation gate: an edit to the library is kept only if held-out problems show it does not hurt.

Between consolidation and apply, every planned operation (add, modify, merge, delete) is tried on a copy of the
library: each validation problem is attempted K times with the library as it stands and K times with the edit,
with the same sampling seeds (paired), and the edit is kept only when the mean difference is at least
``-margin``. Kept edits build on each other in the plan's order, so each is judged against the library it would
actually join. Rejected edits come back with their figures; nothing is silently dropped.

Attempts go through the run's :class:`~debrief.learner.calls.Caller` under the stage ``validation``: they count
against the run's budget and are reported apart from the learning stages. Results are cached per problem and
shown library, so a library that did not change since the last step is not evaluated again.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import anyio
from pydantic import BaseModel, ConfigDict, Field

from debrief.learner.accounting import TokenCount
from debrief.learner.calls import Caller
from debrief.learner.config import RunConfig
from debrief.learner.consolidation import BatchPlan
from debrief.learner.datasets import Problem
from debrief.learner.errors import ConfigError
from debrief.learner.evaluation import PairedEvaluator
from debrief.learner.library import Library, LibraryEntry
from debrief.learner.operations import Operation
from debrief.learner.records import RejectedRecord
from debrief.learner.validation_records import EditValidation, ValidationRecord
from debrief.learner.verifiers import Verifier
from debrief.learner.words import normalize_experience_text


class ValidationSettings(BaseModel):
    """How the gate validates edits. Sampling defaults follow the paper's evaluation (temperature 0.3)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    samples: int = Field(default=2, ge=1, le=32, description="Attempts per validation problem and library (K).")
    margin: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Noise margin: an edit is kept when the validation Mean@K with it is at least the Mean@K "
        "without it minus this.",
    )
    temperature: float = Field(default=0.3, ge=0, le=2, description="Sampling temperature of validation attempts.")
    keep_best: bool = Field(
        default=False,
        description="At the end of the run, keep the library version with the best validation Mean@K rather than "
        "the last one.",
    )
    seed: int = Field(default=0, description="Seed of the validation sampling seeds and of the bootstrap.")


@dataclass(frozen=True, kw_only=True)
class GateVerdict:
    """The operations to apply, the ones refused with their reasons, and the record of the step's validation."""

    kept: list[Operation]
    rejected: list[tuple[Operation, str]]
    record: ValidationRecord


def split_validation(problems: Sequence[Problem], fraction: float, *, seed: int) -> tuple[list[Problem], list[Problem]]:
    """Training and validation problems: a seeded shuffle, then ``fraction`` of them (at least one) held out.

    Raises:
        ConfigError: ``fraction`` is not between 0 and 1, or too few problems would be left for training.
    """
    if not 0 < fraction < 1:
        raise ConfigError(f"the validation fraction must be between 0 and 1 (exclusive), not {fraction!r}")
    order = list(range(len(problems)))
    random.Random(zlib.crc32(f"validation-split:{seed}".encode())).shuffle(order)
    held = max(1, round(len(problems) * fraction))
    if held >= len(problems):
        raise ConfigError(
            f"holding out {fraction:.0%} of {len(problems)} problems leaves none to learn from; give more problems "
            "or a smaller fraction"
        )
    chosen = set(order[:held])
    train = [problem for index, problem in enumerate(problems) if index not in chosen]
    validation = [problem for index, problem in enumerate(problems) if index in chosen]
    return train, validation


def edited(entries: Sequence[LibraryEntry], operation: Operation, *, new_id: str) -> list[LibraryEntry] | None:
    """The entries as they would be after ``operation``; ``None`` when it names an id they do not hold."""
    present = {entry.experience_id for entry in entries}
    if operation.op == "add":
        return [*entries, LibraryEntry(experience_id=new_id, text=normalize_experience_text(operation.text))]
    if operation.op == "delete":
        if operation.experience_id not in present:
            return None
        return [entry for entry in entries if entry.experience_id != operation.experience_id]
    if operation.op == "modify":
        if operation.experience_id not in present:
            return None
        text = normalize_experience_text(operation.text)
        return [
            LibraryEntry(experience_id=entry.experience_id, text=text)
            if entry.experience_id == operation.experience_id
            else entry
            for entry in entries
        ]
    merged = set(operation.experience_ids)
    if not merged <= present:
        return None
    kept = [entry for entry in entries if entry.experience_id not in merged]
    return [*kept, LibraryEntry(experience_id=new_id, text=normalize_experience_text(operation.text))]


@dataclass
class ValidationGate:
    """Validates a step's planned edits on held-out problems (see the module docstring)."""

    problems: Sequence[Problem]
    verifier: Verifier
    settings: ValidationSettings = field(default_factory=ValidationSettings)
    _paired: PairedEvaluator | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.problems:
            raise ConfigError("the validation gate needs at least one validation problem")
        ids = [problem.problem_id for problem in self.problems]
        if len(set(ids)) != len(ids):
            raise ConfigError("validation problem ids must be unique")
        if self.verifier.needs_answer:
            missing = [problem.problem_id for problem in self.problems if problem.answer is None]
            if missing:
                raise ConfigError(
                    f"{len(missing)} validation problems have no ground truth (first: {missing[:5]!r}); the gate "
                    f"scores attempts with verifier {self.verifier.name!r}, which needs answers"
                )

    async def check(
        self,
        *,
        caller: Caller,
        config: RunConfig,
        library: Library,
        entries: Sequence[LibraryEntry],
        operations: Sequence[Operation],
    ) -> GateVerdict:
        """Try each operation on the validation problems against the library it would join; keep or refuse it."""
        spent_before = caller.ledger.by_stage.get("validation", TokenCount())
        retrieved = await self._retrieved(config, library, entries)
        current = list(entries)
        base = await self._rewards(caller, config, current, retrieved, set())
        mean_before = _mean(base)
        kept: list[Operation] = []
        rejected: list[tuple[Operation, str]] = []
        edits: list[EditValidation] = []
        touched: set[str] = set()
        for position, operation in enumerate(operations):
            new_id = f"validation-candidate-{position}"
            candidate = edited(current, operation, new_id=new_id)
            if candidate is None:
                # The library will refuse it with its own reason; the gate has nothing to measure.
                kept.append(operation)
                continue
            changed = touched | _ids_of(operation, new_id)
            trial = await self._rewards(caller, config, candidate, retrieved, changed)
            comparison = self._evaluator(caller, config).compare_rewards(
                "with", "without", [(trial[key], base[key]) for key in base]
            )
            delta, (low, high) = comparison.mean_at_k, comparison.ci95
            mean_without, mean_with = _mean(base), _mean(trial)
            keep = delta >= -self.settings.margin - 1e-12
            figures = (
                f"validation Mean@{self.settings.samples} {mean_without:.3f} -> {mean_with:.3f} "
                f"(delta {delta:+.3f}, 95% CI [{low:+.3f}, {high:+.3f}], {comparison.problems} problems)"
            )
            reason = (
                f"kept: {figures}, within the margin of {self.settings.margin:.3f}"
                if keep
                else f"rejected by validation: {figures}, below -{self.settings.margin:.3f}"
            )
            edits.append(
                EditValidation(
                    operation=operation,
                    kept=keep,
                    mean_without=mean_without,
                    mean_with=mean_with,
                    delta=delta,
                    ci95=[low, high],
                    reason=reason,
                )
            )
            if keep:
                kept.append(operation)
                current, base, touched = candidate, trial, changed
            else:
                rejected.append((operation, reason))
        spent = caller.ledger.by_stage.get("validation", TokenCount())
        tokens = TokenCount(
            prompt_tokens=spent.prompt_tokens - spent_before.prompt_tokens,
            completion_tokens=spent.completion_tokens - spent_before.completion_tokens,
            cached_tokens=spent.cached_tokens - spent_before.cached_tokens,
            requests=spent.requests - spent_before.requests,
            cost_usd=spent.cost_usd - spent_before.cost_usd,
        )
        record = ValidationRecord(
            problems=len(self.problems),
            samples=self.settings.samples,
            margin=self.settings.margin,
            mean_before=mean_before,
            mean_after=_mean(base),
            edits=edits,
            tokens=tokens,
        )
        return GateVerdict(kept=kept, rejected=rejected, record=record)

    async def _retrieved(
        self, config: RunConfig, library: Library, entries: Sequence[LibraryEntry]
    ) -> dict[str, list[LibraryEntry]] | None:
        """Per problem, the experiences retrieval shows it; ``None`` when the whole library is shown."""
        mode = config.injection
        if mode == "auto":
            mode = "all" if len(entries) <= config.retrieve_threshold else "retrieve"
        if mode == "all" or not entries:
            return None
        found: dict[str, list[LibraryEntry]] = {}
        for problem in self.problems:
            found[problem.problem_id] = list(await library.relevant(problem.question, config.retrieve_k))
        return found

    async def _rewards(
        self,
        caller: Caller,
        config: RunConfig,
        entries: Sequence[LibraryEntry],
        retrieved: dict[str, list[LibraryEntry]] | None,
        changed: set[str],
    ) -> dict[str, list[float]]:
        """Rewards of K attempts per validation problem with ``entries`` shown (reused for a library seen before)."""
        evaluator = self._evaluator(caller, config)
        results: dict[str, list[float]] = {}

        async def one(problem: Problem) -> None:
            shown = _shown(entries, retrieved, problem.problem_id, changed)
            results[problem.problem_id], _spent = await evaluator.rewards(problem, shown)

        async with anyio.create_task_group() as group:
            for problem in self.problems:
                group.start_soon(one, problem)
        return {problem.problem_id: results[problem.problem_id] for problem in self.problems}

    def _evaluator(self, caller: Caller, config: RunConfig) -> PairedEvaluator:
        """The paired evaluator on the run's caller; its cache lives as long as the run's caller does."""
        if self._paired is None or self._paired.caller is not caller:
            self._paired = PairedEvaluator(
                backends=caller.backends,
                verifier=self.verifier,
                samples=self.settings.samples,
                temperature=self.settings.temperature,
                config=config,
                seed=self.settings.seed,
                caller=caller,
                stage="validation",
            )
        return self._paired


def _ids_of(operation: Operation, new_id: str) -> set[str]:
    if operation.op == "add":
        return {new_id}
    if operation.op == "merge":
        return {new_id, *operation.experience_ids}
    return {operation.experience_id}


def _shown(
    entries: Sequence[LibraryEntry],
    retrieved: dict[str, list[LibraryEntry]] | None,
    problem_id: str,
    changed: set[str],
) -> list[LibraryEntry]:
    """What one validation problem is shown: the whole library, or its retrieved entries plus the edited ones."""
    if retrieved is None:
        return list(entries)
    present = {entry.experience_id: entry for entry in entries}
    shown = [present[entry.experience_id] for entry in retrieved[problem_id] if entry.experience_id in present]
    listed = {entry.experience_id for entry in shown}
    # An edited experience is shown to every problem: the gate cannot rank text the store has not embedded yet.
    shown += [present[key] for key in present if key in changed and key not in listed]
    return shown


def _mean(rewards: dict[str, list[float]]) -> float:
    every = [reward for samples in rewards.values() for reward in samples]
    return sum(every) / len(every) if every else 0.0


@dataclass(frozen=True, kw_only=True)
class BestVersion:
    """The library state with the best validation score in a run: after ``step`` (``None``: before the run)."""

    step: int | None
    mean: float
    last_mean: float


def best_by_validation(records: Sequence[tuple[int, ValidationRecord | None]]) -> BestVersion | None:
    """Of the library before the run and after each validated step, the one with the best validation Mean@K.

    ``records`` pairs each step number with its validation record, in step order. Ties go to the later library.
    ``None`` when no step was validated.
    """
    scored: list[tuple[int | None, float]] = []
    for step, record in records:
        if record is None:
            continue
        if not scored:
            scored.append((None, record.mean_before))
        scored.append((step, record.mean_after))
    if not scored:
        return None
    best_step: int | None = scored[0][0]
    best_mean = scored[0][1]
    for after, mean in scored[1:]:
        if mean >= best_mean:
            best_step, best_mean = after, mean
    return BestVersion(step=best_step, mean=best_mean, last_mean=scored[-1][1])


async def gate_plan(
    gate: ValidationGate | None, plan: BatchPlan, *, caller: Caller, config: RunConfig, library: Library
) -> tuple[BatchPlan, ValidationRecord | None]:
    """A step's plan after the gate: refused edits move to ``rejected`` with their figures (unchanged without gate)."""
    if gate is None or not plan.operations:
        return plan, None
    verdict = await gate.check(
        caller=caller, config=config, library=library, entries=await library.entries(), operations=plan.operations
    )
    refused = [
        RejectedRecord(operation=operation, kind="validation", reason=reason, stage="validation")
        for operation, reason in verdict.rejected
    ]
    return replace(plan, operations=verdict.kept, rejected=[*plan.rejected, *refused]), verdict.record
