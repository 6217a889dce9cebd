"""The outcome log: an append-only JSON-lines file per namespace, with an SQLite index beside it.

The JSONL file stays the source of truth (appended under a cross-process ``flock``, fsynced). The index
(``<namespace>.index.sqlite3``) remembers how far into the file it has read and catches up with the lines other
processes appended before each query, so every query reads only what is new plus an indexed lookup: recording
an outcome no longer re-reads every outcome ever recorded. Deleting the index rebuilds it from the file.

This module knows lines as JSON objects: ``{"type": "outcome", "outcome": {...}, "vector": [...]}`` and
``{"type": "reflection", "reflection": {"outcome_ids": [...], ...}}``; their models live with their users.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from debrief.server.chroma.locks import FileLock

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outcomes (
    seq INTEGER PRIMARY KEY,
    outcome_id TEXT NOT NULL UNIQUE,
    group_id TEXT NOT NULL,
    keyed INTEGER NOT NULL,
    recorded_at REAL NOT NULL,
    body TEXT NOT NULL,
    vector BLOB
);
CREATE INDEX IF NOT EXISTS outcomes_by_group ON outcomes (group_id, seq);
CREATE TABLE IF NOT EXISTS reflected (outcome_id TEXT PRIMARY KEY, body TEXT NOT NULL);
"""


