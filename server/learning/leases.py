"""Run leases: one process at a time runs a given learning run, whatever servers or CLIs share the data dir.

A lease is an exclusive, non-blocking ``flock`` on ``<run dir>/lease.lock``, taken before a run starts or
resumes and held until it stops. The kernel drops it when the holder dies, so a crash never leaves a run
locked; the holder's pid is written into the file only to name it in the refusal.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from debrief.server.errors import Conflict

LEASE_FILE = "lease.lock"


class RunLease:
    """The lease on one run's directory; :meth:`take` it, :meth:`release` it when the run stops."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LEASE_FILE
        self._fd: int | None = None

    def take(self) -> RunLease:
        """Hold the lease, or refuse at once.

        Raises:
            Conflict: another process (or another holder in this one) is running the run.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            run_id = self.path.parent.name
            raise Conflict(
                f"run {run_id!r} is being run by another process (pid {holder}); wait for it to stop, or cancel it "
                "there, before resuming it here"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Let the lease go (closing the file drops the lock)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lease."""
        return self._fd is not None
