"""Outcome recording: group outcomes on the same task and learn from groups whose results disagree.

Outcomes are kept per namespace in an append-only JSON-lines file in the data dir, written under a
cross-process lock; each line carries the task's embedding so later outcomes can be matched to it.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import numpy as np
from anyio.abc import TaskGroup

from debrief.learner import RecordedAttempt, reflect_on_attempts
from debrief.learner.errors import LearnerError
from debrief.learner.library import Provenance
from debrief.server.chroma.locks import FileLock
from debrief.server.embedding.embedder import Embedder
from debrief.server.errors import InvalidInput
from debrief.server.learning.outcome_models import Outcome, OutcomePage, RecordOutcomeResult, Reflection
from debrief.server.learning.runs import BackendProvider
from debrief.server.settings import Settings
from debrief.server.store.experience_store import ExperienceStore
from debrief.server.store.learner_library import StoreLibrary

logger = logging.getLogger(__name__)

SUCCESS = 0.5
"""A reward of at least this is a success."""


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
        self._root = settings.data_dir / "outcomes"
        self._reflecting = anyio.CapacityLimiter(1)
        self._pending: dict[str, anyio.Event] = {}
        self._results: dict[str, Reflection] = {}

    # ---- file access --------------------------------------------------------------------------------

    def _path(self, namespace: str) -> Path:
        return self._root / f"{namespace}.jsonl"

    def _append(self, namespace: str, line: dict[str, Any]) -> None:
        self._root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self._root / f"{namespace}.lock")
        try:
            lock.acquire(exclusive=True, blocking=True)
            with self._path(namespace).open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(line, default=str) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        finally:
            lock.release()

    def _lines(self, namespace: str) -> list[dict[str, Any]]:
        path = self._path(namespace)
        if not path.exists():
            return []
        lines = []
        with path.open(encoding="utf-8") as handle:
            for raw in handle:
                raw = raw.strip()
                if raw:
                    try:
                        lines.append(json.loads(raw))
                    except json.JSONDecodeError:
                        logger.warning("skipping a torn line in %s", path)
        return lines

    def _state(self, namespace: str) -> tuple[list[Outcome], list[list[float]], dict[str, Reflection]]:
        outcomes: list[Outcome] = []
        vectors: list[list[float]] = []
        reflections: dict[str, Reflection] = {}
        for line in self._lines(namespace):
            if line.get("type") == "outcome":
                outcomes.append(Outcome.model_validate(line["outcome"]))
                vectors.append(line["vector"])
            elif line.get("type") == "reflection":
                reflection = Reflection.model_validate(line["reflection"])
                for outcome_id in reflection.outcome_ids:
                    reflections[outcome_id] = reflection
        return outcomes, vectors, reflections

    # ---- recording ----------------------------------------------------------------------------------

    async def record(
        self,
        *,
        namespace: str,
        task: str,
        attempt: str,
        reward: float,
        feedback: str | None,
        experience_ids_used: Sequence[str],
        task_key: str | None,
        wait: float | None = None,
    ) -> RecordOutcomeResult:
        """Store an outcome, raise usage counters, and reflect on its group if the group is now mixed."""
        for experience_id in experience_ids_used:
            if not experience_id.startswith(f"{namespace}:"):
                raise InvalidInput(
                    f"experience id {experience_id!r} is not in namespace {namespace!r}; pass the ids that "
                    "retrieve_experiences returned for this namespace"
                )
        vector = (await self._embedder.embed([task]))[0]
        outcomes, vectors, reflections = await anyio.to_thread.run_sync(self._state, namespace)
        group_id = self._group_of(task_key, vector, outcomes, vectors)
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
        if outcome.experience_ids_used:
            await self._store.record_usage(outcome.experience_ids_used, helpful=reward >= SUCCESS)
        members = [item for item in outcomes if item.group_id == group_id and item.outcome_id not in reflections]
        members = [*members, outcome][-self._settings.outcome_group_max :]
        rewards = [item.reward for item in members]
        mixed = any(r >= SUCCESS for r in rewards) and any(r < SUCCESS for r in rewards)
        result = RecordOutcomeResult(
            outcome=outcome,
            group_size=len(members),
            reflection="scheduled" if mixed else "not_mixed",
            counters_updated=outcome.experience_ids_used,
        )
        if not mixed:
            return result
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
        return result

    def _group_of(
        self, task_key: str | None, vector: Sequence[float], outcomes: list[Outcome], vectors: list[list[float]]
    ) -> str:
        if task_key is not None:
            return f"key:{task_key}"
        horizon = _now() - timedelta(days=self._settings.outcome_window_days)
        candidates = [
            (index, item)
            for index, item in enumerate(outcomes)
            if item.task_key is None and item.recorded_at >= horizon
        ][-500:]
        if candidates:
            matrix = np.asarray([vectors[index] for index, _ in candidates], dtype=np.float32)
            similarities = matrix @ np.asarray(vector, dtype=np.float32)
            best = int(np.argmax(similarities))
            if float(similarities[best]) >= self._settings.outcome_match_threshold:
                return candidates[best][1].group_id
        return f"grp-{secrets.token_hex(6)}"

    async def _reflect(self, namespace: str, members: list[Outcome], done: anyio.Event) -> None:
        group_id = members[-1].group_id
        ids = [item.outcome_id for item in members]
        reflection = Reflection(group_id=group_id, namespace=namespace, outcome_ids=ids, status="failed", at=_now())
        try:
            async with self._reflecting:
                backends, _endpoint = await self._provider.backends(None)
                report = await reflect_on_attempts(
                    task=members[-1].task,
                    attempts=[
                        RecordedAttempt(
                            attempt_id=item.outcome_id, account=item.attempt, reward=item.reward, feedback=item.feedback
                        )
                        for item in members
                    ],
                    backends=backends,
                    library=StoreLibrary(self._store, namespace),
                    provenance=Provenance(kind="outcome", groups=[group_id], outcome_ids=ids),
                    reason=f"reflection on {len(ids)} recorded outcomes of one task ({group_id})",
                )
            reflection.version = report.version
            reflection.applied = len(report.applied)
            reflection.error = report.error
            reflection.status = "failed" if report.error else ("applied" if report.applied else "no_change")
        except (LearnerError, OSError) as error:
            reflection.error = f"{type(error).__name__}: {error}"
            logger.warning("reflection on group %s failed: %s", group_id, reflection.error)
        except Exception as error:  # noqa: BLE001 - recorded, never lost; the server keeps serving
            logger.exception("reflection on group %s failed", group_id)
            reflection.error = f"{type(error).__name__}: {error}"
        finally:
            with anyio.CancelScope(shield=True):
                line = {"type": "reflection", "reflection": reflection.model_dump(mode="json")}
                await anyio.to_thread.run_sync(self._append, namespace, line)
                self._results[ids[-1]] = reflection
                self._pending.pop(ids[-1], None)
                done.set()

    # ---- reading ------------------------------------------------------------------------------------

    async def page(self, namespace: str, *, cursor: str | None, limit: int, group_id: str | None = None) -> OutcomePage:
        """Outcomes of a namespace, newest first."""
        outcomes, _vectors, _reflections = await anyio.to_thread.run_sync(self._state, namespace)
        if group_id is not None:
            outcomes = [item for item in outcomes if item.group_id == group_id]
        outcomes.reverse()
        start = 0
        if cursor is not None:
            if not cursor.isdigit():
                raise InvalidInput(f"cursor {cursor!r} is not valid: pass next_cursor from the previous page")
            start = int(cursor)
        items = outcomes[start : start + limit]
        more = start + limit < len(outcomes)
        return OutcomePage(items=items, next_cursor=str(start + limit) if more else None)

    async def by_ids(self, namespace: str, outcome_ids: Sequence[str]) -> list[Outcome]:
        """The outcomes with these ids, in the order given (unknown ids are left out)."""
        outcomes, _vectors, _reflections = await anyio.to_thread.run_sync(self._state, namespace)
        index = {item.outcome_id: item for item in outcomes}
        return [index[key] for key in outcome_ids if key in index]
