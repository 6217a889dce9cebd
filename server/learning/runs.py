"""Learning runs as background jobs: queued, run, persisted, cancelled between steps, resumed after restarts."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import anyio
from anyio.abc import TaskGroup

from debrief.learner import (
    Backends,
    DirectoryCheckpoint,
    LearnerError,
    Problem,
    ProgressEvent,
    RunState,
    load_jsonl,
    make_verifier,
    run_learning,
)
from debrief.learner.datasets import problem_key
from debrief.server.errors import Conflict, InvalidInput, NotFound
from debrief.server.learning.run_config import request_run_config
from debrief.server.learning.run_models import FINISHED, RESUMABLE, RunProgress, RunRecord, RunRequest
from debrief.server.settings import Settings
from debrief.server.store.experience_store import ExperienceStore
from debrief.server.store.learner_library import StoreLibrary

logger = logging.getLogger(__name__)
PROGRESS_HEARTBEAT_SECONDS = 10
"""wait() reports progress at least this often, changed or not."""


class BackendProvider(Protocol):
    """Where learning runs get their chat backends (the model seam)."""

    def choose_model(self, requested: str | None) -> str | None:
        """Check a client's model choice against the allow-list."""
        ...

    async def backends(self, model: str | None = None) -> tuple[Backends, object]:
        """Backends for ``model`` (``None``: the default)."""
        ...


