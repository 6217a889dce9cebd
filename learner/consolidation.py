"""Consolidation and apply: proposals become one library change. Shared by learning steps and recorded outcomes.

Design: default-keep, as the paper's official math pipeline. A group's proposal enters the batch as a candidate
and is applied unless consolidation drops it or merges it into another proposal or an existing experience, each
with a reason. Why not explicit keeps: a consolidator that must restate every add to keep it tends to leave some
out, and a proposal left out would vanish without a decision anyone made. Duplicates are still caught: exact
repeats are merged here before the model sees them, near-copies by the model's merges and, last, by the
library's near-copy check (recorded as "rejected" with the library's reason). Every proposal ends with exactly
one :class:`~debrief.learner.records.ProposalRecord`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from debrief.learner.aliases import AliasMap
from debrief.learner.calls import Caller
from debrief.learner.errors import LearnerError
from debrief.learner.library import ApplyResult, Library, Provenance
from debrief.learner.operations import Operation
from debrief.learner.records import AppliedRecord, Disposition, Proposal, ProposalRecord, RejectedRecord
from debrief.learner.reflection import ReflectSettings, consolidate

T = TypeVar("T", AppliedRecord, RejectedRecord)


@dataclass(frozen=True, kw_only=True)
class BatchPlan:
    """What consolidation made of a batch's proposals. On ``error`` there are no operations.

    ``origins`` pairs each planned operation with the proposal it carries (``None``: consolidation's own edit),
    so that every proposal's fate can be recorded after apply, even if a gate removes operations in between.
    """

    operations: list[Operation]
    rejected: list[RejectedRecord]
    error: str | None = None
    proposals: list[Proposal] = field(default_factory=list)
    origins: list[tuple[Operation, str | None]] = field(default_factory=list)
    decided: list[ProposalRecord] = field(default_factory=list)
    merged_into: dict[str, str] = field(default_factory=dict)


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
    proposals: list[ProposalRecord] = field(default_factory=list)


async def plan_batch(
    caller: Caller,
    settings: ReflectSettings,
    library: Library,
    proposals: Sequence[Proposal],
    *,
    credit_lines: dict[str, str] | None = None,
) -> BatchPlan:
    """One consolidation of ``proposals`` against a fresh library snapshot; a failure is returned, not raised."""
    if not proposals:
        return BatchPlan(operations=[], rejected=[])
    aliases = AliasMap.of(await library.entries())
    try:
        settled = await consolidate(caller, settings, aliases=aliases, proposals=proposals, credit_lines=credit_lines)
    except LearnerError as error:
        return BatchPlan(operations=[], rejected=[], error=str(error), proposals=list(proposals))
    return BatchPlan(
        operations=settled.operations,
        rejected=settled.rejected,
        proposals=list(proposals),
        origins=list(zip(settled.operations, settled.origins, strict=True)),
        decided=settled.decided,
        merged_into=settled.merged_into,
    )


def _take(records: Sequence[T], operation: Operation, used: set[int]) -> T | None:
    for position, record in enumerate(records):
        if position not in used and record.operation == operation:
            used.add(position)
            return record
    return None


AWAITING_APPLY = "planned; awaiting apply"


def planned_dispositions(plan: BatchPlan) -> tuple[list[ProposalRecord], list[str | None]]:
    """Every proposal's fate as far as the plan decides it, and each planned operation's origin (proposal id).

    Proposals carried by a planned operation are marked :data:`AWAITING_APPLY` until :func:`settle_dispositions`
    sees what the library did; merges point at the proposal they went into until then.
    """
    if plan.error is not None:
        return [
            _fate(
                proposal,
                "pending",
                reason=f"consolidation failed ({plan.error}); the next step consolidates it again",
                stage="consolidation",
            )
            for proposal in plan.proposals
        ], []
    by_id = {proposal.proposal_id: proposal for proposal in plan.proposals}
    records: dict[str, ProposalRecord] = {}
    used_refused: set[int] = set()
    for operation, proposal_id in plan.origins:
        if proposal_id is None or proposal_id in records or proposal_id not in by_id:
            continue
        proposal = by_id[proposal_id]
        if any(item is operation for item in plan.operations):
            records[proposal_id] = _fate(proposal, "applied", reason=AWAITING_APPLY, stage="apply")
        else:
            refused = _take(plan.rejected, operation, used_refused)
            reason = refused.reason if refused is not None else "removed from the plan before apply"
            records[proposal_id] = _fate(proposal, "rejected", reason=reason, stage="validation")
    for record in plan.decided:
        if record.disposition == "merged" and record.proposal_id in plan.merged_into:
            record = record.model_copy(update={"into": _final_target(record.proposal_id, plan.merged_into)})
        records.setdefault(record.proposal_id, record)
    for proposal in plan.proposals:
        records.setdefault(
            proposal.proposal_id,
            _fate(proposal, "rejected", reason="no decision was recorded for it", stage="consolidation"),
        )
    origins = [next((pid for item, pid in plan.origins if item is operation), None) for operation in plan.operations]
    return [records[proposal.proposal_id] for proposal in plan.proposals], origins


def settle_dispositions(
    records: Sequence[ProposalRecord],
    operations: Sequence[Operation],
    origins: Sequence[str | None],
    done: Applied | None,
) -> list[ProposalRecord]:
    """Records awaiting apply become applied (with the experience id) or rejected (with the library's reason)."""
    used_applied: set[int] = set()
    used_rejected: set[int] = set()
    applied = done.applied if done is not None else []
    refused = done.rejected if done is not None else []
    settled: dict[str, ProposalRecord] = {}
    for record in records:
        if record.disposition != "applied" or record.reason != AWAITING_APPLY:
            settled[record.proposal_id] = record
            continue
        position = next((index for index, origin in enumerate(origins) if origin == record.proposal_id), None)
        operation = operations[position] if position is not None else None
        hit = _take(applied, operation, used_applied) if operation is not None else None
        if hit is not None:
            into = hit.experience_ids[0] if hit.experience_ids else None
            settled[record.proposal_id] = record.model_copy(update={"into": into, "reason": None})
            continue
        miss = _take(refused, operation, used_rejected) if operation is not None else None
        reason = miss.reason if miss is not None else "not applied: the step's library change did not land"
        settled[record.proposal_id] = record.model_copy(update={"disposition": "rejected", "reason": reason})
    for key, record in settled.items():
        if record.disposition == "merged" and record.into in settled:
            target = settled[record.into]
            if target.disposition == "applied" and target.into is not None:
                settled[key] = record.model_copy(update={"into": target.into})
    return [settled[record.proposal_id] for record in records]


def dispositions(plan: BatchPlan, done: Applied | None) -> list[ProposalRecord]:
    """The fate of every proposal of ``plan`` once ``done`` (the apply, if any) is known: exactly one each."""
    records, origins = planned_dispositions(plan)
    return settle_dispositions(records, plan.operations, origins, done)


def _fate(
    proposal: Proposal,
    disposition: Disposition,
    *,
    stage: Literal["advantage", "consolidation", "validation", "apply"],
    into: str | None = None,
    reason: str | None = None,
) -> ProposalRecord:
    return ProposalRecord(
        proposal_id=proposal.proposal_id,
        problem_id=proposal.problem_id,
        operation=proposal.operation,
        disposition=disposition,
        into=into,
        reason=reason,
        stage=stage,
    )


def _final_target(proposal_id: str, merged_into: dict[str, str]) -> str:
    seen = {proposal_id}
    target = merged_into[proposal_id]
    while target in merged_into and target not in seen:
        seen.add(target)
        target = merged_into[target]
    return target


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
        return Consolidated(applied=[], rejected=[], error=plan.error, version=None, proposals=dispositions(plan, None))
    done = await apply_plan(library, plan.operations, provenance=provenance, reason=reason)
    return Consolidated(
        applied=done.applied,
        rejected=plan.rejected + done.rejected,
        error=None,
        version=done.version,
        proposals=dispositions(plan, done),
    )
