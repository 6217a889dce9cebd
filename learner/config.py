"""The settings of one learning run."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from debrief.learner.accounting import PriceTable
from debrief.learner.backend import ChatRequest, estimate_tokens
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
    placement: Literal["system", "user"] = Field(
        default="system",
        description="Where experiences go in rollout prompts: the system prompt before the problem (prefix-cache "
        "friendly, as the paper's final agent) or the user turn after the problem with an instruction to read "
        "and apply them first (the paper's learning runs).",
    )
    max_completion_tokens: int | None = Field(
        default=16_384, ge=1, description="Completion cap per attempt (paper: 16,384), lowered to fit context_tokens."
    )
    reflect_max_tokens: int | None = Field(
        default=16_384, ge=1, description="Completion cap of summary, advantage, consolidation and judge calls."
    )
    context_tokens: int | None = Field(
        default=None,
        ge=256,
        description="The models' context window in tokens, if known: caps max_tokens to what fits after the "
        "prompt, and sizes the attempt text one reflection call reads.",
    )
    top_p: float | None = Field(default=None, gt=0, le=1, description="Nucleus sampling of attempts (None: server).")
    eval_temperature: float = Field(default=0.3, ge=0, le=2, description="Sampling temperature when evaluating.")
    eval_top_p: float | None = Field(default=0.95, gt=0, le=1, description="Nucleus sampling when evaluating.")
    trajectory_token_budget: int = Field(
        default=12_000,
        ge=50,
        description="Attempt text one reflection call reads, in estimated tokens: longer attempts are summarized in "
        "consecutive chunks (never cut), and a group is read whole by the advantage stage when it fits.",
    )
    reflection_input: Literal["auto", "summaries"] = Field(
        default="auto",
        description="auto: the advantage stage reads a group's attempts whole when they fit the trajectory token "
        "budget and summarizes only groups that do not; summaries: always summarize each attempt first (the "
        "paper's pipeline).",
    )
    concurrency: int = Field(
        default=128,
        ge=1,
        description="Most requests in flight per endpoint. The limit starts here and adapts: halved on 429/503, "
        "grown back while the endpoint is healthy.",
    )
    reflect_concurrency: int | None = Field(
        default=None,
        ge=1,
        description="Most requests in flight to the reflection (and judge) endpoint when it is a different one; "
        "None: the same as concurrency.",
    )
    adaptive_concurrency: bool = Field(
        default=True, description="Adapt the in-flight limit to 429/503 (AIMD); off pins it at concurrency."
    )
    request_timeout: float = Field(
        default=600.0, gt=0, description="Seconds one request may take; a timeout is retried like a 5xx."
    )
    max_retries: int = Field(
        default=6, ge=0, description="Retries of a transient failure (5xx, 408/409/429, timeout, connection error)."
    )
    retry_backoff: float = Field(
        default=0.5, ge=0, description="First wait before a retry, in seconds; doubled per retry (Retry-After wins)."
    )
    verifier_timeout: float = Field(default=30.0, gt=0, description="Seconds one verification may take.")
    max_reasks: int = Field(default=2, ge=0, description="Re-asks after an invalid structured reply.")
    budget_tokens: int | None = Field(
        default=None, ge=1, description="Token budget: every request reserves its worst case before it is sent."
    )
    budget_usd: float | None = Field(
        default=None, gt=0, description="Dollar budget: every request reserves its worst case before it is sent."
    )
    prices: PriceTable = Field(default_factory=PriceTable, description="Prices used for the cost figures.")
    schedule: Literal["pipelined", "barrier"] = Field(
        default="pipelined",
        description="pipelined moves each group on as soon as its attempts are done; barrier makes every stage "
        "wait for the whole batch (the official code's schedule, kept for comparison).",
    )
    # Agent mode (issue 13): attempts are multi-turn loops that may call the run's tools.
    agent: bool = Field(
        default=False, description="Attempts are multi-turn loops calling tools (code, MCP servers) until they answer."
    )
    max_turns: int = Field(default=50, ge=1, le=500, description="Most model replies one agent attempt may take.")
    agent_timeout: float = Field(default=600.0, gt=0, description="Seconds one agent attempt may take.")
    tool_result_chars: int = Field(
        default=4000, ge=100, description="Characters of each tool result the model and reflection see (cut beyond)."
    )

    def resume_key(self) -> dict[str, object]:
        """The fields a resumed run must share with the run it continues."""
        return self.model_dump(
            mode="json",
            exclude={
                "run_id",
                "concurrency",
                "reflect_concurrency",
                "adaptive_concurrency",
                "request_timeout",
                "max_retries",
                "retry_backoff",
                "budget_tokens",
                "budget_usd",
                "prices",
                "schedule",
            },
        )


def fit_completion(request: ChatRequest, context_tokens: int | None) -> int | None:
    """``request.max_tokens`` lowered so that prompt plus completion fit ``context_tokens`` (if known)."""
    if context_tokens is None:
        return request.max_tokens
    prompt = sum(estimate_tokens(message.content) for message in request.messages)
    room = max(1, context_tokens - prompt)
    return room if request.max_tokens is None else min(request.max_tokens, room)
