"""Records of background jobs (learning runs, evaluations) kept as one JSON file per job in a directory."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import BaseModel

from debrief.server.errors import InvalidInput, NotFound

R = TypeVar("R", bound=BaseModel)


class RecordBook(Generic[R]):
    """The records in ``root``: one sub-directory ``<prefix>-<hex>`` per job, holding ``record.json``."""

    def __init__(
        self, root: Path, *, prefix: str, model: type[R], key: Callable[[R], str], noun: str, lister: str
    ) -> None:
        self.root = root
        self._prefix = f"{prefix}-"
        self._model = model
        self._key = key
        self._noun = noun
        self._lister = lister

    def directory(self, job_id: str) -> Path:
        """The job's directory (its id checked, so it cannot name a path outside the book)."""
        size = len(self._prefix)
        if not job_id.startswith(self._prefix) or not job_id[size:].isalnum() or len(job_id) > 40:
            raise InvalidInput(f"{self._noun} id {job_id!r} is not valid: ids look like '{self._prefix}1a2b3c4d5e6f'")
        return self.root / job_id

    def save(self, record: R) -> None:
        """Replace the job's record file atomically (readers in other processes never see half a file)."""
        directory = self.directory(self._key(record))
        directory.mkdir(parents=True, exist_ok=True)
        temporary = directory / "record.json.tmp"
        temporary.write_text(record.model_dump_json(indent=1), encoding="utf-8")
        os.replace(temporary, directory / "record.json")

    def load(self, job_id: str) -> R:
        """The stored record of ``job_id``."""
        path = self.directory(job_id) / "record.json"
        if not path.exists():
            raise NotFound(f"there is no {self._noun} {job_id!r}; {self._lister} shows the known ones")
        return self._model.model_validate_json(path.read_text(encoding="utf-8"))

    def exists(self, job_id: str) -> bool:
        """Whether ``job_id`` has a record."""
        return (self.directory(job_id) / "record.json").exists()

    def scan(self) -> list[R]:
        """Every stored record, in no particular order."""
        if not self.root.exists():
            return []
        return [
            self._model.model_validate_json(path.read_text(encoding="utf-8"))
            for path in self.root.glob(f"{self._prefix}*/record.json")
        ]
