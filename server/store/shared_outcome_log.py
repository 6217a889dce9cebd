"""The outcome log kept in the shared Chroma (``DEBRIEF_CHROMA_URL``), so every host sees every outcome.

Each line is a document ``<namespace>/<seq:012d>`` in the :data:`~debrief.server.store.shared_docs.OUTCOME_LOG`
collection. A host appends by claiming the next sequence number (Chroma keeps the first add of an id; a host
that loses the race catches up and claims the one after), so the log stays gapless and ordered across hosts.
Each host keeps its own SQLite index of the log (the same index as :class:`~debrief.server.store.outcome_log.
OutcomeLog`, in its data dir) and catches it up with the lines other hosts appended before every query.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

from debrief.server.store.outcome_log import OutcomeLog
from debrief.server.store.shared_docs import OUTCOME_LOG, SharedDocuments

logger = logging.getLogger(__name__)

_FIRST_BATCH = 8
_BATCH = 1000


def line_id(namespace: str, seq: int) -> str:
    """Chroma id of a namespace's ``seq``-th line (from 1)."""
    return f"{namespace}/{seq:012d}"


class SharedOutcomeLog(OutcomeLog):
    """An :class:`OutcomeLog` whose lines live in Chroma; ``root`` (this host's data dir) holds only the index."""

    def __init__(self, root: Path, client: Any) -> None:
        super().__init__(root)
        self._documents = SharedDocuments(client, OUTCOME_LOG)

    @staticmethod
    def _seen(connection: sqlite3.Connection) -> int:
        row = connection.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()
        return int(row[0]) if row else 0

    def _catch_up(self, namespace: str, connection: sqlite3.Connection) -> None:
        seen, batch = self._seen(connection), _FIRST_BATCH
        while True:
            # Usually nothing or a line or two is new: ask for a few ids, then for more while every one is there.
            got = self._documents.get([line_id(namespace, seq) for seq in range(seen + 1, seen + 1 + batch)])
            added = 0
            with connection:
                # Only the unbroken run after what is indexed: a line is claimed only after the one before it.
                while (found := got.get(line_id(namespace, seen + added + 1))) is not None:
                    self._ingest(connection, self.path(namespace), found[0].encode("utf-8"))
                    added += 1
                seen += added
                connection.execute(
                    "INSERT INTO meta (key, value) VALUES ('seq', ?) ON CONFLICT (key) DO UPDATE SET value = ?",
                    (seen, seen),
                )
            if added < batch:
                return
            batch = min(batch * 4, _BATCH)

    def append(self, namespace: str, line: dict[str, Any]) -> None:
        """Claim the next line of the namespace's shared log for ``line`` (retrying past other hosts), then index it."""
        document = json.dumps(line, default=str)
        with self._open(namespace) as connection:
            while True:
                seq = self._seen(connection) + 1
                if self._documents.claim(line_id(namespace, seq), document, {"namespace": namespace, "seq": seq}):
                    break
                self._catch_up(namespace, connection)  # another host took ``seq``: read its line, try the next
            self._catch_up(namespace, connection)
