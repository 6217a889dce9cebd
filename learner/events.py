"""Progress events a run emits: the CLI shows them as a progress bar, the server forwards them as MCP progress."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

EventKind = Literal["run_started", "step_started", "attempts", "group_done", "step_finished", "run_finished"]


@dataclass(frozen=True, kw_only=True)
class ProgressEvent:
    """Where a run is. Counts are for the whole run so far; ``attempts_total`` covers every step of the run."""

    kind: EventKind
    run_id: str
    step: int
    total_steps: int
    attempts_done: int
    attempts_total: int
    groups_done: int
    groups_kept: int
    operations_applied: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    message: str = ""
