"""Consolidation and apply: proposals become one library change. Shared by learning steps and recorded outcomes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from debrief.learner.aliases import AliasMap
from debrief.learner.calls import Caller
from debrief.learner.errors import LearnerError
from debrief.learner.library import ApplyResult, Library, Provenance
from debrief.learner.operations import Operation
from debrief.learner.records import AppliedRecord, Proposal, RejectedRecord
from debrief.learner.reflection import ReflectSettings, consolidate


@dataclass(frozen=True, kw_only=True)
class BatchPlan:
    """What consolidation made of a batch's proposals. On ``error`` there are no operations."""

    operations: list[Operation]
    rejected: list[RejectedRecord]
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class Applied:
    """What the library did with a plan. ``version`` is ``None`` when nothing was sent to it."""

    applied: list[AppliedRecord]
    rejected: list[RejectedRecord]
    version: int | None


@dataclass(frozen=True, kw_only=True)
class Consolidated:
    """What consolidation and apply did with some proposals."""

    applied: list[AppliedRecord]
    rejected: list[RejectedRecord]
    error: str | None
    version: int | None


async def plan_batch(
    caller: Caller, settings: ReflectSettings, library: Library, proposals: Sequence[Proposal]
) -> BatchPlan:
    """One consolidation of ``proposals`` against a fresh library snapshot; a failure is returned, not raised."""
    if not proposals:
        return BatchPlan(operations=[], rejected=[])
    aliases = AliasMap.of(await library.entries())
    try:
        operations, rejected = await consolidate(caller, settings, aliases=aliases, proposals=proposals)
    except LearnerError as error:
        return BatchPlan(operations=[], rejected=[], error=str(error))
    return BatchPlan(operations=operations, rejected=rejected)


def applied_records(result: ApplyResult) -> Applied:
    """A library's apply result as records."""
    return Applied(
        applied=[
            AppliedRecord(operation=item.operation, experience_ids=list(item.experience_ids)) for item in result.applied
        ],
        rejected=[
            RejectedRecord(operation=item.operation, kind="library_rejected", reason=item.reason, stage="apply")
            for item in result.rejected
        ],
        version=result.version,
    )


async def apply_plan(
    library: Library, operations: Sequence[Operation], *, provenance: Provenance, reason: str
) -> Applied:
    """One ``library.apply`` (one new version) for a non-empty plan; nothing for an empty one."""
    if not operations:
        return Applied(applied=[], rejected=[], version=None)
    return applied_records(await library.apply(operations, provenance=provenance, reason=reason))


async def consolidate_and_apply(
    caller: Caller,
    settings: ReflectSettings,
    library: Library,
    proposals: Sequence[Proposal],
    *,
    provenance: Provenance,
    reason: str,
) -> Consolidated:
    """Consolidate ``proposals``, then apply the plan as one change. A failed consolidation applies nothing."""
    plan = await plan_batch(caller, settings, library, proposals)
    if plan.error is not None:
        return Consolidated(applied=[], rejected=[], error=plan.error, version=None)
    done = await apply_plan(library, plan.operations, provenance=provenance, reason=reason)
    return Consolidated(applied=done.applied, rejected=plan.rejected + done.rejected, error=None, version=done.version)
