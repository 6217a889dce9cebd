"""Resume state of a run, and where it is kept: a protocol the server implements, and a directory-based one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

import anyio
from pydantic import BaseModel, Field

from debrief.learner.accounting import TokenCount
from debrief.learner.agent import AttemptStats
from debrief.learner.library import Provenance
from debrief.learner.operations import Operation
from debrief.learner.records import Proposal, StepRecord


class RolloutRecord(BaseModel):
    """A finished, paid-for group of attempts of the step in progress."""

    responses: list[str]
    tokens: TokenCount
    trajectories: list[str] | None = Field(default=None, description="Agent mode: each attempt whole, for reflection.")
    attempt_stats: list[AttemptStats] | None = Field(default=None, description="Agent mode: each attempt's counts.")


class ApplyingStep(BaseModel):
    """A step whose plan was about to be applied: enough to finish it after a crash without redoing its calls."""

    step: int
    operations: list[Operation] = Field(description="The consolidated plan, with stable ids.")
    provenance: Provenance
    reason: str
    entries_digest: str = Field(description="Digest of the library's entries just before the apply.")
    record: StepRecord = Field(description="The step's record as it stood before the apply.")
    origins: list[str | None] = Field(
        default_factory=list, description="Per operation, the proposal it carries (None: consolidation's own edit)."
    )


class RunState(BaseModel):
    """Everything needed to continue a run from its last finished step."""

    run_id: str
    config: dict[str, Any] = Field(description="The run's RunConfig.resume_key(): a resumed run must match it.")
    next_step: int = Field(default=0, description="First step not finished.")
    steps: list[StepRecord] = Field(default_factory=list, description="Records of the finished steps.")
    pending: list[Proposal] = Field(default_factory=list, description="Proposals waiting for a consolidation.")
    rollouts: dict[str, RolloutRecord] = Field(
        default_factory=dict, description="Finished rollouts of step next_step, by problem id."
    )
    step_tokens: dict[str, TokenCount] = Field(
        default_factory=dict, description="Tokens already spent on step next_step, per stage."
    )
    honours_n: dict[str, bool] = Field(default_factory=dict, description="Per role: whether n = G was honoured.")
    structured_modes: dict[str, str] = Field(default_factory=dict, description="Per role: structured mode that worked.")
    applying: ApplyingStep | None = Field(
        default=None, description="Set between saving a step's plan and saving the step as finished."
    )
    finished: bool = Field(default=False, description="Whether every step is done.")
    failed: list[str] = Field(
        default_factory=list, description="Problems whose groups failed; the next step (or a resume) retries them."
    )
    failed_rollouts: dict[str, RolloutRecord] = Field(
        default_factory=dict, description="Paid-for attempts of failed groups, reused when they are retried."
    )
    credit: dict[str, tuple[int, int]] = Field(
        default_factory=dict, description="Per experience, uses in better and worse attempts over the run so far."
    )


class Checkpoint(Protocol):
    """Keeps one run's :class:`RunState`. ``save`` must replace the previous state atomically."""

    async def load(self) -> RunState | None:
        """The saved state, or ``None`` for a new run."""
        ...

    async def save(self, state: RunState) -> None:
        """Replace the saved state."""
        ...


class DirectoryCheckpoint:
    """A :class:`Checkpoint` in ``<directory>/state.json``, replaced atomically on every save."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / "state.json"

    async def load(self) -> RunState | None:
        """The saved state, or ``None`` when there is none yet."""
        return await anyio.to_thread.run_sync(self._load)

    async def save(self, state: RunState) -> None:
        """Write ``state`` to a temporary file and rename it over the old one."""
        await anyio.to_thread.run_sync(self._save, state.model_dump_json())

    def _load(self) -> RunState | None:
        if not self.path.exists():
            return None
        return RunState.model_validate_json(self.path.read_text(encoding="utf-8"))

    def _save(self, text: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        with temporary.open("w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)


class MemoryCheckpoint:
    """A :class:`Checkpoint` in memory: resumable within one process (tests, embedding)."""

    def __init__(self) -> None:
        self.state: RunState | None = None
        self.saves = 0

    async def load(self) -> RunState | None:
        """The last saved state."""
        return None if self.state is None else self.state.model_copy(deep=True)

    async def save(self, state: RunState) -> None:
        """Keep a copy of ``state``."""
        self.saves += 1
        self.state = state.model_copy(deep=True)
