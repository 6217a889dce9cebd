"""Learning runs as background jobs: queued, run, persisted, cancelled between steps, resumed after restarts."""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import anyio
from anyio.abc import TaskGroup

from debrief.learner import (
    Backends,
    Problem,
    ProgressEvent,
    make_verifier,
    run_learning,
)
from debrief.learner.validation import ValidationSettings
from debrief.server.backends.mcp_tools import McpServerEntry, agent_tools, load_mcp_servers
from debrief.server.errors import Conflict, InvalidInput
from debrief.server.learning.gated import GatedProblems, gated_problems, keep_version
from debrief.server.learning.leases import RunLease
from debrief.server.learning.problems import check_client_verifier, client_problems, inline_problems
from debrief.server.learning.run_config import request_run_config
from debrief.server.learning.run_models import FINISHED, RESUMABLE, RunProgress, RunRecord, RunRequest
from debrief.server.learning.run_records import new_run_id, now, spent_today
from debrief.server.learning.shared_runs import SharedLease
from debrief.server.learning.spend_ledger import SpendLedger
from debrief.server.learning.storage import run_storage
from debrief.server.learning.verdict import every_group_failed
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
    lease: RunLease | SharedLease | None = None
    """This process's hold on the run: no other process runs it meanwhile (see leases.py)."""
    spent_before: float = 0.0
    """Dollars the run had spent before this process took it (already counted in the spend ledger)."""

    def touch(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()


class RunManager:
    """Starts learning runs in the server's task group and keeps their records under ``<data_dir>/runs``."""

    def __init__(
        self, *, settings: Settings, store: ExperienceStore, provider: BackendProvider, task_group: TaskGroup
    ) -> None:
        self._settings = settings
        self._store = store
        self._provider = provider
        self._tasks = task_group
        self._storage = run_storage(settings, store)  # the data dir's, or the shared Chroma's (storage.py)
        self._book = self._storage.book
        self._ledger = SpendLedger(settings.data_dir, settings.runs.daily_budget_usd)
        self._slots = anyio.CapacityLimiter(settings.runs.max_concurrent)
        self._active: dict[str, _Active] = {}

    # ---- persistence ---------------------------------------------------------------------------------

    def _save(self, record: RunRecord) -> None:
        self._book.save(record)

    def _load(self, run_id: str) -> RunRecord:
        return self._book.load(run_id)

    async def recover(self) -> list[str]:
        """Mark runs whose process is gone as interrupted (after a crash or restart); return their ids."""
        recovered: list[str] = []
        for record in await self.runs():
            if record.status in ("queued", "running") and not self._storage.going_elsewhere(record):
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
            found = []
            for record in self._book.scan():
                active = self._active.get(record.run_id)
                found.append(active.record.model_copy(deep=True) if active else record)
            return found

        records = await anyio.to_thread.run_sync(scan)
        if namespace is not None:
            records = [record for record in records if record.namespace == namespace]
        return sorted(records, key=lambda record: record.created_at, reverse=True)

    async def spent_today(self) -> float:
        """Dollars spent by learning runs started today (UTC), from the command line too."""
        return spent_today(await self.runs())

    # ---- commands ------------------------------------------------------------------------------------

    async def start(self, request: RunRequest) -> RunRecord:
        """Validate ``request``, record the run as queued and start it in the background."""
        model = self._provider.choose_model(request.model)
        problems = await client_problems(self._settings, request.problems, request.data_path)
        check_client_verifier(request.verifier, command="debrief learn")
        self._gated(request, problems)
        self._agent_servers(request)
        # The endpoint answers (or the embedded model starts) before the run is queued, so a wrong URL, key or
        # model fails this call with the cause and the fix instead of a run that fails later.
        checked, endpoint = await self._provider.backends(model)
        budget_tokens = request.budget_tokens or self._settings.runs.budget_tokens
        if budget_tokens > self._settings.runs.max_budget_tokens:
            raise InvalidInput(
                f"budget_tokens {budget_tokens} is over this server's limit of "
                f"{self._settings.runs.max_budget_tokens}: ask for less"
            )
        await self._check_daily_cap()
        run_id = new_run_id()
        record = RunRecord(
            run_id=run_id,
            namespace=request.namespace,
            status="queued",
            request=request,
            model=model or _model_name(endpoint, checked),
            created_at=now(),
            budget_tokens=budget_tokens,
            budget_usd=request.budget_usd,
            owner_pid=os.getpid(),
        )
        lease = await anyio.to_thread.run_sync(lambda: self._storage.lease(run_id).take())
        await anyio.to_thread.run_sync(self._save, record)
        self._launch(record, problems, lease)
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
        if record.request is None:
            raise Conflict(
                f"run {run_id!r} was started by `debrief learn`; continue it with `debrief learn … --resume {run_id}`"
            )
        if record.owner_pid is not None and record.owner_pid != os.getpid() and self._storage.going_elsewhere(record):
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
        problems = await client_problems(self._settings, record.request.problems, record.request.data_path)
        # Two processes may both get this far; the lease lets one through, and the reload catches a resume that
        # finished in between.
        lease = await anyio.to_thread.run_sync(lambda: self._storage.lease(run_id).take())
        try:
            current = await anyio.to_thread.run_sync(self._load, run_id)
        except BaseException:
            lease.release()
            raise
        if current.resumed != record.resumed or current.status != record.status:
            lease.release()
            raise Conflict(f"run {run_id!r} was resumed by another process meanwhile; get_learning_run shows it")
        record.status = "queued"
        record.error = None
        record.stop_reason = None
        record.finished_at = None
        record.owner_pid = os.getpid()
        record.resumed += 1
        await anyio.to_thread.run_sync(self._save, record)
        self._launch(record, problems, lease)
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

    async def _check_daily_cap(self) -> None:
        await anyio.to_thread.run_sync(self._ledger.check)

    def _agent_servers(self, request: RunRequest) -> dict[str, McpServerEntry] | None:
        """The operator's tool servers for an agent-mode run (a client never names servers or commands)."""
        if not request.agent:
            return None
        path = self._settings.runs.agent_mcp_config
        if path is None and not self._settings.runs.agent_code_tool:
            raise InvalidInput(
                "agent mode needs tools and this server has none: its operator sets DEBRIEF_AGENT_MCP_CONFIG (an "
                "mcpServers file) or DEBRIEF_AGENT_CODE_TOOL=true; or start the run without agent"
            )
        return load_mcp_servers(path) if path is not None else None

    @staticmethod
    def _gated(request: RunRequest, problems: Sequence[Problem]) -> GatedProblems:
        """The run's training problems and its validation gate (none unless the request asks for one)."""
        validation = None
        if request.validation_problems is not None:
            validation = inline_problems(request.validation_problems)
        settings = ValidationSettings(
            samples=request.validation_samples, margin=request.validation_margin, keep_best=request.keep_best
        )
        if request.keep_best and validation is None and request.validation_fraction is None:
            raise InvalidInput("keep_best needs validation problems: give validation_problems or validation_fraction")
        return gated_problems(
            problems,
            make_verifier(request.verifier),
            validation=validation,
            fraction=request.validation_fraction,
            settings=settings,
            seed=request.seed,
        )

    def _launch(
        self, record: RunRecord, problems: Sequence[Problem], lease: RunLease | SharedLease | None = None
    ) -> None:
        active = _Active(record=record, lease=lease, spent_before=record.progress.cost_usd)
        self._active[record.run_id] = active
        self._tasks.start_soon(self._execute, active, list(problems), name=record.run_id)

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
        except Exception as error:  # a run's failure is recorded, never lost
            logger.exception("learning run %s failed", record.run_id)
            record.status = "failed"
            record.error = _describe(error)
            record.stop_reason = "failed"
        finally:
            with anyio.CancelScope(shield=True):
                if record.status in ("queued", "running"):
                    record.status = "interrupted"
                record.finished_at = now()
                record.owner_pid = None
                record.version_after = await self._store.version(record.namespace)
                await anyio.to_thread.run_sync(self._save, record)
                spent = record.progress.cost_usd - active.spent_before
                await anyio.to_thread.run_sync(self._ledger.release, record.run_id, spent)
                self._active.pop(record.run_id, None)
                if active.lease is not None:
                    await anyio.to_thread.run_sync(active.lease.release)
                active.touch()

    async def _run(self, active: _Active, problems: list[Problem]) -> None:
        record = active.record
        request = record.request
        assert request is not None, "only runs started over MCP run here"
        # Today's cap holds across runs and processes: the run holds its share of it in the ledger while it runs.
        # A run without a dollar budget holds what its token budget can cost, not the whole cap, so runs started
        # together share the day's cap instead of the first one taking all of it.
        price = max(self._settings.prices.input_per_million, self._settings.prices.output_per_million) / 1e6
        used = record.progress.prompt_tokens + record.progress.completion_tokens
        by_tokens = max(record.budget_tokens - used, 0) * price if record.budget_tokens is not None and price else None
        wanted = by_tokens if record.budget_usd is None else max(record.budget_usd - active.spent_before, 0.0)
        grant = await anyio.to_thread.run_sync(self._ledger.reserve, record.run_id, wanted)
        backends, endpoint = await self._provider.backends(record.model)
        record.model = record.model or _model_name(endpoint, backends)
        record.status = "running"
        record.started_at = record.started_at or now()
        if record.version_before is None:
            record.version_before = await self._store.version(record.namespace)
        await anyio.to_thread.run_sync(self._save, record)
        active.touch()
        gated = self._gated(request, problems)
        config = request_run_config(
            self._settings,
            request,
            run_id=record.run_id,
            budget_tokens=record.budget_tokens,
            budget_usd=None if grant.budget_usd is None else active.spent_before + grant.budget_usd,
            embedded=bool(getattr(endpoint, "local", False)),
        )

        def on_event(event: ProgressEvent) -> None:
            record.progress = RunProgress.of(event)
            active.touch()

        # Agent mode: the operator's tool servers start once for the run and stop after it.
        servers = self._agent_servers(request)
        async with agent_tools(servers, code_tool=request.agent and self._settings.runs.agent_code_tool) as tools:
            report = await run_learning(
                config,
                backends=replace(backends, tools=tools),
                library=StoreLibrary(self._store, record.namespace),
                problems=gated.train,
                verifier=make_verifier(request.verifier),
                gate=gated.gate,
                checkpoint=self._storage.checkpoint(
                    record.run_id, active.lease, lambda: active.record, self._save, active.touch
                ),
                on_event=on_event,
                cancel=active.cancel,
            )
        record.steps = report.steps
        if gated.gate is not None and report.stop_reason != "cancelled":
            record.kept = await keep_version(
                self._store,
                record.namespace,
                report.steps,
                version_before=record.version_before or 0,
                keep_best=request.keep_best,
                run_id=record.run_id,
            )
        record.stop_reason = report.stop_reason
        record.error = report.stop_detail if report.stop_reason == "budget" else None
        record.status = "cancelled" if report.stop_reason == "cancelled" else "succeeded"
        if report.status == "incomplete":
            record.status = "incomplete"  # groups still failed or proposals still pending: nothing is hidden
        record.failed_groups = report.failed_groups
        record.failed_consolidations = report.failed_consolidations
        record.retried_requests = report.retried_requests
        if (failure := every_group_failed(report)) is not None:
            record.status, record.error = "failed", failure  # ran to the end, but nothing got through
        record.progress.prompt_tokens = report.total.prompt_tokens
        record.progress.completion_tokens = report.total.completion_tokens
        record.progress.cost_usd = report.total.cost_usd


def _model_name(endpoint: object, backends: Backends) -> str | None:
    """The model that answers: the endpoint's (the embedded model's too), else the policy backend's."""
    for source in (endpoint, backends.policy):
        name = getattr(source, "model", None)
        if isinstance(name, str):
            return name
    return None


def _describe(error: BaseException) -> str:
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(_describe(inner) for inner in error.exceptions)
    return f"{type(error).__name__}: {error}"
