"""The daily spending cap across every run and reflection of a data dir, in every process.

``<data_dir>/spend/ledger.json`` holds dollars spent per UTC day and the reservations of work in progress,
read and written under an exclusive ``flock``. Work reserves its dollar budget before it starts (at most what is
left of today's cap after what was spent and what others hold); the learner's per-request budget keeps it
inside that. When it stops, what it really spent is counted on that day and the rest of its hold returns.
Holds of processes that died are dropped on the next read, so a crash frees its share.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from debrief.server.chroma.locks import FileLock
from debrief.server.errors import Conflict
from debrief.server.learning.run_records import pid_alive

MINIMUM_GRANT_USD = 1e-6
"""Below this, nothing is left to grant."""


def _today() -> date:
    return datetime.now(UTC).date()


@dataclass(frozen=True, kw_only=True)
class Grant:
    """What a reservation gave: the dollar budget to run with (``None``: no cap and none asked for)."""

    holder: str
    budget_usd: float | None


class SpendLedger:
    """Dollars spent per day and the holds of running work, shared through a locked file."""

    def __init__(self, data_dir: Path, cap_usd: float | None) -> None:
        self.cap_usd = cap_usd
        self._dir = data_dir / "spend"
        self._path = self._dir / "ledger.json"

    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        self._dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self._dir / "ledger.lock")
        try:
            lock.acquire(exclusive=True, blocking=True)
            state: dict[str, Any] = {"days": {}, "holds": {}}
            if self._path.exists():
                state.update(json.loads(self._path.read_text(encoding="utf-8") or "{}"))
            state["holds"] = {key: hold for key, hold in state["holds"].items() if pid_alive(hold.get("pid"))}
            yield state
            temporary = self._path.with_suffix(".tmp")
            temporary.write_text(json.dumps(state, indent=1), encoding="utf-8")
            os.replace(temporary, self._path)
        finally:
            lock.release()

    @staticmethod
    def _held(state: dict[str, Any], *, besides: str | None = None) -> float:
        return sum(
            max(float(hold["granted"]) - float(hold["counted"]), 0.0)
            for key, hold in state["holds"].items()
            if key != besides and hold["granted"] is not None
        )

    def spent_on(self, day: date) -> float:
        """Dollars counted on ``day`` (UTC)."""
        with self._locked() as state:
            return float(state["days"].get(day.isoformat(), 0.0))

    def _left(self, state: dict[str, Any], holder: str | None) -> float:
        """What is left of today's cap for ``holder``; raises Conflict when nothing is."""
        assert self.cap_usd is not None
        spent = float(state["days"].get(_today().isoformat(), 0.0))
        held = self._held(state, besides=holder)
        left = self.cap_usd - spent - held
        if left < MINIMUM_GRANT_USD:
            raise Conflict(
                f"today's learning budget of ${self.cap_usd:.2f} (DEBRIEF_DAILY_BUDGET_USD) is used up: "
                f"${spent:.4f} spent and ${held:.4f} held by runs in progress; try again when they finish, "
                "tomorrow (UTC), or raise the cap"
            )
        return left

    def check(self) -> None:
        """Refuse at once when today's cap leaves nothing to grant.

        Raises:
            Conflict: today's cap is spent or entirely held by work in progress.
        """
        if self.cap_usd is not None:
            with self._locked() as state:
                self._left(state, None)

    def reserve(self, holder: str, budget_usd: float | None) -> Grant:
        """Hold up to ``budget_usd`` (all that is left of today's cap when ``None``) for ``holder``.

        Raises:
            Conflict: today's cap is spent or entirely held by work in progress.
        """
        with self._locked() as state:
            granted = budget_usd
            if self.cap_usd is not None:
                left = self._left(state, holder)
                granted = left if budget_usd is None else min(budget_usd, left)
            state["holds"][holder] = {"granted": granted, "counted": 0.0, "pid": os.getpid()}
            return Grant(holder=holder, budget_usd=granted)

    def count(self, holder: str, spent_usd: float) -> None:
        """``holder`` has spent ``spent_usd`` in all since it reserved: count the increase today."""
        with self._locked() as state:
            hold = state["holds"].get(holder)
            already = float(hold["counted"]) if hold is not None else 0.0
            increase = max(spent_usd - already, 0.0)
            if increase:
                key = _today().isoformat()
                state["days"][key] = float(state["days"].get(key, 0.0)) + increase
            if hold is not None:
                hold["counted"] = max(spent_usd, already)

    def release(self, holder: str, spent_usd: float) -> None:
        """Count what ``holder`` spent and return the rest of its hold."""
        self.count(holder, spent_usd)
        with self._locked() as state:
            state["holds"].pop(holder, None)