def _timestamp(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


class OutcomeLog:
    """Outcome and reflection lines of every namespace under ``root``; all methods are synchronous and blocking."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._guard = threading.Lock()
        self._namespace_locks: dict[str, threading.Lock] = {}

    def path(self, namespace: str) -> Path:
        """The namespace's JSON-lines file."""
        return self.root / f"{namespace}.jsonl"

    # ---- locking and the index ---------------------------------------------------------------------

    @contextmanager
    def _open(self, namespace: str) -> Iterator[sqlite3.Connection]:
        """The namespace's index, caught up with its file, held against other threads and processes."""
        with self._guard:
            local = self._namespace_locks.setdefault(namespace, threading.Lock())
        with local:
            self.root.mkdir(parents=True, exist_ok=True)
            lock = FileLock(self.root / f"{namespace}.lock")
            try:
                lock.acquire(exclusive=True, blocking=True)
                # One connection per call: nothing stays open between calls, so nothing leaks at shutdown.
                connection = self._connection(namespace)
                try:
                    self._catch_up(namespace, connection)
                    yield connection
                finally:
                    connection.close()
            finally:
                lock.release()

    def _connection(self, namespace: str) -> sqlite3.Connection:
        connection = sqlite3.connect(self.root / f"{namespace}.index.sqlite3")
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.executescript(SCHEMA)
        return connection

    def _catch_up(self, namespace: str, connection: sqlite3.Connection) -> None:
        path = self.path(namespace)
        size = path.stat().st_size if path.exists() else 0
        row = connection.execute("SELECT value FROM meta WHERE key = 'offset'").fetchone()
        offset = int(row[0]) if row else 0
        if size < offset:  # the file was replaced or truncated: read it again from the start
            logger.warning("outcome file %s is shorter than its index; rebuilding the index", path)
            with connection:
                connection.execute("DELETE FROM outcomes")
                connection.execute("DELETE FROM reflected")
            offset = 0
        if size == offset:
            return
        with path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read(size - offset)
        end = data.rfind(b"\n") + 1  # a line still being written (no newline yet) waits for the next catch-up
        with connection:
            for raw in data[:end].splitlines():
                if raw.strip():
                    self._ingest(connection, path, raw)
            connection.execute(
                "INSERT INTO meta (key, value) VALUES ('offset', ?) ON CONFLICT (key) DO UPDATE SET value = ?",
                (offset + end, offset + end),
            )

    @staticmethod
    def _ingest(connection: sqlite3.Connection, path: Path, raw: bytes) -> None:
        try:
            line = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            logger.warning("skipping a torn line in %s", path)
            return
        if line.get("type") == "outcome":
            outcome = line["outcome"]
            vector = line.get("vector")
            connection.execute(
                "INSERT OR IGNORE INTO outcomes (outcome_id, group_id, keyed, recorded_at, body, vector) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    outcome["outcome_id"],
                    outcome["group_id"],
                    int(outcome.get("task_key") is not None),
                    _timestamp(outcome["recorded_at"]),
                    json.dumps(outcome),
                    None if vector is None else np.asarray(vector, dtype=np.float32).tobytes(),
                ),
            )
        elif line.get("type") == "reflection":
            reflection = line["reflection"]
            body = json.dumps(reflection)
            connection.executemany(
                "INSERT OR REPLACE INTO reflected (outcome_id, body) VALUES (?, ?)",
                [(outcome_id, body) for outcome_id in reflection.get("outcome_ids", [])],
            )

    # ---- writing -----------------------------------------------------------------------------------

    def append(self, namespace: str, line: dict[str, Any]) -> None:
        """Append one line durably (fsync), then index it."""
        with self._open(namespace) as connection:
            with self.path(namespace).open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(line, default=str) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            self._catch_up(namespace, connection)

    # ---- reading -----------------------------------------------------------------------------------

    def recent_unkeyed(
        self, namespace: str, *, since: datetime, limit: int
    ) -> list[tuple[dict[str, Any], np.ndarray[Any, np.dtype[np.float32]]]]:
        """Up to ``limit`` most recent outcomes without a task key recorded since ``since``, oldest first."""
        with self._open(namespace) as connection:
            rows = connection.execute(
                "SELECT body, vector FROM outcomes WHERE keyed = 0 AND recorded_at >= ? AND vector IS NOT NULL "
                "ORDER BY seq DESC LIMIT ?",
                (since.timestamp(), limit),
            ).fetchall()
        return [(json.loads(body), np.frombuffer(vector, dtype=np.float32)) for body, vector in reversed(rows)]

    def open_members(self, namespace: str, group_id: str, *, limit: int) -> list[dict[str, Any]]:
        """The last ``limit`` outcomes of a group not yet reflected on, oldest first."""
        with self._open(namespace) as connection:
            rows = connection.execute(
                "SELECT body FROM outcomes WHERE group_id = ? AND outcome_id NOT IN (SELECT outcome_id FROM reflected) "
                "ORDER BY seq DESC LIMIT ?",
                (group_id, limit),
            ).fetchall()
        return [json.loads(body) for (body,) in reversed(rows)]

    def page(
        self, namespace: str, *, offset: int, limit: int, group_id: str | None = None
    ) -> tuple[list[dict[str, Any]], bool]:
        """A page of outcomes, newest first, and whether more follow."""
        where, arguments = ("WHERE group_id = ?", [group_id]) if group_id is not None else ("", [])
        with self._open(namespace) as connection:
            rows = connection.execute(
                f"SELECT body FROM outcomes {where} ORDER BY seq DESC LIMIT ? OFFSET ?",
                (*arguments, limit + 1, offset),
            ).fetchall()
        return [json.loads(body) for (body,) in rows[:limit]], len(rows) > limit

    def by_ids(self, namespace: str, outcome_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The outcomes with these ids, in the order given (unknown ids are left out)."""
        if not outcome_ids:
            return []
        with self._open(namespace) as connection:
            found: dict[str, dict[str, Any]] = {}
            for start in range(0, len(outcome_ids), 500):
                chunk = list(outcome_ids[start : start + 500])
                marks = ",".join("?" * len(chunk))
                query = f"SELECT outcome_id, body FROM outcomes WHERE outcome_id IN ({marks})"
                found.update((key, json.loads(body)) for key, body in connection.execute(query, chunk))
        return [found[key] for key in outcome_ids if key in found]

    def reflections_of(self, namespace: str, outcome_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The latest reflection line of each of these outcomes that has one."""
        if not outcome_ids:
            return {}
        with self._open(namespace) as connection:
            marks = ",".join("?" * len(outcome_ids))
            query = f"SELECT outcome_id, body FROM reflected WHERE outcome_id IN ({marks})"
            return {key: json.loads(body) for key, body in connection.execute(query, list(outcome_ids))}
