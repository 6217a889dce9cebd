"""Evaluations as background jobs: a namespace's library evaluated paired, with controls, outside any tool call.

Mirrors learning runs: queued behind ``runs.max_concurrent`` slots, run in the server's task group, their record
kept under ``<data_dir>/evaluations``, watched with progress, cancelled at once (an evaluation changes nothing, so
stopping it midway loses only the figures).
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import anyio
from anyio.abc import TaskGroup
from pydantic import BaseModel, Field, model_validator

from debrief.learner import LearnerError, Problem, make_verifier
from debrief.learner.controls import ControlName, LibraryEvaluation, evaluate_library
from debrief.learner.evaluation import EVAL_TEMPERATURE, EVAL_TOP_P, EvalProgress
from debrief.server.errors import Conflict, InvalidInput
from debrief.server.learning.problems import check_client_verifier, client_problems
from debrief.server.learning.record_book import RecordBook
from debrief.server.learning.run_config import run_config
from debrief.server.learning.run_models import ProblemIn
from debrief.server.learning.runs import BackendProvider
from debrief.server.settings import Settings
from debrief.server.store.experience_store import ExperienceStore
from debrief.server.store.learner_library import StoreLibrary
from debrief.server.store.models import Namespace

logger = logging.getLogger(__name__)

EvaluationStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "interrupted"]
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "cancelled", "interrupted"})
MAX_ATTEMPTS = 50_000
"""Most attempts (problems x samples x arms) one evaluation may ask for, per-experience effects not counted."""


class EvaluationRequest(BaseModel):
    """What an evaluation is asked to do."""

    namespace: Namespace
    problems: list[ProblemIn] | None = Field(default=None, max_length=1000, description="Inline problems.")
    data_path: str | None = Field(
        default=None, max_length=4096, description="A JSONL file on the server, under an allowed dataset directory."
    )
    verifier: str = Field(default="math", max_length=200, description="math | exact | numeric[:tol] | regex | judge")
    samples: int = Field(default=4, ge=1, le=32, description="Attempts per problem and arm (K).")
    injection: Literal["all", "retrieve"] = Field(
        default="all", description="Show the whole library, or the top k retrieved per problem."
    )
    k: int = Field(default=5, ge=1, le=50, description="Experiences retrieved per problem (injection retrieve).")
    controls: list[ControlName] = Field(
        default_factory=list,
        max_length=4,
        description="whole / retrieved (the other injection), random (same size), tips (written without attempts).",
    )
    random_from: Namespace | None = Field(
        default=None, description="Namespace the random control draws from (default: the library's words shuffled)."
    )
    per_experience: bool = Field(default=False, description="Also measure each experience by leaving it out.")
    max_problems_per_experience: int | None = Field(
        default=None, ge=1, le=1000, description="Bound on problems per experience in the leave-one-out."
    )
    temperature: float = Field(default=EVAL_TEMPERATURE, ge=0, le=2, description="Sampling temperature (paper 0.3).")
    top_p: float = Field(default=EVAL_TOP_P, gt=0, le=1, description="Nucleus sampling (paper 0.95).")
    seed: int = Field(default=0, ge=0, le=2**31, description="Seed of sampling seeds and of the bootstrap.")
    model: str | None = Field(default=None, max_length=200, description="A model from the server's allow-list.")

    @model_validator(mode="after")
    def _one_source(self) -> EvaluationRequest:
        if (self.problems is None) == (self.data_path is None):
            raise ValueError("give either problems or data_path, not both and not neither")
        if len(set(self.controls)) != len(self.controls):
            raise ValueError(f"controls are named twice: {self.controls!r}")
        return self


class EvaluationProgress(BaseModel):
    """Where an evaluation is now."""

    attempts_done: int = 0
    attempts_total: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    message: str = ""


class EvaluationRecord(BaseModel):
    """An evaluation: request, status, progress and, once finished, the figures."""

    evaluation_id: str
    namespace: str
    status: EvaluationStatus
    request: EvaluationRequest
    model: str | None = Field(default=None, description="Model that made the attempts.")
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    progress: EvaluationProgress = Field(default_factory=EvaluationProgress)
    library_version: int | None = Field(default=None, description="Library version evaluated.")
    summary: list[str] = Field(default_factory=list, description="The findings in plain sentences.")
    result: LibraryEvaluation | None = Field(default=None, description="Every figure, once succeeded.")
    error: str | None = None
    owner_pid: int | None = Field(default=None, description="Process that runs it (while queued or running).")


def _interval(values: list[float]) -> str:
    return f"[{values[0]:+.3f}, {values[1]:+.3f}]"


def summary_lines(result: LibraryEvaluation) -> list[str]:
    """The findings in plain sentences: whether the library helps, which controls it beats, the cost."""
    k = result.samples
    delta = result.delta
    plain = {"better": "helps", "worse": "hurts", "inconclusive": "makes no significant difference"}[delta.verdict]
    lines = [
        f"The library {plain}: Mean@{k} {result.without.mean_at_k:.3f} → {result.with_library.mean_at_k:.3f} "
        f"({delta.mean_at_k:+.3f}, 95% CI {_interval(delta.ci95)}, {delta.problems} problems); Pass@{k} "
        f"{result.without.pass_at_k:.3f} → {result.with_library.pass_at_k:.3f}."
    ]
    for control in result.controls:
        verdict = "beats" if control.beaten else "does not beat"
        lines.append(
            f"It {verdict} the {control.name} control ({control.description}): "
            f"{control.comparison.mean_at_k:+.3f}, 95% CI {_interval(control.comparison.ci95)}."
        )
    if result.effects is not None:
        helpful = sum(effect.verdict == "better" for effect in result.effects.effects)
        harmful = sum(effect.verdict == "worse" for effect in result.effects.effects)
        cost = result.effects
        lines.append(
            f"Per experience: {helpful} help, {harmful} hurt, {len(cost.effects) - helpful - harmful} inconclusive; "
            f"{cost.tokens.prompt_tokens + cost.tokens.completion_tokens:,} tokens (estimated before: at most "
            f"{cost.tokens_estimate:,}), {cost.attempts_made} of at most {cost.attempts_planned} attempts."
        )
    total = result.tokens
    lines.append(
        f"Cost: {total.prompt_tokens:,} prompt + {total.completion_tokens:,} completion tokens, {total.requests} "
        f"requests, ${total.cost_usd:.4f}, {result.wall_seconds:.1f}s. Intervals: {result.method}."
    )
    return lines


@dataclass(eq=False)
class _Active:
    record: EvaluationRecord
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    changed: anyio.Event = field(default_factory=anyio.Event)

    def touch(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()


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


class EvaluationManager:
    """Starts evaluations in the server's task group and keeps their records under ``<data_dir>/evaluations``."""

    def __init__(
        self, *, settings: Settings, store: ExperienceStore, provider: BackendProvider, task_group: TaskGroup
    ) -> None:
        self._settings = settings
        self._store = store
        self._provider = provider
        self._tasks = task_group
        self._book: RecordBook[EvaluationRecord] = RecordBook(
            settings.data_dir / "evaluations",
            prefix="eval",
            model=EvaluationRecord,
            key=lambda record: record.evaluation_id,
            noun="evaluation",
            lister="list_evaluations",
        )
        self._slots = anyio.CapacityLimiter(settings.runs.max_concurrent)
        self._active: dict[str, _Active] = {}

    # ---- persistence -------------------------------------------------------------------------------------------

    async def recover(self) -> list[str]:
        """Mark evaluations whose process is gone as interrupted; return their ids."""
        recovered = []
        for record in await self.evaluations():
            if record.status in ("queued", "running") and not _pid_alive(record.owner_pid):
                record.status = "interrupted"
                record.error = "the server stopped while the evaluation was going; start it again"
                record.owner_pid = None
                await anyio.to_thread.run_sync(self._book.save, record)
                recovered.append(record.evaluation_id)
        return recovered

    # ---- queries -----------------------------------------------------------------------------------------------

    async def get(self, evaluation_id: str) -> EvaluationRecord:
        """The evaluation's current record."""
        active = self._active.get(evaluation_id)
        if active is not None:
            return active.record.model_copy(deep=True)
        return await anyio.to_thread.run_sync(self._book.load, evaluation_id)

    async def evaluations(self, namespace: str | None = None) -> list[EvaluationRecord]:
        """Every known evaluation, newest first, optionally of one namespace."""

        def scan() -> list[EvaluationRecord]:
            found = []
            for record in self._book.scan():
                active = self._active.get(record.evaluation_id)
                found.append(active.record.model_copy(deep=True) if active else record)
            return found

        records = await anyio.to_thread.run_sync(scan)
        if namespace is not None:
            records = [record for record in records if record.namespace == namespace]
        return sorted(records, key=lambda record: record.created_at, reverse=True)

    # ---- commands ----------------------------------------------------------------------------------------------

    async def start(self, request: EvaluationRequest) -> EvaluationRecord:
        """Check ``request``, record the evaluation as queued and start it in the background."""
        model = self._provider.choose_model(request.model)
        problems = await client_problems(self._settings, request.problems, request.data_path)
        check_client_verifier(request.verifier, command="debrief eval")
        attempts = len(problems) * request.samples * (2 + len(request.controls))
        if attempts > MAX_ATTEMPTS:
            raise InvalidInput(
                f"this evaluation asks for {attempts} attempts ({len(problems)} problems x {request.samples} samples "
                f"x {2 + len(request.controls)} arms); at most {MAX_ATTEMPTS}: use fewer problems, samples or controls"
            )
        if await self._store.version(request.namespace) == 0:
            raise InvalidInput(f"namespace {request.namespace!r} has no library yet: there is nothing to evaluate")
        record = EvaluationRecord(
            evaluation_id=f"eval-{secrets.token_hex(6)}",
            namespace=request.namespace,
            status="queued",
            request=request,
            model=model,
            created_at=_now(),
            owner_pid=os.getpid(),
        )
        await anyio.to_thread.run_sync(self._book.save, record)
        active = _Active(record=record)
        self._active[record.evaluation_id] = active
        self._tasks.start_soon(self._execute, active, problems, name=record.evaluation_id)
        return record.model_copy(deep=True)

    async def cancel(self, evaluation_id: str) -> EvaluationRecord:
        """Stop an evaluation at once (it changes nothing, so nothing is left half-done)."""
        active = self._active.get(evaluation_id)
        if active is None:
            record = await anyio.to_thread.run_sync(self._book.load, evaluation_id)
            if record.status in FINISHED:
                return record
            raise Conflict(f"evaluation {evaluation_id!r} is not going in this server process; it cannot be cancelled")
        active.record.progress.message = "cancelling"
        active.scope.cancel()
        active.touch()
        return active.record.model_copy(deep=True)

    async def wait(
        self,
        evaluation_id: str,
        *,
        timeout: float,
        on_progress: Callable[[EvaluationRecord], Awaitable[None]] | None = None,
    ) -> EvaluationRecord:
        """Wait until the evaluation finishes or ``timeout`` seconds pass, reporting each change of progress."""
        await self.get(evaluation_id)
        with anyio.move_on_after(timeout):
            while True:
                active = self._active.get(evaluation_id)
                if active is None:
                    break
                changed = active.changed
                if on_progress is not None:
                    await on_progress(active.record.model_copy(deep=True))
                await changed.wait()
        return await self.get(evaluation_id)

    # ---- running -----------------------------------------------------------------------------------------------

    async def _execute(self, active: _Active, problems: list[Problem]) -> None:
        record = active.record
        try:
            with active.scope:
                async with self._slots:
                    await self._run(active, problems)
            if active.scope.cancelled_caught:
                record.status = "cancelled"
                record.progress.message = "cancelled"
        except anyio.get_cancelled_exc_class():
            record.status = "interrupted"
            record.error = "the server stopped while the evaluation was going; start it again"
            raise
        except Exception as error:  # an evaluation's failure is recorded, never lost
            logger.exception("evaluation %s failed", record.evaluation_id)
            record.status = "failed"
            record.error = f"{type(error).__name__}: {error}"
        finally:
            with anyio.CancelScope(shield=True):
                if record.status in ("queued", "running"):
                    record.status = "interrupted"
                record.finished_at = _now()
                record.owner_pid = None
                await anyio.to_thread.run_sync(self._book.save, record)
                self._active.pop(record.evaluation_id, None)
                active.touch()

    async def _run(self, active: _Active, problems: list[Problem]) -> None:
        record = active.record
        request = record.request
        backends, _endpoint = await self._provider.backends(record.model)
        record.status = "running"
        record.started_at = _now()
        record.library_version = await self._store.version(record.namespace)
        await anyio.to_thread.run_sync(self._book.save, record)
        active.touch()
        pool = None
        if request.random_from is not None:
            pool = list(await StoreLibrary(self._store, request.random_from).entries())

        def on_progress(event: EvalProgress) -> None:
            record.progress = EvaluationProgress(
                attempts_done=event.attempts_done,
                attempts_total=event.attempts_total,
                prompt_tokens=event.tokens.prompt_tokens,
                completion_tokens=event.tokens.completion_tokens,
                cost_usd=event.tokens.cost_usd,
                message=event.message,
            )
            active.touch()

        try:
            result = await evaluate_library(
                problems,
                StoreLibrary(self._store, record.namespace),
                backends=backends,
                verifier=make_verifier(request.verifier),
                samples=request.samples,
                injection=request.injection,
                k=request.k,
                controls=request.controls,
                random_pool=pool,
                per_experience=request.per_experience,
                effects_max_problems=request.max_problems_per_experience,
                temperature=request.temperature,
                top_p=request.top_p,
                config=run_config(self._settings),
                seed=request.seed,
                on_progress=on_progress,
            )
        except LearnerError as error:
            record.status = "failed"
            record.error = str(error)
            return
        record.result = result
        record.summary = summary_lines(result)
        record.status = "succeeded"
        record.progress.message = "finished"
