"""Learning-run records under ``<data_dir>/runs/<run_id>/``, whoever drives the run.

The server's ``RunManager`` and ``debrief learn`` keep their runs here the same way (``record.json`` beside the
learner's ``checkpoint/``), so ``list_learning_runs`` and the daily spending cap see every run on the data dir.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

import anyio

from debrief.learner import Checkpoint, DirectoryCheckpoint, ProgressEvent, RunReport, RunState
from debrief.server.errors import Conflict, InvalidInput
from debrief.server.learning.record_book import RecordBook
from debrief.server.learning.run_models import RunProgress, RunRecord


def now() -> datetime:
    """The current time, in UTC."""
    return datetime.now(UTC)


def new_run_id() -> str:
    """A fresh run id such as ``run-1a2b3c4d5e6f``."""
    return f"run-{secrets.token_hex(6)}"


def pid_alive(pid: int | None) -> bool:
    """Whether process ``pid`` still runs."""
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunBook(RecordBook[RunRecord]):
    """The run records in one directory (``<data_dir>/runs``): one sub-directory per run."""

    def __init__(self, root: Path) -> None:
        super().__init__(
            root,
            prefix="run",
            model=RunRecord,
            key=lambda record: record.run_id,
            noun="learning run",
            lister="list_learning_runs",
        )


def spent_today(records: Iterable[RunRecord]) -> float:
    """Dollars spent by the runs among ``records`` that started today (UTC)."""
    today = now().date()
    return sum(
        record.progress.cost_usd
        for record in records
        if record.started_at is not None and record.started_at.date() == today
    )


def check_daily_cap(cap: float | None, spent: float) -> None:
    """Refuse to start or resume a run once today's spending has reached the cap."""
    if cap is not None and spent >= cap:
        raise Conflict(
            f"today's learning budget of ${cap:.2f} (DEBRIEF_DAILY_BUDGET_USD) is spent; try again tomorrow "
            "(UTC) or raise the cap"
        )


def capped_budget_usd(cap: float | None, spent: float, budget_usd: float | None) -> float | None:
    """The run's dollar budget, lowered to what is left of today's cap."""
    if cap is None:
        return budget_usd
    remaining = max(cap - spent, 1e-9)
    return remaining if budget_usd is None else min(budget_usd, remaining)


class RecordingCheckpoint:
    """The run's checkpoint (a directory, or ``inner``), also copying finished steps into the run record."""

    def __init__(
        self,
        directory: Path,
        record: Callable[[], RunRecord],
        persist: Callable[[RunRecord], None],
        on_change: Callable[[], None] = lambda: None,
        *,
        inner: Checkpoint | None = None,
    ) -> None:
        self._inner: Checkpoint = inner if inner is not None else DirectoryCheckpoint(directory)
        self._record = record
        self._persist = persist
        self._on_change = on_change

    async def load(self) -> RunState | None:
        """The saved state; its finished steps go into the record."""
        state = await self._inner.load()
        if state is not None:
            self._record().steps = list(state.steps)
        return state

    async def save(self, state: RunState) -> None:
        """Save the state and, at a step boundary, the record (other processes read it)."""
        await self._inner.save(state)
        record = self._record()
        if len(state.steps) != len(record.steps):
            record.steps = list(state.steps)
            await anyio.to_thread.run_sync(self._persist, record.model_copy(deep=True))
            self._on_change()


class CommandRun:
    """A run this process drives itself (``debrief learn``), recorded as the server records its own runs."""

    def __init__(self, book: RunBook, record: RunRecord) -> None:
        self.book = book
        self.record = record

    @classmethod
    def begin(
        cls,
        book: RunBook,
        *,
        run_id: str,
        namespace: str,
        command: str,
        model: str,
        budget_tokens: int | None,
        budget_usd: float | None,
        version_before: int,
    ) -> CommandRun:
        """Record a new run as running, or take over the stopped run ``run_id`` to resume it."""
        if book.exists(run_id):
            record = book.load(run_id)
            if record.status in ("queued", "running") and pid_alive(record.owner_pid):
                raise Conflict(f"run {run_id!r} is still going in process {record.owner_pid}; wait or cancel it")
            if record.namespace != namespace:
                raise InvalidInput(f"run {run_id!r} learns into {record.namespace!r}, not {namespace!r}")
            record.resumed += 1
            record.error = None
            record.stop_reason = None
            record.finished_at = None
        else:
            record = RunRecord(
                run_id=run_id,
                namespace=namespace,
                status="running",
                command=command,
                model=model,
                created_at=now(),
                version_before=version_before,
            )
        record.status = "running"
        record.started_at = record.started_at or now()
        record.owner_pid = os.getpid()
        record.model = model
        record.budget_tokens = budget_tokens
        record.budget_usd = budget_usd
        book.save(record)
        return cls(book, record)

    def checkpoint(self) -> RecordingCheckpoint:
        """The learner's checkpoint for this run: the record is saved with every finished step."""
        return RecordingCheckpoint(
            self.book.directory(self.record.run_id) / "checkpoint", lambda: self.record, self.book.save
        )

    def progress(self, event: ProgressEvent) -> None:
        """Keep the learner's latest progress in the record (saved with the next step)."""
        self.record.progress = RunProgress.of(event)

    def finish(self, *, report: RunReport | None, error: BaseException | None, version_after: int) -> None:
        """Record how the run ended: its report, or the error or interruption that stopped it."""
        record = self.record
        if report is not None:
            record.steps = report.steps
            record.stop_reason = report.stop_reason
            record.error = report.stop_detail if report.stop_reason == "budget" else None
            record.status = "cancelled" if report.stop_reason == "cancelled" else "succeeded"
            record.progress.prompt_tokens = report.total.prompt_tokens
            record.progress.completion_tokens = report.total.completion_tokens
            record.progress.cost_usd = report.total.cost_usd
        elif not isinstance(error, Exception):  # None, Ctrl-C, cancellation: stopped, not broken
            record.status = "interrupted"
            record.stop_reason = "the command stopped while the run was going; `debrief learn … --resume` continues it"
        else:
            record.status = "failed"
            record.stop_reason = "failed"
            record.error = f"{type(error).__name__}: {error}"
        record.finished_at = now()
        record.owner_pid = None
        record.version_after = version_after
        self.book.save(record)
