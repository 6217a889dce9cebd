"""Where outcomes and learning runs are kept, chosen in one place from the settings.

- No ``DEBRIEF_CHROMA_URL``: in this host's data dir (``outcomes/`` JSON lines with an SQLite index, ``runs/``
  record files, checkpoint directories and ``flock`` leases), as one host needs.
- ``DEBRIEF_CHROMA_URL`` set: in the shared Chroma beside the experience libraries, so every host on that
  server sees the same outcomes and runs and can resume another host's run (see :mod:`.shared_runs` and
  :mod:`debrief.server.store.shared_outcome_log`). The data dir then keeps only this host's outcome index.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from debrief.learner import Checkpoint
from debrief.server.learning.leases import RunLease
from debrief.server.learning.run_models import RunRecord
from debrief.server.learning.run_records import RecordingCheckpoint, RunBook, pid_alive
from debrief.server.learning.shared_runs import SharedCheckpoint, SharedLease, SharedRunBook
from debrief.server.settings import Settings
from debrief.server.store.experience_store import ExperienceStore
from debrief.server.store.outcome_log import OutcomeLog
from debrief.server.store.shared_docs import JOBS, SharedDocuments
from debrief.server.store.shared_outcome_log import SharedOutcomeLog


def outcome_log(settings: Settings, store: ExperienceStore) -> OutcomeLog:
    """The outcome log of this host: its data dir's, or the shared Chroma's (indexed in the data dir)."""
    if settings.chroma_url is None:
        return OutcomeLog(settings.data_dir / "outcomes")
    server = hashlib.sha256(settings.chroma_url.encode("utf-8")).hexdigest()[:12]
    return SharedOutcomeLog(settings.data_dir / "outcomes-shared" / server, store.chroma_client)


class RunStorage:
    """Run records, leases and checkpoints in the data dir (``<data_dir>/runs``)."""

    def __init__(self, settings: Settings) -> None:
        self.book: RunBook = RunBook(settings.data_dir / "runs")

    def lease(self, run_id: str) -> RunLease | SharedLease:
        """A lease on the run, not yet taken."""
        return RunLease(self.book.directory(run_id))

    def checkpoint(
        self,
        run_id: str,
        lease: RunLease | SharedLease | None,
        record: Callable[[], RunRecord],
        persist: Callable[[RunRecord], None],
        on_change: Callable[[], None],
    ) -> Checkpoint:
        """The learner's checkpoint of the run, copying finished steps into its record."""
        return RecordingCheckpoint(self.book.directory(run_id) / "checkpoint", record, persist, on_change)

    def going_elsewhere(self, record: RunRecord) -> bool:
        """Whether some other process (or host) is running the run now."""
        return pid_alive(record.owner_pid)


class SharedRunStorage(RunStorage):
    """Run records, leases and checkpoints in the shared Chroma: any host lists and resumes any run."""

    def __init__(self, settings: Settings, store: ExperienceStore) -> None:
        self.documents = SharedDocuments(store.chroma_client, JOBS)
        self.book = SharedRunBook(self.documents)

    def lease(self, run_id: str) -> SharedLease:
        """A lease on the run, not yet taken."""
        self.book.directory(run_id)
        return SharedLease(self.documents, run_id)

    def checkpoint(
        self,
        run_id: str,
        lease: RunLease | SharedLease | None,
        record: Callable[[], RunRecord],
        persist: Callable[[RunRecord], None],
        on_change: Callable[[], None],
    ) -> Checkpoint:
        """The run's checkpoint in Chroma; every save renews this host's lease (and fails once it is lost)."""
        shared = SharedCheckpoint(self.documents, run_id, lease if isinstance(lease, SharedLease) else None)
        return RecordingCheckpoint(self.book.root, record, persist, on_change, inner=shared)

    def going_elsewhere(self, record: RunRecord) -> bool:
        """Whether a host holds the run's lease (a pid means nothing on another host)."""
        return SharedLease.live(SharedLease(self.documents, record.run_id).latest())


def run_storage(settings: Settings, store: ExperienceStore) -> RunStorage:
    """Where this host keeps learning runs."""
    return RunStorage(settings) if settings.chroma_url is None else SharedRunStorage(settings, store)
