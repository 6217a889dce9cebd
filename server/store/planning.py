"""Pure planning of multi-experience changes (learner operations, imports, rollbacks) into edits.

The store reads the current state, calls a planner, and records the returned edits as one change. Nothing
here touches Chroma, so each rule can be read (and tested) on its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from debrief.learner.library import AppliedOperation, RejectedOperation
from debrief.learner.operations import Operation
from debrief.learner.words import experience_text_problem, normalize_experience_text
from debrief.server.store.models import Edit, ExperienceState, ExportedExperience

EXPERIENCE_ID = re.compile(r"^(?P<namespace>[a-z0-9][a-z0-9._-]{0,62}):(?P<key>[0-9a-f]{12})$")


def id_namespace(experience_id: str) -> str | None:
    """The namespace an experience id names, or ``None`` when it is not an experience id."""
    match = EXPERIENCE_ID.match(experience_id)
    return match["namespace"] if match else None


def _active(text: str) -> ExperienceState:
    return ExperienceState(text=text, status="active")


def _retired(text: str) -> ExperienceState:
    return ExperienceState(text=text, status="retired")


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity of two unit vectors."""
    return sum(x * y for x, y in zip(a, b, strict=True))


@dataclass(kw_only=True)
class OperationsPlan:
    """Edits for a batch of learner operations, with what was applied and rejected."""

    edits: list[Edit] = field(default_factory=list)
    applied: list[tuple[Operation, tuple[str, ...]]] = field(default_factory=list)
    rejected: list[RejectedOperation] = field(default_factory=list)

    def applied_operations(self) -> tuple[AppliedOperation, ...]:
        """The applied operations as the learner's result type."""
        return tuple(AppliedOperation(operation=op, experience_ids=ids) for op, ids in self.applied)


def plan_operations(  # noqa: C901 - one branch per operation kind and check, the rules in one readable list
    namespace: str,
    operations: Sequence[Operation],
    *,
    states: Mapping[str, ExperienceState],
    nearest: Mapping[str, tuple[str, float]],
    vectors: Mapping[str, Sequence[float]],
    threshold: float,
    new_id: Callable[[], str],
) -> OperationsPlan:
    """Validate each operation against the state left by the ones before it; plan the valid ones.

    ``states`` holds every stored experience the operations name; ``nearest`` maps an added text to the most
    similar active experience before this batch; ``vectors`` has a vector for every operation text.
    """
    plan = OperationsPlan()
    current = dict(states)
    added: list[tuple[str, str]] = []  # (id, text) added in this batch, for near-duplicate checks

    def problem_with_id(experience_id: str) -> str | None:
        owner = id_namespace(experience_id)
        if owner is not None and owner != namespace:
            return f"experience {experience_id!r} belongs to namespace {owner!r}, not {namespace!r}"
        state = current.get(experience_id)
        if state is None:
            return f"unknown experience id {experience_id!r}"
        if state.status != "active":
            return f"experience {experience_id!r} is retired"
        return None

    def problem_with_text(text: str, replacing: Sequence[str] = ()) -> str | None:
        problem = experience_text_problem(text)
        if problem is not None:
            return problem
        clean = normalize_experience_text(text)
        near = nearest.get(clean)
        # ``nearest`` came from the active collection: it is still active unless this batch changed it.
        near_state = current.get(near[0]) if near is not None else None
        still_active = near_state is None or near_state.status == "active"
        if near is not None and near[1] > threshold and near[0] not in replacing and still_active:
            return f"near-duplicate of active experience {near[0]!r} (similarity {near[1]:.3f}); modify that one"
        for other_id, other_text in added:
            if other_id in replacing or not _is_active(current, other_id):
                continue
            similarity = cosine(vectors[clean], vectors[other_text])
            if similarity > threshold:
                return f"near-duplicate of {other_id!r} added in this batch (similarity {similarity:.3f})"
        return None

    def edit(experience_id: str, after: ExperienceState) -> None:
        plan.edits.append(Edit(experience_id=experience_id, before=current.get(experience_id), after=after))
        current[experience_id] = after

    for operation in operations:
        if operation.op == "add":
            problem = problem_with_text(operation.text)
            if problem is None:
                key = new_id()
                clean = normalize_experience_text(operation.text)
                edit(key, _active(clean))
                added.append((key, clean))
                plan.applied.append((operation, (key,)))
        elif operation.op == "modify":
            problem = problem_with_id(operation.experience_id) or problem_with_text(
                operation.text, (operation.experience_id,)
            )
            if problem is None:
                edit(operation.experience_id, _active(normalize_experience_text(operation.text)))
                plan.applied.append((operation, (operation.experience_id,)))
        elif operation.op == "merge":
            ids = operation.experience_ids
            problem = next((p for p in map(problem_with_id, ids) if p is not None), None)
            if problem is None and len(set(ids)) != len(ids):
                problem = f"merge names the same experience twice: {ids!r}"
            problem = problem or problem_with_text(operation.text, ids)
            if problem is None:
                key = new_id()
                clean = normalize_experience_text(operation.text)
                for merged in ids:
                    edit(merged, _retired(current[merged].text))
                edit(key, _active(clean))
                added.append((key, clean))
                plan.applied.append((operation, (key, *ids)))
        else:
            problem = problem_with_id(operation.experience_id)
            if problem is None:
                edit(operation.experience_id, _retired(current[operation.experience_id].text))
                plan.applied.append((operation, (operation.experience_id,)))
        if problem is not None:
            plan.rejected.append(RejectedOperation(operation=operation, reason=problem))
    plan.edits = _collapse(plan.edits)
    return plan


