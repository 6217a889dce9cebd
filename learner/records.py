"""What a run records and reports: per group, per step, per run. Serializable for the server and MCP."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, computed_field

from debrief.learner.accounting import TokenCount
from debrief.learner.operations import Operation
from debrief.learner.validation_records import ValidationRecord

RejectionKind = Literal[
    "over_word_cap",
    "unknown_experience",
    "beyond_max_operations",
    "stale",
    "library_rejected",
    "validation",
    "delete_without_evidence",
]

StopReason = Literal["finished", "budget", "cancelled"]

RunStatus = Literal["succeeded", "incomplete", "budget", "cancelled"]
"""``succeeded`` only when every step ran and nothing was lost: no group left failed, no proposal left pending."""

Disposition = Literal["applied", "merged", "rejected", "dropped", "pending"]
"""What became of a proposal: applied to the library, merged into another edit or experience, rejected (by a
check or by the library), dropped by consolidation, or pending (its consolidation failed; the next step decides)."""


class GroupRecord(BaseModel):
    """One problem's group in one step."""

    problem_id: str = Field(description="The problem.")
    rewards: list[float] | None = Field(default=None, description="Reward per attempt (none without grading).")
    kept: bool = Field(default=False, description="Whether the group went on to reflection.")
    proposals: int = Field(default=0, description="Operations it proposed that survived checks.")
    verifier_errors: int = Field(default=0, description="Attempts whose verification failed or timed out (scored 0).")
    reused: bool = Field(default=False, description="Its attempts came from an interrupted run of this step.")
    error: str | None = Field(default=None, description="Why the group failed, if it did.")
    failed_replies: list[str] = Field(
        default_factory=list,
        description="Up to 2 replies of attempts that scored 0, cut to 400 characters: why a model scored 0.",
    )
    tool_calls: list[int] | None = Field(default=None, description="Agent mode: tool calls per attempt.")
    turns: list[int] | None = Field(default=None, description="Agent mode: model replies per attempt.")
    tool_errors: int = Field(default=0, description="Agent mode: tool calls of the group that came back as errors.")


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
    proposal_id: str = Field(default="", description="Stable id of the proposal: step, problem and number.")


class ProposalRecord(BaseModel):
    """The fate of one proposal. Every operation a group proposes ends with exactly one of these."""

    proposal_id: str = Field(description="The proposal (step.problem.number).")
    problem_id: str | None = Field(description="Group that proposed it.")
    operation: Operation | None = Field(description="The operation as proposed (stable ids).")
    disposition: Disposition = Field(description="What became of it.")
    into: str | None = Field(
        default=None, description="Merged: the experience or proposal it went into. Applied: the experience id."
    )
    reason: str | None = Field(default=None, description="Why it was merged, rejected, dropped or is pending.")
    stage: Literal["advantage", "consolidation", "validation", "apply"] = Field(description="Where it was decided.")


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
    proposals: list[ProposalRecord] = Field(
        default_factory=list, description="Every proposal decided in this step (pending ones included), with its fate."
    )
    disposition_counts: dict[str, int] = Field(default_factory=dict, description="Proposals per disposition.")
    retried_requests: int = Field(default=0, description="Requests retried after a transient failure.")
    credit: dict[str, tuple[int, int]] = Field(
        default_factory=dict,
        description="Per experience (stable id): uses in better and worse attempts than their group's mean.",
    )
    groups_recovered: int = Field(
        default=0, description="Groups that had failed in an earlier step (or run) and were finished in this one."
    )
    recovery: bool = Field(
        default=False, description="An extra step after the planned ones: retries failed groups, settles pending."
    )
    validation: ValidationRecord | None = Field(
        default=None, description="What the validation gate measured for the step's planned edits, if it ran."
    )

    # Agent-mode statistics (issue 13), derived from the groups so every builder of a record gets them.
    @computed_field  # type: ignore[prop-decorator]
    @property
    def tool_calls_per_attempt(self) -> float | None:
        """Agent mode: mean tool calls per attempt of the step."""
        counts = [count for group in self.groups for count in group.tool_calls or []]
        return sum(counts) / len(counts) if counts else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def turns_per_attempt(self) -> float | None:
        """Agent mode: mean model replies per attempt of the step."""
        counts = [count for group in self.groups for count in group.turns or []]
        return sum(counts) / len(counts) if counts else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def tool_errors(self) -> int:
        """Agent mode: tool calls of the step that came back as errors."""
        return sum(group.tool_errors for group in self.groups)


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
    status: RunStatus = Field(
        default="succeeded",
        description="succeeded only when every step ran and nothing was lost; incomplete when groups are still "
        "failed or proposals still pending (resume retries them); budget or cancelled when stopped early.",
    )
    failed_groups: list[str] = Field(
        default_factory=list, description="Problems whose groups still failed at the end (retried on resume)."
    )
    failed_consolidations: int = Field(default=0, description="Consolidations that failed during the run.")
    retried_requests: int = Field(default=0, description="Requests retried after a transient failure.")
