"""Learning-run records, checkpoints and leases in the shared Chroma (``DEBRIEF_CHROMA_URL``).

Every host on one Chroma server then lists the same runs, and any of them can resume a run another host
started, from the same checkpoint. In the :data:`~debrief.server.store.shared_docs.JOBS` collection:

- ``<run_id>``: the run record (JSON), replaced whole on every save;
- ``<run_id>/checkpoint``: the learner's resume state, replaced whole on every save;
- ``<run_id>/lease/<generation>``: who runs the run. Taking the lease claims the next generation (Chroma keeps
  the first add of an id, so of two hosts taking it at once exactly one wins). The holder renews it with every
  checkpoint save; a lease that is released or not renewed for :data:`LEASE_SECONDS` (its host died) can be
  taken by another host. A holder whose lease was taken over cannot save its checkpoint any more, so a run is
  never carried on by two hosts at once.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from pathlib import Path

import anyio

from debrief.learner import RunState
from debrief.server.errors import Conflict, NotFound
from debrief.server.learning.run_models import RunRecord
from debrief.server.learning.run_records import RunBook
from debrief.server.store.shared_docs import Metadata, SharedDocuments

LEASE_SECONDS = 300.0
"""A lease not renewed for this long is free (its host is taken to be gone)."""


class SharedRunBook(RunBook):
    """The run records of every host on the Chroma server (``root`` only serves to check run ids)."""

    def __init__(self, documents: SharedDocuments) -> None:
        super().__init__(root=Path("<shared Chroma>"))  # never written to: only checks ids
        self.documents = documents

    def save(self, record: RunRecord) -> None:
        """Replace the run's record (one Chroma record: readers see the old or the new one)."""
        self.directory(record.run_id)  # checks the id
        self.documents.put(record.run_id, record.model_dump_json(), {"kind": "run"})

    def load(self, job_id: str) -> RunRecord:
        """The stored record of ``job_id``."""
        self.directory(job_id)
        found = self.documents.get([job_id])
        if job_id not in found:
            raise NotFound(f"there is no learning run {job_id!r}; list_learning_runs shows the known ones")
        return RunRecord.model_validate_json(found[job_id][0])

    def exists(self, job_id: str) -> bool:
        """Whether ``job_id`` has a record."""
        self.directory(job_id)
        return job_id in self.documents.get([job_id])

    def scan(self) -> list[RunRecord]:
        """Every stored run record, in no particular order."""
        return [
            RunRecord.model_validate_json(document) for document, _ in self.documents.find({"kind": "run"}).values()
        ]


class SharedLease:
    """The lease on one run across hosts: :meth:`take` it, :meth:`renew` it while running, :meth:`release` it."""

    def __init__(self, documents: SharedDocuments, run_id: str, *, seconds: float = LEASE_SECONDS) -> None:
        self._documents = documents
        self.run_id = run_id
        self._seconds = seconds
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._generation: int | None = None

    def _key(self, generation: int) -> str:
        return f"{self.run_id}/lease/{generation:06d}"

    def latest(self) -> Metadata | None:
        """The newest generation's metadata, or ``None`` when the run never had a lease."""
        found = self._documents.find({"$and": [{"kind": "lease"}, {"run": self.run_id}]})
        metadatas = [metadata for _, metadata in found.values()]
        return max(metadatas, key=lambda metadata: int(metadata["generation"]), default=None)

    @staticmethod
    def live(metadata: Metadata | None) -> bool:
        """Whether a lease generation is held: not released and renewed recently."""
        return metadata is not None and not metadata.get("released") and float(metadata["expires"]) > time.time()

    def _metadata(self, generation: int, *, released: bool = False) -> Metadata:
        return {
            "kind": "lease",
            "run": self.run_id,
            "generation": generation,
            "owner": self.owner,
            "expires": time.time() + self._seconds,
            "released": released,
        }

    def take(self) -> SharedLease:
        """Hold the lease, or refuse at once.

        Raises:
            Conflict: another host or process is running the run.
        """
        latest = self.latest()
        if self.live(latest):
            assert latest is not None
            raise Conflict(
                f"run {self.run_id!r} is being run by {latest['owner']} (host:pid); wait for it to stop, or cancel it "
                "there, before resuming it here"
            )
        generation = 1 if latest is None else int(latest["generation"]) + 1
        if not self._documents.claim(self._key(generation), "lease", self._metadata(generation)):
            raise Conflict(f"run {self.run_id!r} was just taken by another host; get_learning_run shows it")
        self._generation = generation
        return self

    def renew(self) -> None:
        """Push the expiry on; refuse when another host took the lease over (this host must stop the run)."""
        if self._generation is None:
            raise Conflict(f"run {self.run_id!r} is not leased here")
        if self._documents.get([self._key(self._generation + 1)]):
            raise Conflict(f"run {self.run_id!r} was taken over by another host; this host stops running it")
        self._documents.update_metadata(self._key(self._generation), self._metadata(self._generation))

    def release(self) -> None:
        """Let the lease go."""
        if self._generation is not None:
            self._documents.update_metadata(
                self._key(self._generation), self._metadata(self._generation, released=True)
            )
            self._generation = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lease."""
        return self._generation is not None


class SharedCheckpoint:
    """A run's resume state as one Chroma document; every save first renews the run's lease."""

    def __init__(self, documents: SharedDocuments, run_id: str, lease: SharedLease | None) -> None:
        self._documents = documents
        self._key = f"{run_id}/checkpoint"
        self._lease = lease

    async def load(self) -> RunState | None:
        """The saved state, or ``None`` for a new run."""
        found = await anyio.to_thread.run_sync(self._documents.get, [self._key])
        return RunState.model_validate_json(found[self._key][0]) if self._key in found else None

    async def save(self, state: RunState) -> None:
        """Replace the saved state (refused when this host no longer holds the run's lease)."""

        def save() -> None:
            if self._lease is not None:
                self._lease.renew()
            self._documents.put(self._key, state.model_dump_json(), {"kind": "checkpoint"})

        await anyio.to_thread.run_sync(save)
