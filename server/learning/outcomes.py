"""Outcome recording: group outcomes on the same task and learn from groups whose results disagree.

Outcomes are kept per namespace in an append-only JSON-lines file in the data dir, written under a
cross-process lock; each line carries the task's embedding so later outcomes can be matched to it. An SQLite
index beside the file (:mod:`debrief.server.store.outcome_log`) answers grouping, paging and lookups without
re-reading the file.
"""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import numpy as np
from anyio.abc import TaskGroup

from debrief.learner import RecordedAttempt, reflect_on_attempts
from debrief.learner.errors import LearnerError
from debrief.learner.fencing import strip_controls
from debrief.learner.library import Provenance
from debrief.learner.operations import Operation
from debrief.learner.rewards import is_success
from debrief.server.embedding.embedder import Embedder
from debrief.server.errors import Conflict, InvalidInput, NotFound
from debrief.server.learning.outcome_models import Outcome, OutcomePage, RecordOutcomeResult, Reflection
from debrief.server.learning.reflection_tasks import (
    LIBRARY_SLICE,
    ReflectionTask,
    ReflectionTaskBook,
    SubmittedReflection,
    TaskAttempt,
    check_submission,
    effective_mode,
)
from debrief.server.learning.run_config import outcome_reflection_config
from debrief.server.learning.runs import BackendProvider
from debrief.server.learning.spend_ledger import SpendLedger
from debrief.server.learning.storage import outcome_log
from debrief.server.learning.utility import retire_after_outcome
from debrief.server.settings import Settings
from debrief.server.store.experience_store import ExperienceStore
from debrief.server.store.learner_library import StoreLibrary
from debrief.server.store.planning import id_namespace

logger = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


