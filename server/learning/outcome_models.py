"""Outcomes of real work that clients report, and what reflecting on them did."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from debrief.server.store.models import Change, Experience

ReflectionStatus = Literal["not_mixed", "scheduled", "task_waiting", "applied", "no_change", "skipped", "failed"]


class Outcome(BaseModel):
    """How one real attempt at a task went."""

    outcome_id: str
    namespace: str
    task: str
    task_key: str | None = None
    attempt: str = Field(description="The client's short account of what it did.")
    reward: float | None = Field(
        ge=0,
        le=1,
        description="1 = success, 0 = failure, or a score in between; null = not graded (a turn the Claude Code "
        "stop hook recorded, compared with other attempts at the same task).",
    )
    feedback: str | None = None
    experience_ids_used: list[str] = Field(default_factory=list)
    group_id: str = Field(description="Outcomes on the same task share a group.")
    recorded_at: datetime


class Reflection(BaseModel):
    """What reflecting on a mixed group of outcomes did."""

    group_id: str
    namespace: str
    outcome_ids: list[str]
    status: ReflectionStatus
    version: int | None = Field(default=None, description="Library version the reflection produced.")
    applied: int = 0
    rejected: list[str] = Field(
        default_factory=list, description="Edits the reflection proposed that were refused, each with the reason."
    )
    error: str | None = None
    at: datetime
    reflected_by: Literal["server", "client"] = Field(
        default="server", description="'server': the configured model; 'client': the client's model via a task."
    )
    task_id: str | None = Field(default=None, description="The reflection task the client answered, if any.")


class RecordOutcomeResult(BaseModel):
    """The stored outcome, its group, and whether the group is being learned from."""

    outcome: Outcome
    group_size: int = Field(description="Outcomes in the group not yet reflected on, this one included.")
    reflection: ReflectionStatus = Field(
        description="'not_mixed': the group has no success and failure side by side yet; 'scheduled': it is being "
        "reflected on in the background; 'task_waiting': a reflection task waits for you (see reflection_task_id); "
        "applied/no_change/failed: the result, when wait_seconds was set."
    )
    reflection_version: int | None = Field(default=None, description="Library version the reflection produced.")
    reflection_rejected: list[str] = Field(
        default_factory=list, description="Edits the reflection proposed that were refused, with reasons."
    )
    reflection_task_id: str | None = Field(
        default=None,
        description="A reflection task for this group: when you can, call get_reflection_task, answer it and "
        "submit_reflection, briefly, then carry on with the user's work.",
    )
    counters_updated: list[str] = Field(
        description="Experience ids whose helpful/harmful count was raised (ids that name no experience are not)."
    )


class OutcomePage(BaseModel):
    """A page of outcomes, newest first."""

    items: list[Outcome]
    next_cursor: str | None


class Explanation(BaseModel):
    """An experience with the history of its text and the evidence it came from."""

    experience: Experience
    changes: list[Change] = Field(description="Every recorded change that touched it, oldest first.")
    outcomes: list[Outcome] = Field(description="Recorded outcomes named in those changes' provenance.")
    learning_runs: list[str] = Field(description="Learning runs that changed it (see get_learning_run).")
    flagged: bool = Field(description="True when it has hurt more often than helped (harmful > helpful, >= 2).")
