"""The settings of one learning run."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from debrief.learner.accounting import PriceTable
from debrief.learner.prompts import DEFAULT_INSTRUCTIONS


def new_run_id() -> str:
    """A fresh run id."""
    return uuid.uuid4().hex[:12]


class RunConfig(BaseModel):
    """Everything that shapes a learning run. Defaults follow the paper (G = 5, temperature 0.7, 1 operation)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str = Field(default_factory=new_run_id, description="Id of the run; recorded in provenance.")
    epochs: int = Field(default=3, ge=1, description="Passes over the training problems.")
    batch_size: int = Field(default=100, ge=1, description="Problems per step; one consolidation per batch.")
    group_size: int = Field(default=5, ge=1, description="Attempts per problem (G).")
    rollout_temperature: float = Field(default=0.7, ge=0, le=2, description="Sampling temperature of attempts.")
    extraction_temperature: float = Field(
        default=0.0, ge=0, le=2, description="Temperature of summaries, group advantage, consolidation and judge."
    )
    max_operations: int = Field(default=1, ge=1, description="Most operations one group may propose (paper: 1).")
    seed: int = Field(default=0, description="Seed of the per-epoch shuffle and of sampling seeds.")
    ground_truth: bool = Field(
        default=True,
        description="Grade attempts against the ground truth and keep only mixed groups. Without it every group "
        "is reflected on with grades hidden, and the model judges the attempts.",
    )
    injection: Literal["auto", "all", "retrieve"] = Field(
        default="auto",
        description="Which experiences go into rollout prompts: all of them, the top retrieve_k relevant ones, or "
        "auto (all while the library has at most retrieve_threshold entries).",
    )
    retrieve_threshold: int = Field(default=50, ge=0, description="Library size up to which auto injects all.")
    retrieve_k: int = Field(default=20, ge=1, description="Experiences retrieved per problem when retrieving.")
    instructions: str = Field(default=DEFAULT_INSTRUCTIONS, description="Instructions to the policy.")
    max_completion_tokens: int | None = Field(default=None, ge=1, description="Completion cap per attempt.")
    trajectory_token_budget: int = Field(
        default=2000, ge=50, description="Attempts longer than this (estimated tokens) are cut, the cut marked."
    )
    concurrency: int = Field(default=16, ge=1, description="Requests in flight at once, across all stages.")
    verifier_timeout: float = Field(default=30.0, gt=0, description="Seconds one verification may take.")
    max_reasks: int = Field(default=2, ge=0, description="Re-asks after an invalid structured reply.")
    budget_tokens: int | None = Field(default=None, ge=1, description="Stop between steps before exceeding this.")
    budget_usd: float | None = Field(default=None, gt=0, description="Stop between steps before exceeding this.")
    prices: PriceTable = Field(default_factory=PriceTable, description="Prices used for the cost figures.")
    schedule: Literal["pipelined", "barrier"] = Field(
        default="pipelined",
        description="pipelined moves each group on as soon as its attempts are done; barrier makes every stage "
        "wait for the whole batch (the official code's schedule, kept for comparison).",
    )

    def resume_key(self) -> dict[str, object]:
        """The fields a resumed run must share with the run it continues."""
        return self.model_dump(
            mode="json", exclude={"run_id", "concurrency", "budget_tokens", "budget_usd", "prices", "schedule"}
        )
