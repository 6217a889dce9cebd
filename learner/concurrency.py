"""Adaptive concurrency per endpoint: additive increase while healthy, multiplicative decrease on overload.

An endpoint's capacity is unknown in advance, so a fixed limit is a guess: too low wastes the floor, too high
meets 429s. :class:`AdaptiveLimiter` starts high (the maximum a user allows), halves its limit when the endpoint
answers 429/503 (once per burst: only requests started after the last decrease can trigger the next one),
pauses every new request while the endpoint's ``Retry-After`` runs, and grows back by one request per window of
successes, the way TCP's congestion window does.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio


@dataclass
class LimiterStats:
    """What a limiter did: for run records and benchmarks."""

    peak_in_flight: int = 0
    lowest_limit: float = math.inf
    decreases: int = 0
    paused_seconds: float = 0.0


class AdaptiveLimiter:
    """Requests in flight to one endpoint, under a limit that adapts (AIMD) between 1 and ``maximum``.

    ``adaptive=False`` keeps the limit fixed at ``maximum`` (overload still pauses for ``Retry-After``). Waiters
    are served first come, first served.
    """

    def __init__(self, maximum: int, *, start: int | None = None, adaptive: bool = True) -> None:
        self.maximum = max(1, maximum)
        self.adaptive = adaptive
        self.limit = float(min(self.maximum, start or self.maximum))
        self.in_flight = 0
        self.stats = LimiterStats(lowest_limit=self.limit)
        self._waiters: deque[anyio.Event] = deque()
        self._started = 0
        self._decreased_after = 0
        self._paused_until = 0.0

    def _can_start(self) -> bool:
        return self.in_flight < max(1, int(self.limit)) and anyio.current_time() >= self._paused_until

    def _dispatch(self) -> None:
        while self._waiters and self._can_start():
            self.in_flight += 1
            self._waiters.popleft().set()

    async def _acquire(self) -> int:
        event = anyio.Event()
        self._waiters.append(event)
        try:
            while True:
                self._dispatch()
                if event.is_set():
                    break
                pause = self._paused_until - anyio.current_time()
                with anyio.move_on_after(pause if pause > 0 else math.inf):
                    await event.wait()
                if event.is_set():
                    break
        except BaseException:
            if event.is_set():
                self.in_flight -= 1
                self._dispatch()
            else:
                self._waiters.remove(event)
            raise
        self._started += 1
        self.stats.peak_in_flight = max(self.stats.peak_in_flight, self.in_flight)
        return self._started

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[int]:
        """Hold one place in flight; yields the request's sequence number (for :meth:`overloaded`)."""
        ticket = await self._acquire()
        try:
            yield ticket
        finally:
            self.in_flight -= 1
            self._dispatch()

    def succeeded(self) -> None:
        """One request went through: grow by one request per window of successes."""
        if self.adaptive and self.limit < self.maximum:
            self.limit = min(float(self.maximum), self.limit + 1.0 / self.limit)
            self._dispatch()

    def overloaded(self, ticket: int, retry_after: float | None) -> None:
        """The request numbered ``ticket`` met 429/503: halve the limit once per burst and honour ``retry_after``."""
        if retry_after is not None and retry_after > 0:
            until = anyio.current_time() + retry_after
            if until > self._paused_until:
                self.stats.paused_seconds += until - max(self._paused_until, anyio.current_time())
                self._paused_until = until
        if self.adaptive and ticket > self._decreased_after:
            self.limit = max(1.0, self.limit / 2)
            self._decreased_after = self._started
            self.stats.decreases += 1
            self.stats.lowest_limit = min(self.stats.lowest_limit, self.limit)
