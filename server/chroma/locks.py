"""Advisory file locks (``fcntl.flock``) that keep several Debrief processes on one data dir safe.

``flock`` locks belong to an open file description, so two opens of the same file conflict even inside one
process: a store behaves the same whether its rivals are threads, tasks or other processes.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.to_thread


class FileLock:
    """One open file description of a lock file, locked shared or exclusive."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, *, exclusive: bool, blocking: bool) -> bool:
        """Take (or convert) the lock; ``False`` when ``blocking`` is off and someone else holds it."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        flags = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        if not blocking:
            flags |= fcntl.LOCK_NB
        try:
            fcntl.flock(self._fd, flags)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        """Drop the lock by closing the file description."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        """Whether this object has the file open (and so holds whatever lock it took)."""
        return self._fd is not None


class WriteLock:
    """Serializes writes: an anyio lock among this object's tasks, then an exclusive flock among processes.

    The flock is held only while one write runs, and taken in a worker thread so the event loop never blocks.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._local = anyio.Lock()

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """Hold the write lock for the body of the ``async with``."""
        async with self._local:
            lock = FileLock(self._path)
            try:
                await anyio.to_thread.run_sync(lambda: lock.acquire(exclusive=True, blocking=True))
                yield
            finally:
                lock.release()
