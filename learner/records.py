"""What a run records and reports: per group, per step, per run. Serializable for the server and MCP."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from debrief.learner.accounting import TokenCount
from debrief.learner.operations import Operation
from debrief.learner.validation_records import ValidationRecord

RejectionKind = Literal[
    "over_word_cap", "unknown_experience", "beyond_max_operations", "stale", "library_rejected", "validation"
]

StopReason = Literal["finished", "budget", "cancelled"]


class GroupRecord(BaseModel):
    """One problem's group in one step."""

    problem_id: str = Field(description="The problem.")
    rewards: list[float] | None = Field(default=None, description="Reward per attempt (none without grading).")
    kept: bool = Field(default=False, description="Whether the group went on to reflection.")
    proposals: int = Field(default=0, description="Operations it proposed that survived checks.")
    verifier_errors: int = Field(default=0, description="Attempts whose verification failed or timed out (scored 0).")
    reused: bool = Field(default=False, description="Its attempts came from an interrupted run of this step.")
    error: str | None = Field(default=None, description="Why the group failed, if it did.")


class AppliedRecord(BaseModel):
    """An operation the library applied."""

    operation: Operation = Field(description="The operation, with stable ids.")
    experience_ids: list[str] = Field(description="Ids it touched (a new id first for add and merge).")


class RejectedRecord(BaseModel):
    """An operation that was not applied, and why."""

    operation: Operation | None = Field(description="The operation as proposed.")
    kind: RejectionKind = Field(description="Category of the reason.")
    reason: str = Field(description="Why it was rejected.")
    stage: Literal["advantage", "consolidation", "validation", "apply"] = Field(description="Where it was rejected.")
    problem_id: str | None = Field(default=None, description="Group that proposed it, if known.")


class Proposal(BaseModel):
    """An operation a group proposed (stable ids), waiting for consolidation."""

    operation: Operation
    problem_id: str


class StepRecord(BaseModel):
    """What one step did."""

    run_id: str
    step: int = Field(description="Step number in the run, from 0.")
    epoch: int = Field(description="Epoch, from 0.")
    batch: int = Field(description="Batch within the epoch, from 0.")
    problem_ids: list[str] = Field(description="Problems of the batch, in order.")
    groups: list[GroupRecord] = Field(description="Per group.")
    groups_seen: int
    groups_kept: int
    groups_failed: int
    mean_reward: float | None = Field(description="Mean reward over graded attempts of the step.")
    operations_proposed: int = Field(description="Proposals that went to consolidation (pending ones included).")
    applied: list[AppliedRecord]
    rejected: list[RejectedRecord]
    rejection_counts: dict[str, int] = Field(description="Rejections per kind.")
    consolidation_error: str | None = Field(
        default=None, description="Why consolidation failed; its proposals then stay pending for the next step."
    )
    pending_operations: int = Field(default=0, description="Proposals carried over to the next step.")
    library_version: int | None = Field(default=None, description="Library version after the step, if it changed.")
    library_size: int = Field(description="Active experiences after the step.")
    apply_recovered: bool = Field(
        default=False,
        description="The run crashed after this step's library change and found it applied on resume; applied "
        "then lists the plan's operations the library shows.",
    )
    tokens: dict[str, TokenCount] = Field(description="Tokens and cost per stage.")
    total: TokenCount = Field(description="Tokens and cost of the step.")
    verifier_errors: int
    reused_rollouts: int = Field(description="Groups whose attempts were reused from an interrupted run.")
    wall_seconds: float
    validation: ValidationRecord | None = Field(
        default=None, description="What the validation gate measured for the step's planned edits, if it ran."
    )


class RunReport(BaseModel):
    """What a run did, step by step."""

    run_id: str
    stop_reason: StopReason
    stop_detail: str | None = None
    steps: list[StepRecord]
    total_steps: int = Field(description="Steps the run has in all (epochs x batches).")
    tokens: dict[str, TokenCount] = Field(description="Tokens and cost per stage over the run.")
    total: TokenCount
    pending_operations: list[Proposal] = Field(description="Proposals still waiting for a consolidation.")
    wall_seconds: float
