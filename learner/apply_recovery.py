"""Finishing a step after a crash between its ``library.apply`` and the checkpoint that records it.

The run saves the plan with a digest of the library's entries before applying it. On resume the step is applied
only if it did not land: libraries implementing :class:`debrief.learner.library.AppliedLookup` say so directly; for the
others, unchanged entries mean nothing landed, and changed entries that show any of the plan's operations mean
it did (other writers may have changed the library in between, so that is the best the entries can tell).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from debrief.learner.checkpoint import ApplyingStep
from debrief.learner.consolidation import Applied, apply_plan
from debrief.learner.library import AppliedLookup, Library, LibraryEntry
from debrief.learner.operations import Operation
from debrief.learner.records import AppliedRecord, RejectedRecord
from debrief.learner.words import normalize_experience_text


def entries_digest(entries: Sequence[LibraryEntry]) -> str:
    """A digest of the active experiences (ids and texts, in order)."""
    payload = json.dumps([[entry.experience_id, entry.text] for entry in entries], ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def shown_by(operation: Operation, entries: Sequence[LibraryEntry]) -> tuple[str, ...] | None:
    """The ids ``operation`` touched if ``entries`` already show its effect, else ``None``."""
    texts = {entry.experience_id: entry.text for entry in entries}
    if operation.op == "delete":
        return None if operation.experience_id in texts else (operation.experience_id,)
    text = normalize_experience_text(operation.text)
    if operation.op == "modify":
        return (operation.experience_id,) if texts.get(operation.experience_id) == text else None
    holder = next((key for key, value in texts.items() if value == text), None)
    if holder is None:
        return None
    if operation.op == "add":
        return (holder,)
    if any(key in texts for key in operation.experience_ids):
        return None
    return (holder, *operation.experience_ids)


async def finish_interrupted_apply(library: Library, marker: ApplyingStep, run_id: str) -> tuple[Applied, bool]:
    """Apply the marker's plan unless it already landed; return the records and whether it had landed."""
    entries = await library.entries()
    if isinstance(library, AppliedLookup):
        version = await library.applied_version(run_id, marker.step)
        landed = version is not None
    else:
        version = None
        unchanged = entries_digest(entries) == marker.entries_digest
        landed = not unchanged and any(shown_by(operation, entries) is not None for operation in marker.operations)
    if not landed:
        done = await apply_plan(library, marker.operations, provenance=marker.provenance, reason=marker.reason)
        return done, False
    applied: list[AppliedRecord] = []
    rejected: list[RejectedRecord] = []
    for operation in marker.operations:
        ids = shown_by(operation, entries)
        if ids is None:
            rejected.append(
                RejectedRecord(
                    operation=operation,
                    kind="library_rejected",
                    reason="not in the library when the interrupted step was recovered: the library rejected it or "
                    "it was changed since",
                    stage="apply",
                )
            )
        else:
            applied.append(AppliedRecord(operation=operation, experience_ids=list(ids)))
    return Applied(applied=applied, rejected=rejected, version=version), True