class OutcomeBook:
    """Stores outcomes, forms groups, bumps usage counters and reflects on mixed groups in the background."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: ExperienceStore,
        embedder: Embedder,
        provider: BackendProvider,
        task_group: TaskGroup,
    ) -> None:
        self._settings = settings
        self._store = store
        self._embedder = embedder
        self._provider = provider
        self._tasks = task_group
        self._log = outcome_log(settings, store)  # the data dir's, or the shared Chroma's (storage.py)
        self._reflecting = anyio.CapacityLimiter(1)
        self._ledger = SpendLedger(settings.data_dir, settings.runs.daily_budget_usd)
        self._pending: dict[str, anyio.Event] = {}
        self._results: dict[str, Reflection] = {}
        self.tasks = ReflectionTaskBook(
            settings,
            ttl=timedelta(hours=settings.outcomes.reflection_task_hours),
            max_operations=settings.outcomes.reflection_max_operations,
        )
        self._submitting = anyio.Lock()

    @property
    def reflection_mode(self) -> str:
        """Who reflects on mixed groups here: ``server`` (the configured model) or ``client`` (via tasks)."""
        return effective_mode(
            self._settings.outcomes.reflection, endpoint_configured=self._settings.models.base_url is not None
        )

    # ---- file access --------------------------------------------------------------------------------

    def _append(self, namespace: str, line: dict[str, Any]) -> None:
        self._log.append(namespace, line)

    # ---- recording ----------------------------------------------------------------------------------

    async def record(
        self,
        *,
        namespace: str,
        task: str,
        attempt: str,
        reward: float | None,
        feedback: str | None,
        experience_ids_used: Sequence[str],
        task_key: str | None,
        wait: float | None = None,
    ) -> RecordOutcomeResult:
        """Store an outcome, raise usage counters, and reflect on its group if the group is now mixed."""
        # Stored text is shown in terminals and prompts later: no control characters or escape sequences.
        task, attempt = strip_controls(task), strip_controls(attempt)
        feedback = strip_controls(feedback) if feedback is not None else None
        task_key = strip_controls(task_key) if task_key is not None else None
        if not task.strip() or not attempt.strip():
            raise InvalidInput("task and attempt must contain visible text (control characters are removed)")
        for experience_id in experience_ids_used:
            # Checked in full before anything is written: a refused call must leave no outcome behind.
            if id_namespace(experience_id) != namespace:
                raise InvalidInput(
                    f"experience id {experience_id!r} is not in namespace {namespace!r} (its experience ids look "
                    f"like '{namespace}:0123456789ab'); pass the ids that retrieve_experiences returned for it"
                )
        vector = (await self._embedder.embed([task]))[0]
        group_id = await self._group_of(namespace, task_key, vector)
        outcome = Outcome(
            outcome_id=f"out-{secrets.token_hex(6)}",
            namespace=namespace,
            task=task,
            task_key=task_key,
            attempt=attempt,
            reward=reward,
            feedback=feedback,
            experience_ids_used=list(dict.fromkeys(experience_ids_used)),
            group_id=group_id,
            recorded_at=_now(),
        )
        line = {"type": "outcome", "outcome": outcome.model_dump(mode="json"), "vector": [float(x) for x in vector]}
        await anyio.to_thread.run_sync(self._append, namespace, line)
        counted: list[str] = []
        if outcome.experience_ids_used and reward is not None:
            counted = await self._store.record_usage(outcome.experience_ids_used, helpful=is_success(reward))
            # Auto-retire (issue 11, server/learning/utility.py): experiences that keep failing leave the library.
            await retire_after_outcome(
                self._store, self._settings, outcome.experience_ids_used, outcome_id=outcome.outcome_id
            )
        # Read after the append: the group's open outcomes, this one included (an indexed lookup, not a scan).
        open_members = functools.partial(
            self._log.open_members, namespace, group_id, limit=self._settings.outcomes.group_max
        )
        members = [Outcome.model_validate(body) for body in await anyio.to_thread.run_sync(open_members)]
        rewards = [item.reward for item in members if item.reward is not None]
        mixed = any(is_success(r) for r in rewards) and not all(is_success(r) for r in rewards)
        # Ungraded turns (the Claude Code stop hook) are worth comparing once there are two; only a client
        # reflects on them: the server's reflection learns from grades.
        client = self.reflection_mode == "client"
        comparable = client and len(members) >= 2 and len(rewards) < len(members)
        result = RecordOutcomeResult(
            outcome=outcome,
            group_size=len(members),
            reflection="scheduled" if mixed else "not_mixed",
            counters_updated=counted,
        )
        if not (mixed or comparable):
            return result
        if client:
            prepared = await self._prepare_task(namespace, members)
            result.reflection = "task_waiting"
            result.reflection_task_id = prepared.task_id
            return result
        members = [item for item in members if item.reward is not None]
        done = anyio.Event()
        self._pending[outcome.outcome_id] = done
        self._tasks.start_soon(self._reflect, namespace, members, done)
        if wait:
            with anyio.move_on_after(wait):
                await done.wait()
            reflection = self._results.get(outcome.outcome_id)
            if reflection is not None:
                result.reflection = reflection.status
                result.reflection_version = reflection.version
                result.reflection_rejected = reflection.rejected
        return result

    async def _group_of(self, namespace: str, task_key: str | None, vector: Sequence[float]) -> str:
        if task_key is not None:
            return f"key:{task_key}"
        horizon = _now() - timedelta(days=self._settings.outcomes.window_days)
        recent = functools.partial(self._log.recent_unkeyed, namespace, since=horizon, limit=500)
        candidates = await anyio.to_thread.run_sync(recent)
        if candidates:
            matrix = np.stack([candidate for _, candidate in candidates])
            similarities = matrix @ np.asarray(vector, dtype=np.float32)
            best = int(np.argmax(similarities))
            if float(similarities[best]) >= self._settings.outcomes.match_threshold:
                return str(candidates[best][0]["group_id"])
        return f"grp-{secrets.token_hex(6)}"

    async def _reflect(self, namespace: str, members: list[Outcome], done: anyio.Event) -> None:
        group_id = members[-1].group_id
        ids = [item.outcome_id for item in members]
        reflection = Reflection(group_id=group_id, namespace=namespace, outcome_ids=ids, status="failed", at=_now())
        holder, spent = f"reflection-{ids[-1]}", 0.0
        try:
            async with self._reflecting:
                # Reflections count against today's cap like runs do (see spend_ledger.py).
                grant = await anyio.to_thread.run_sync(self._ledger.reserve, holder, None)
                backends, _endpoint = await self._provider.backends(None)
                report = await reflect_on_attempts(
                    task=members[-1].task,
                    attempts=[
                        RecordedAttempt(
                            attempt_id=item.outcome_id,
                            account=item.attempt,
                            reward=item.reward or 0.0,
                            feedback=item.feedback,
                        )
                        for item in members
                    ],
                    backends=backends,
                    library=StoreLibrary(self._store, namespace),
                    provenance=Provenance(kind="outcome", groups=[group_id], outcome_ids=ids),
                    reason=f"reflection on {len(ids)} recorded outcomes of one task ({group_id})",
                    config=outcome_reflection_config(self._settings, budget_usd=grant.budget_usd),
                )
                spent = report.tokens.cost_usd
            reflection.version = report.version
            reflection.applied = len(report.applied)
            reflection.rejected = [f"{item.stage}: {item.reason}" for item in report.rejected]
            reflection.error = report.error
            reflection.status = "failed" if report.error else ("applied" if report.applied else "no_change")
        except (LearnerError, OSError, Conflict) as error:
            reflection.error = f"{type(error).__name__}: {error}"
            logger.warning("reflection on group %s failed: %s", group_id, reflection.error)
        except Exception as error:  # recorded, never lost; the server keeps serving
            logger.exception("reflection on group %s failed", group_id)
            reflection.error = f"{type(error).__name__}: {error}"
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._ledger.release, holder, spent)
                line = {"type": "reflection", "reflection": reflection.model_dump(mode="json")}
                await anyio.to_thread.run_sync(self._append, namespace, line)
                self._results[ids[-1]] = reflection
                self._pending.pop(ids[-1], None)
                done.set()

    # ---- reflection by the client --------------------------------------------------------------------

    async def _prepare_task(self, namespace: str, members: list[Outcome]) -> ReflectionTask:
        task = members[-1].task
        entries = await StoreLibrary(self._store, namespace).relevant(task, LIBRARY_SLICE)
        version = await self._store.version(namespace)
        attempts = [
            TaskAttempt(outcome_id=item.outcome_id, account=item.attempt, reward=item.reward, feedback=item.feedback)
            for item in members
        ]
        return await anyio.to_thread.run_sync(
            lambda: self.tasks.create(
                namespace=namespace,
                group_id=members[-1].group_id,
                task=task,
                attempts=attempts,
                entries=entries,
                library_version=version,
            )
        )

    async def oldest_task(
        self, namespace: str | None, readable: Callable[[str], bool] = lambda _: True
    ) -> tuple[ReflectionTask | None, int]:
        """The oldest open reflection task (of ``namespace``, or of any ``readable`` one) and how many are open."""
        return await anyio.to_thread.run_sync(self.tasks.oldest_open, namespace, readable)

    async def task_namespace(self, task_id: str) -> str | None:
        """The namespace a reflection task belongs to, or ``None`` when there is no such task."""
        return await anyio.to_thread.run_sync(self.tasks.namespace_of, task_id)

    async def submit_reflection(
        self, task_id: str, operations: Sequence[Operation], *, analysis: str | None
    ) -> SubmittedReflection:
        """Check a client's answer to a task and apply it as one change; a bad answer writes nothing."""
        async with self._submitting:
            lock = await anyio.to_thread.run_sync(self.tasks.hold)
            try:
                task = await anyio.to_thread.run_sync(self.tasks.open_task, task_id)
                earlier = await self._version_made_by(task)
                if earlier is not None:
                    # A crash after the change and before the task was closed: the change stands, once.
                    await anyio.to_thread.run_sync(lambda: self.tasks.close(task, "submitted", result_version=earlier))
                    raise Conflict(f"reflection task {task_id!r} was already submitted (library version {earlier})")
                active = await self._active_of(task)
                resolved = check_submission(
                    task, operations, active_ids=active, max_text_bytes=self._settings.limits.experience_bytes
                )
                why = "reflected by the client" + (f": {analysis.strip()}" if analysis and analysis.strip() else "")
                applied, rejected, version = [], [], None
                if resolved:
                    report = await self._store.apply(
                        task.namespace,
                        resolved,
                        provenance=Provenance(
                            kind="outcome", groups=[task.group_id, task.task_id], outcome_ids=task.outcome_ids
                        ),
                        reason=why[: self._settings.limits.note_bytes],
                    )
                    applied = list(report.applied)
                    rejected = [f"{item.operation.op}: {item.reason}" for item in report.rejected]
                    version = report.version if applied else None
                await anyio.to_thread.run_sync(
                    lambda: self.tasks.close(task, "submitted", result_version=version, analysis=analysis)
                )
            finally:
                lock.release()
        reflection = Reflection(
            group_id=task.group_id,
            namespace=task.namespace,
            outcome_ids=task.outcome_ids,
            status="applied" if applied else "no_change",
            version=version,
            applied=len(applied),
            at=_now(),
            reflected_by="client",
            task_id=task.task_id,
        )
        await self._mark_reflected(reflection)
        return SubmittedReflection(
            task_id=task.task_id,
            namespace=task.namespace,
            version=version,
            applied=[item.operation for item in applied],
            experience_ids=[list(item.experience_ids) for item in applied],
            rejected=rejected,
            outcome_ids=task.outcome_ids,
        )

    async def skip_reflection(self, task_id: str, *, reason: str | None) -> ReflectionTask:
        """Close a task unanswered; its outcomes count as reflected on, so they are not offered again."""
        async with self._submitting:
            lock = await anyio.to_thread.run_sync(self.tasks.hold)
            try:
                task = await anyio.to_thread.run_sync(self.tasks.open_task, task_id)
                closed = await anyio.to_thread.run_sync(lambda: self.tasks.close(task, "skipped", note=reason))
            finally:
                lock.release()
        await self._mark_reflected(
            Reflection(
                group_id=task.group_id,
                namespace=task.namespace,
                outcome_ids=task.outcome_ids,
                status="skipped",
                at=_now(),
                reflected_by="client",
                task_id=task.task_id,
                error=reason,
            )
        )
        return closed

    async def _active_of(self, task: ReflectionTask) -> set[str]:
        active: set[str] = set()
        for experience_id in task.aliases.values():
            try:
                experience = await self._store.get(experience_id)
            except NotFound:
                continue
            if experience.status == "active":
                active.add(experience_id)
        return active

    async def _version_made_by(self, task: ReflectionTask) -> int | None:
        since = task.library_version
        while True:
            changes = await self._store.history(task.namespace, since_version=since, limit=100)
            for change in changes:
                if change.source.kind == "outcome" and task.task_id in change.source.groups:
                    return change.version
            if not changes:
                return None
            since = changes[-1].version

    async def _mark_reflected(self, reflection: Reflection) -> None:
        line = {"type": "reflection", "reflection": reflection.model_dump(mode="json")}
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._append, reflection.namespace, line)

    # ---- reading ------------------------------------------------------------------------------------

    async def page(self, namespace: str, *, cursor: str | None, limit: int, group_id: str | None = None) -> OutcomePage:
        """Outcomes of a namespace, newest first."""
        start = 0
        if cursor is not None:
            if not cursor.isdigit() or len(cursor) > 12:
                raise InvalidInput(f"cursor {cursor!r} is not valid: pass next_cursor from the previous page")
            start = int(cursor)
        read = functools.partial(self._log.page, namespace, offset=start, limit=limit, group_id=group_id)
        bodies, more = await anyio.to_thread.run_sync(read)
        items = [Outcome.model_validate(body) for body in bodies]
        return OutcomePage(items=items, next_cursor=str(start + limit) if more else None)

    async def by_ids(self, namespace: str, outcome_ids: Sequence[str]) -> list[Outcome]:
        """The outcomes with these ids, in the order given (unknown ids are left out)."""
        bodies = await anyio.to_thread.run_sync(self._log.by_ids, namespace, list(outcome_ids))
        return [Outcome.model_validate(body) for body in bodies]
