"""The validation gate around a learning run: validation problems, the gate, and keeping the best library version.

Shared by ``debrief learn`` and learning runs started over MCP, so both split, gate and keep-best the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, Field

from debrief.learner import Problem, Verifier
from debrief.learner.errors import LearnerError
from debrief.learner.records import StepRecord
from debrief.learner.validation import ValidationGate, ValidationSettings, best_by_validation, split_validation
from debrief.server.errors import Conflict, InvalidInput
from debrief.server.store.experience_store import ExperienceStore


@dataclass(frozen=True, kw_only=True)
class GatedProblems:
    """The problems a run learns from and the gate that validates its edits (``None``: no gate)."""

    train: list[Problem]
    gate: ValidationGate | None


def gated_problems(
    problems: Sequence[Problem],
    verifier: Verifier,
    *,
    validation: Sequence[Problem] | None,
    fraction: float | None,
    settings: ValidationSettings,
    seed: int,
) -> GatedProblems:
    """Training problems and the gate: validation problems given, or ``fraction`` of the problems held out (seeded).

    Raises:
        InvalidInput: both sources given, a bad fraction, or validation problems the verifier cannot score.
    """
    if validation is not None and fraction is not None:
        raise InvalidInput("give validation problems or a validation fraction, not both")
    if validation is None and fraction is None:
        return GatedProblems(train=list(problems), gate=None)
    try:
        if fraction is not None:
            train, held = split_validation(problems, fraction, seed=seed)
        else:
            assert validation is not None
            train, held = list(problems), list(validation)
            overlap = {p.problem_id for p in train} & {p.problem_id for p in held}
            if overlap:
                raise InvalidInput(
                    f"{len(overlap)} validation problems are also training problems (first: {sorted(overlap)[:3]!r}); "
                    "validation must be held out"
                )
        gate = ValidationGate(problems=held, verifier=verifier, settings=settings)
    except LearnerError as error:
        raise InvalidInput(str(error)) from error
    return GatedProblems(train=train, gate=gate)


class KeptVersion(BaseModel):
    """Which library version a gated run kept, and why."""

    policy: str = Field(description="'last' (the run's last version) or 'best' (best validation Mean@K).")
    version: int = Field(description="The library version now active.")
    mean: float | None = Field(description="Validation Mean@K of that library, when measured.")
    rolled_back_from: int | None = Field(default=None, description="The version the run ended at, if rolled back.")
    message: str = Field(description="What was kept, in a sentence.")


def _version_after(steps: Sequence[StepRecord], step: int | None, version_before: int) -> int:
    """The library version right after ``step`` (``None``: before the run)."""
    version = version_before
    for record in steps:
        if step is None or record.step > step:
            break
        if record.library_version is not None:
            version = record.library_version
    return version


async def keep_version(
    store: ExperienceStore,
    namespace: str,
    steps: Sequence[StepRecord],
    *,
    version_before: int,
    keep_best: bool,
    run_id: str,
) -> KeptVersion | None:
    """After a gated run: keep the last library, or roll back to the one with the best validation score.

    ``None`` when no step was validated (nothing to choose from).
    """
    best = best_by_validation([(step.step, step.validation) for step in steps])
    if best is None:
        return None
    last = await store.version(namespace)
    if not keep_best:
        return KeptVersion(
            policy="last",
            version=last,
            mean=best.last_mean,
            message=f"kept the last library (version {last}, validation Mean@K {best.last_mean:.3f}); "
            f"the best by validation was {best.mean:.3f}",
        )
    target = _version_after(steps, best.step, version_before)
    where = "before the run" if best.step is None else f"after step {best.step}"
    if target == last or best.mean <= best.last_mean:
        return KeptVersion(
            policy="best",
            version=last,
            mean=best.last_mean,
            message=f"kept the last library (version {last}): it has the best validation Mean@K ({best.last_mean:.3f})",
        )
    reason = (
        f"keep the best library by validation: run {run_id} {where} scored Mean@K {best.mean:.3f}, "
        f"its last library {best.last_mean:.3f}"
    )
    try:
        change = await store.rollback(namespace, target, reason=reason)
    except Conflict:
        return KeptVersion(
            policy="best", version=last, mean=best.mean, message=f"kept version {last}: it equals the best library"
        )
    return KeptVersion(
        policy="best",
        version=change.version,
        mean=best.mean,
        rolled_back_from=last,
        message=f"kept the best library by validation ({where}, version {target}, Mean@K {best.mean:.3f} against "
        f"{best.last_mean:.3f} last), restored as version {change.version}",
    )


def validation_lines(steps: Sequence[StepRecord]) -> list[str]:
    """One line per validated edit: kept or rejected, with its figures."""
    lines: list[str] = []
    for step in steps:
        if step.validation is None:
            continue
        for edit in step.validation.edits:
            text = getattr(edit.operation, "text", None) or getattr(edit.operation, "experience_id", "")
            lines.append(f"step {step.step} {edit.operation.op} {text!r}: {edit.reason}")
    return lines


def validation_cells(step: StepRecord) -> tuple[str, str]:
    """A step's table cells: edits kept of those validated, and validation Mean@K before -> after."""
    record = step.validation
    if record is None:
        return "-", "-"
    kept = sum(edit.kept for edit in record.edits)
    return f"{kept}/{len(record.edits)} kept", f"{record.mean_before:.3f} -> {record.mean_after:.3f}"