@dataclass(eq=False)
class _Active:
    record: RunRecord
    cancel: anyio.Event = field(default_factory=anyio.Event)
    changed: anyio.Event = field(default_factory=anyio.Event)
    queue: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    """Cancelled to take a queued run out of the queue at once."""

    def touch(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()


class _RecordingCheckpoint(DirectoryCheckpoint):
    """The run's checkpoint directory, also copying finished step records into the live run record."""

    def __init__(self, directory: Path, active: _Active, persist: Callable[[RunRecord], None]) -> None:
        super().__init__(directory)
        self._active = active
        self._persist = persist

    async def load(self) -> RunState | None:
        state = await super().load()
        if state is not None:
            self._active.record.steps = list(state.steps)
        return state

    async def save(self, state: RunState) -> None:
        await super().save(state)
        if len(state.steps) != len(self._active.record.steps):
            self._active.record.steps = list(state.steps)
            # Other processes on this data dir read the record file: keep it current at step boundaries.
            await anyio.to_thread.run_sync(self._persist, self._active.record.model_copy(deep=True))
            self._active.touch()


def _now() -> datetime:
    return datetime.now(UTC)


def _pid_alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunManager:
    """Starts learning runs in the server's task group and keeps their records under ``<data_dir>/runs``."""

    def __init__(
        self, *, settings: Settings, store: ExperienceStore, provider: BackendProvider, task_group: TaskGroup
    ) -> None:
        self._settings = settings
        self._store = store
        self._provider = provider
        self._tasks = task_group
        self._root = settings.data_dir / "runs"
        self._slots = anyio.CapacityLimiter(settings.runs.max_concurrent)
        self._active: dict[str, _Active] = {}

    # ---- persistence ---------------------------------------------------------------------------------

    def _dir(self, run_id: str) -> Path:
        if not run_id.startswith("run-") or not run_id[4:].isalnum() or len(run_id) > 40:
            raise InvalidInput(f"run id {run_id!r} is not valid: ids look like 'run-1a2b3c4d5e6f'")
        return self._root / run_id

    def _save(self, record: RunRecord) -> None:
        directory = self._dir(record.run_id)
        directory.mkdir(parents=True, exist_ok=True)
        temporary = directory / "record.json.tmp"
        temporary.write_text(record.model_dump_json(indent=1), encoding="utf-8")
        os.replace(temporary, directory / "record.json")

    def _load(self, run_id: str) -> RunRecord:
        path = self._dir(run_id) / "record.json"
        if not path.exists():
            raise NotFound(f"there is no learning run {run_id!r}; list_learning_runs shows the known ones")
        return RunRecord.model_validate_json(path.read_text(encoding="utf-8"))

    async def recover(self) -> list[str]:
        """Mark runs whose process is gone as interrupted (after a crash or restart); return their ids."""
        recovered: list[str] = []
        for record in await self.runs():
            if record.status in ("queued", "running") and not _pid_alive(record.owner_pid):
                record.status = "interrupted"
                record.stop_reason = "the server stopped while the run was going; resume_learning_run continues it"
                record.owner_pid = None
                self._save(record)
                recovered.append(record.run_id)
        return recovered

    # ---- queries -------------------------------------------------------------------------------------

    async def get(self, run_id: str) -> RunRecord:
        """The run's current record."""
        active = self._active.get(run_id)
        if active is not None:
            return active.record.model_copy(deep=True)
        return await anyio.to_thread.run_sync(self._load, run_id)

    async def runs(self, namespace: str | None = None) -> list[RunRecord]:
        """Every known run, newest first, optionally of one namespace."""

        def scan() -> list[RunRecord]:
            if not self._root.exists():
                return []
            found = []
            for path in self._root.glob("run-*/record.json"):
                record = RunRecord.model_validate_json(path.read_text(encoding="utf-8"))
                active = self._active.get(record.run_id)
                found.append(active.record.model_copy(deep=True) if active else record)
            return found

        records = await anyio.to_thread.run_sync(scan)
        if namespace is not None:
            records = [record for record in records if record.namespace == namespace]
        return sorted(records, key=lambda record: record.created_at, reverse=True)

    async def spent_today(self) -> float:
        """Dollars spent by learning runs started today (UTC)."""
        today = _now().date()
        return sum(
            record.progress.cost_usd
            for record in await self.runs()
            if record.started_at is not None and record.started_at.date() == today
        )

    # ---- commands ------------------------------------------------------------------------------------

    async def start(self, request: RunRequest) -> RunRecord:
        """Validate ``request``, record the run as queued and start it in the background."""
        model = self._provider.choose_model(request.model)
        problems = await self._problems(request)
        self._check_verifier(request.verifier)
        budget_tokens = request.budget_tokens or self._settings.runs.budget_tokens
        if budget_tokens > self._settings.runs.max_budget_tokens:
            raise InvalidInput(
                f"budget_tokens {budget_tokens} is over this server's limit of "
                f"{self._settings.runs.max_budget_tokens}: ask for less"
            )
        await self._check_daily_cap()
        run_id = f"run-{secrets.token_hex(6)}"
        record = RunRecord(
            run_id=run_id,
            namespace=request.namespace,
            status="queued",
            request=request,
            model=model,
            created_at=_now(),
            budget_tokens=budget_tokens,
            budget_usd=request.budget_usd,
            owner_pid=os.getpid(),
        )
        await anyio.to_thread.run_sync(self._save, record)
        self._launch(record, problems)
        return record.model_copy(deep=True)

    async def resume(
        self, run_id: str, *, budget_tokens: int | None = None, budget_usd: float | None = None
    ) -> RunRecord:
        """Continue an interrupted, failed, cancelled or budget-stopped run from its last finished step.

        New budgets replace the old ones (they cover the whole run, steps already done included).
        """
        if run_id in self._active:
            raise Conflict(f"run {run_id!r} is still going; wait for it or cancel it first")
        record = await anyio.to_thread.run_sync(self._load, run_id)
        if record.status not in RESUMABLE and record.stop_reason != "budget":
            raise Conflict(
                f"run {run_id!r} is {record.status!r}; only interrupted, failed, cancelled or budget-stopped runs "
                "can be resumed"
            )
        if record.owner_pid is not None and record.owner_pid != os.getpid() and _pid_alive(record.owner_pid):
            raise Conflict(f"run {run_id!r} belongs to the running process {record.owner_pid}; resume it there")
        if budget_tokens is not None:
            if budget_tokens > self._settings.runs.max_budget_tokens:
                raise InvalidInput(
                    f"budget_tokens {budget_tokens} is over this server's limit of "
                    f"{self._settings.runs.max_budget_tokens}: ask for less"
                )
            record.budget_tokens = budget_tokens
        if budget_usd is not None:
            record.budget_usd = budget_usd
        await self._check_daily_cap()
        problems = await self._problems(record.request)
        record.status = "queued"
        record.error = None
        record.stop_reason = None
        record.finished_at = None
        record.owner_pid = os.getpid()
        record.resumed += 1
        await anyio.to_thread.run_sync(self._save, record)
        self._launch(record, problems)
        return record.model_copy(deep=True)

    async def cancel(self, run_id: str) -> RunRecord:
        """Ask a run to stop at its next step boundary (a queued run stops at once)."""
        active = self._active.get(run_id)
        if active is None:
            record = await anyio.to_thread.run_sync(self._load, run_id)
            if record.status in FINISHED:
                return record
            raise Conflict(f"run {run_id!r} is not going in this server process; it cannot be cancelled from here")
        active.cancel.set()
        if active.record.status == "queued":
            active.queue.cancel()
        active.record.progress.message = "cancelling: the run stops after the current step"
        active.touch()
        return active.record.model_copy(deep=True)

    async def wait(
        self,
        run_id: str,
        *,
        timeout: float,
        on_progress: Callable[[RunRecord], Awaitable[None]] | None = None,
    ) -> RunRecord:
        """Wait until the run finishes or ``timeout`` seconds pass, reporting each change of progress."""
        with anyio.move_on_after(timeout):
            while True:
                active = self._active.get(run_id)
                if active is None:
                    break
                changed = active.changed
                if on_progress is not None:
                    await on_progress(active.record.model_copy(deep=True))
                # A heartbeat when nothing changes (one slow model call): clients drop calls that go quiet.
                with anyio.move_on_after(PROGRESS_HEARTBEAT_SECONDS):
                    await changed.wait()
        return await self.get(run_id)

    # ---- running -------------------------------------------------------------------------------------

    @staticmethod
    def _check_verifier(spec: str) -> None:
        kind = spec.split(":", 1)[0]
        if kind not in ("math", "exact", "numeric", "regex", "judge"):
            raise InvalidInput(
                f"verifier {spec!r} is not available to clients: use math, exact, numeric[:tol], regex[:pattern] "
                "or judge (custom module:function verifiers run only from the `debrief learn` command line)"
            )
        try:
            make_verifier(spec)
        except LearnerError as error:
            raise InvalidInput(f"verifier {spec!r} is not usable: {error}") from error

    async def _check_daily_cap(self) -> None:
        cap = self._settings.runs.daily_budget_usd
        if cap is not None and await self.spent_today() >= cap:
            raise Conflict(
                f"today's learning budget of ${cap:.2f} (DEBRIEF_DAILY_BUDGET_USD) is spent; try again tomorrow "
                "(UTC) or raise the cap"
            )

    async def _problems(self, request: RunRequest) -> list[Problem]:
        if request.problems is not None:
            return [
                Problem(
                    problem_id=item.problem_id or problem_key(item.question),
                    question=item.question,
                    answer=item.answer,
                )
                for item in request.problems
            ]
        assert request.data_path is not None
        path = Path(request.data_path).expanduser().resolve()
        roots = [root.expanduser().resolve() for root in self._settings.dataset_roots()]
        if not any(path.is_relative_to(root) for root in roots):
            listed = ", ".join(repr(str(root)) for root in roots)
            raise InvalidInput(
                f"data_path {request.data_path!r} is outside the allowed dataset directories ({listed}); "
                "put the file there or add its directory to DEBRIEF_DATASET_DIRS"
            )
        if not path.is_file():
            raise InvalidInput(f"data_path {request.data_path!r} is not a file")
        try:
            problems = await anyio.to_thread.run_sync(load_jsonl, path)
        except LearnerError as error:
            raise InvalidInput(f"data_path {request.data_path!r}: {error}") from error
        except (UnicodeDecodeError, OSError) as error:
            raise InvalidInput(
                f"data_path {request.data_path!r} cannot be read as UTF-8 JSON lines: {type(error).__name__}: {error}"
            ) from error
        except (UnicodeDecodeError, OSError) as error:
            raise InvalidInput(
                f"data_path {request.data_path!r} cannot be read as UTF-8 JSON lines: {type(error).__name__}: {error}"
            ) from error
        if len(problems) > 10_000:
            raise InvalidInput(f"data_path {request.data_path!r} has {len(problems)} problems; at most 10000")
        return problems

    def _launch(self, record: RunRecord, problems: Sequence[Problem]) -> None:
        active = _Active(record=record)
        self._active[record.run_id] = active
        self._tasks.start_soon(self._execute, active, list(problems), name=record.run_id)

    def _budget_usd(self, record: RunRecord, spent_today: float) -> float | None:
        cap = self._settings.runs.daily_budget_usd
        if cap is None:
            return record.budget_usd
        remaining = max(cap - spent_today, 1e-9)
        return remaining if record.budget_usd is None else min(record.budget_usd, remaining)

    async def _execute(self, active: _Active, problems: list[Problem]) -> None:
        record = active.record
        try:
            with active.queue:
                await self._slots.acquire_on_behalf_of(active)
            if active.queue.cancel_called:
                record.status = "cancelled"
                record.stop_reason = "cancelled"
                return
            try:
                await self._run(active, problems)
            finally:
                self._slots.release_on_behalf_of(active)
        except anyio.get_cancelled_exc_class():
            record.status = "interrupted"
            record.stop_reason = "the server stopped while the run was going; resume_learning_run continues it"
            raise
        except Exception as error:  # noqa: BLE001 - a run's failure is recorded, never lost
            logger.exception("learning run %s failed", record.run_id)
            record.status = "failed"
            record.error = _describe(error)
            record.stop_reason = "failed"
        finally:
            with anyio.CancelScope(shield=True):
                if record.status in ("queued", "running"):
                    record.status = "interrupted"
                record.finished_at = _now()
                record.owner_pid = None
                record.version_after = await self._store.version(record.namespace)
                await anyio.to_thread.run_sync(self._save, record)
                self._active.pop(record.run_id, None)
                active.touch()

    async def _run(self, active: _Active, problems: list[Problem]) -> None:
        record = active.record
        request = record.request
        spent = await self.spent_today() - record.progress.cost_usd
        backends, _endpoint = await self._provider.backends(record.model)
        record.status = "running"
        record.started_at = record.started_at or _now()
        if record.version_before is None:
            record.version_before = await self._store.version(record.namespace)
        await anyio.to_thread.run_sync(self._save, record)
        active.touch()
        config = request_run_config(
            self._settings,
            request,
            run_id=record.run_id,
            budget_tokens=record.budget_tokens,
            budget_usd=self._budget_usd(record, spent),
        )

        def on_event(event: ProgressEvent) -> None:
            record.progress = RunProgress.of(event)
            active.touch()

        report = await run_learning(
            config,
            backends=backends,
            library=StoreLibrary(self._store, record.namespace),
            problems=problems,
            verifier=make_verifier(request.verifier),
            checkpoint=_RecordingCheckpoint(self._dir(record.run_id) / "checkpoint", active, self._save),
            on_event=on_event,
            cancel=active.cancel,
        )
        record.steps = report.steps
        record.stop_reason = report.stop_reason
        record.error = report.stop_detail if report.stop_reason == "budget" else None
        record.status = "cancelled" if report.stop_reason == "cancelled" else "succeeded"
        record.progress.prompt_tokens = report.total.prompt_tokens
        record.progress.completion_tokens = report.total.completion_tokens
        record.progress.cost_usd = report.total.cost_usd


def _describe(error: BaseException) -> str:
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(_describe(inner) for inner in error.exceptions)
    return f"{type(error).__name__}: {error}"