def _is_active(states: Mapping[str, ExperienceState], experience_id: str) -> bool:
    state = states.get(experience_id)
    return state is not None and state.status == "active"


def _collapse(edits: Sequence[Edit]) -> list[Edit]:
    """One edit per experience: the first ``before`` and the last ``after``; no-op edits dropped."""
    merged: dict[str, Edit] = {}
    for edit in edits:
        first = merged.get(edit.experience_id)
        before = first.before if first is not None else edit.before
        merged[edit.experience_id] = Edit(experience_id=edit.experience_id, before=before, after=edit.after)
    return [edit for edit in merged.values() if edit.before != edit.after]


def plan_rollback(current: Mapping[str, ExperienceState], target: Mapping[str, ExperienceState]) -> list[Edit]:
    """Edits that make the state ``target`` again; experiences newer than it are retired, never deleted."""
    edits: list[Edit] = []
    for key, state in current.items():
        after = target.get(key, _retired(state.text))
        if after != state:
            edits.append(Edit(experience_id=key, before=state, after=after))
    return edits


@dataclass(kw_only=True)
class ImportItem:
    """An imported active experience with the id it will have and whether it is new."""

    item: ExportedExperience
    experience_id: str
    text: str


def plan_import(
    namespace: str,
    items: Sequence[ExportedExperience],
    *,
    mode: str,
    states: Mapping[str, ExperienceState],
    nearest: Mapping[str, tuple[str, float]],
    threshold: float,
    new_id: Callable[[], str],
) -> tuple[list[Edit], list[ImportItem]]:
    """Edits for an import, and the experiences it creates.

    Only active items are imported. ``merge`` adds those not already active (same id, the same text, or a
    near-duplicate above ``threshold`` per ``nearest``), reactivating a retired experience of the same id.
    ``replace`` makes the active library exactly the import: items keep a matching id (or an active
    experience with the same text), the rest are created, and every other active experience is retired.
    """
    current = dict(states)
    edits: list[Edit] = []
    created: list[ImportItem] = []
    by_text = {state.text: key for key, state in current.items() if state.status == "active"}
    wanted: set[str] = set()
    seen_texts: set[str] = set()
    for item in items:
        if item.status != "active":
            continue
        text = normalize_experience_text(item.text)
        if text in seen_texts:
            continue
        seen_texts.add(text)
        existing = current.get(item.experience_id)
        if existing is not None:
            key = item.experience_id
        elif text in by_text and by_text[text] not in wanted:
            key = by_text[text]
        elif mode == "merge" and (near := nearest.get(text)) is not None and near[1] > threshold:
            continue
        else:
            keep = id_namespace(item.experience_id) == namespace and item.experience_id not in current
            key = item.experience_id if keep else new_id()
            created.append(ImportItem(item=item, experience_id=key, text=text))
        wanted.add(key)
        before = current.get(key)
        if mode == "merge" and before is not None and before.status == "active":
            continue
        after = _active(text)
        if before != after:
            edits.append(Edit(experience_id=key, before=before, after=after))
            current[key] = after
    if mode == "replace":
        for key, state in states.items():
            if state.status == "active" and key not in wanted:
                edits.append(Edit(experience_id=key, before=state, after=_retired(state.text)))
    return _collapse(edits), created
