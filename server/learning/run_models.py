"""Learning runs as the server keeps and reports them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from debrief.learner.datasets import problem_key
from debrief.learner.events import ProgressEvent
from debrief.learner.records import StepRecord
from debrief.server.learning.gated import KeptVersion
from debrief.server.store.models import Namespace

RunStatus = Literal["queued", "running", "succeeded", "incomplete", "failed", "cancelled", "interrupted"]
"""``incomplete``: every step ran but groups still failed or proposals are still pending (resume retries them)."""
FINISHED: frozenset[str] = frozenset({"succeeded", "incomplete", "failed", "cancelled", "interrupted"})
RESUMABLE: frozenset[str] = frozenset({"incomplete", "failed", "cancelled", "interrupted"})


class ProblemIn(BaseModel):
    """One training problem sent by a client."""

    question: str = Field(min_length=1, max_length=8192, description="The task or question.")
    answer: str | None = Field(default=None, max_length=2048, description="Ground truth, if known.")
    problem_id: str | None = Field(default=None, max_length=200, description="Stable id (default: a hash).")


class RunRequest(BaseModel):
    """What a learning run is asked to do."""

    namespace: Namespace
    problems: list[ProblemIn] | None = Field(
        default=None, min_length=1, max_length=1000, description="Inline problems."
    )
    data_path: str | None = Field(
        default=None, max_length=4096, description="A JSONL file on the server, under an allowed dataset directory."
    )
    verifier: str = Field(
        default="math",
        max_length=200,
        description="math | exact | numeric[:tol] | regex[:pattern] | judge | module:function",
    )
    epochs: int = Field(default=1, ge=1, le=10)
    group_size: int = Field(default=5, ge=1, le=16, description="Attempts per problem (G).")
    batch_size: int = Field(default=20, ge=1, le=500, description="Problems per learning step.")
    budget_tokens: int | None = Field(default=None, ge=1, description="Stop between steps before exceeding this.")
    budget_usd: float | None = Field(
        default=None, gt=0, allow_inf_nan=False, description="Stop between steps before exceeding this."
    )
    model: str | None = Field(default=None, max_length=200, description="A model from the server's allow-list.")
    seed: int = Field(default=0, ge=0, le=2**31)
    ground_truth: bool = Field(default=True, description="False: hide answers; the model judges the attempts.")
    validation_problems: list[ProblemIn] | None = Field(
        default=None,
        max_length=1000,
        description="Held-out problems the validation gate tries each planned edit on (or validation_fraction).",
    )
    validation_fraction: float | None = Field(
        default=None, gt=0, lt=1, description="Hold out this share of the problems (seeded) for the validation gate."
    )
    validation_samples: int = Field(default=2, ge=1, le=16, description="Gate: attempts per validation problem.")
    validation_margin: float = Field(
        default=0.0, ge=0, le=1, description="Gate: keep an edit if validation Mean@K drops by at most this."
    )
    keep_best: bool = Field(
        default=False, description="Gate: end on the library version with the best validation Mean@K, not the last."
    )
    agent: bool = Field(
        default=False,
        description="Agent mode: attempts are multi-turn loops calling the tools this server's operator configured.",
    )
    max_turns: int | None = Field(default=None, ge=1, le=100, description="Agent mode: model replies per attempt.")
    # Generation settings (issue 10); None keeps the learner's default.
    max_tokens: int | None = Field(
        default=None, ge=16, le=131_072, description="Completion cap per attempt (default 16,384, fitted to context)."
    )
    top_p: float | None = Field(default=None, gt=0, le=1, description="Nucleus sampling of attempts.")
    temperature: float | None = Field(default=None, ge=0, le=2, description="Sampling temperature of attempts (0.7).")
    placement: Literal["system", "user"] | None = Field(
        default=None, description="Experiences in the system prompt (default) or after the problem in the user turn."
    )
    max_operations: int | None = Field(default=None, ge=1, le=5, description="Most edits one group may propose (1).")
    instructions: str | None = Field(default=None, min_length=1, max_length=4000, description="Policy instructions.")

    @model_validator(mode="after")
    def _one_source(self) -> RunRequest:
        if (self.problems is None) == (self.data_path is None):
            raise ValueError("give either problems or data_path, not both and not neither")
        seen: dict[str, int] = {}
        for number, item in enumerate(self.problems or [], start=1):
            key = item.problem_id or problem_key(item.question)
            if key in seen:
                raise ValueError(
                    f"problem {number} repeats problem {seen[key]} (id {key!r}): give each problem once, with a "
                    "distinct problem_id"
                )
            seen[key] = number
        return self


class RunProgress(BaseModel):
    """Where a run is now: the counters of the learner's last ``ProgressEvent`` (whole run so far)."""

    step: int = Field(default=0, description="The step running or last finished (1-based; 0 before the first).")
    total_steps: int = Field(default=0, description="Steps the run will take over all epochs.")
    attempts_done: int = Field(default=0, description="Attempts sampled so far.")
    attempts_total: int = Field(default=0, description="Attempts the whole run will sample.")
    groups_done: int = Field(default=0, description="Groups of attempts scored so far.")
    groups_kept: int = Field(default=0, description="Of those, groups with mixed results that were reflected on.")
    operations_applied: int = Field(default=0, description="Library operations applied so far.")
    prompt_tokens: int = Field(default=0, description="Prompt tokens billed so far.")
    completion_tokens: int = Field(default=0, description="Completion tokens billed so far.")
    cost_usd: float = Field(default=0.0, description="Cost so far at the server's prices.")
    message: str = Field(default="", description="What the run is doing now.")

    @classmethod
    def of(cls, event: ProgressEvent) -> RunProgress:
        """The progress a learner event reports (every field of this model is a field of the event)."""
        return cls.model_validate({name: getattr(event, name) for name in cls.model_fields})


class RunRecord(BaseModel):
    """A learning run: request, status, progress, per-step records and outcome."""

    run_id: str
    namespace: str
    status: RunStatus
    request: RunRequest | None = Field(
        default=None, description="What a client asked for (runs started over MCP; None for `debrief learn`)."
    )
    command: str | None = Field(
        default=None, description="The `debrief learn` command line that started the run (None over MCP)."
    )
    model: str | None = Field(default=None, description="Model that ran the policy.")
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    progress: RunProgress = Field(default_factory=RunProgress)
    steps: list[StepRecord] = Field(default_factory=list)
    stop_reason: str | None = Field(default=None, description="finished | budget | cancelled, or why it failed.")
    error: str | None = None
    failed_groups: list[str] = Field(
        default_factory=list, description="Problems whose groups still failed at the end (a resume retries them)."
    )
    failed_consolidations: int = Field(default=0, description="Consolidations that failed during the run.")
    retried_requests: int = Field(default=0, description="Model requests retried after a transient failure.")
    version_before: int | None = Field(default=None, description="Library version when the run started.")
    version_after: int | None = Field(default=None, description="Library version when the run ended.")
    budget_tokens: int | None = None
    budget_usd: float | None = None
    owner_pid: int | None = Field(default=None, description="Process that runs it (while queued or running).")
    resumed: int = Field(default=0, description="How many times it was resumed.")
    kept: KeptVersion | None = Field(
        default=None, description="With a validation gate: which library version the run kept (last or best), why."
    )
