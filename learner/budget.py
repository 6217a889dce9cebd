"""A run's token and dollar budget, held per request: each request reserves its worst case before it is sent.

A request reserves its estimated prompt plus ``max_tokens`` for each choice. It is sent only if what is spent,
plus what requests in flight have reserved, plus its own reservation stays within the budget; while other
requests are in flight it waits for them to settle first, and it is refused (:class:`BudgetExhausted`) only when
what is already spent leaves no room. So a run never overspends by more than its in-flight requests' estimates
were short.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio

from debrief.learner.accounting import TokenCount
from debrief.learner.errors import BudgetExhausted


@dataclass(frozen=True, kw_only=True)
class Reservation:
    """What one request set aside."""

    tokens: int
    usd: float


class RequestBudget:
    """The budget of one run, shared by all its requests. ``None`` limits are unlimited."""

    def __init__(self, *, tokens: int | None, usd: float | None, spent: TokenCount | None = None) -> None:
        self.tokens = tokens
        self.usd = usd
        self.spent = spent or TokenCount()
        self.reserved_tokens = 0
        self.reserved_usd = 0.0
        self.exhausted: str | None = None
        self._settled = anyio.Event()

    @property
    def limited(self) -> bool:
        """Whether there is any limit at all."""
        return self.tokens is not None or self.usd is not None

    def _fits(self, tokens: int, usd: float, *, with_reserved: bool) -> bool:
        held_tokens = self.reserved_tokens if with_reserved else 0
        held_usd = self.reserved_usd if with_reserved else 0.0
        if self.tokens is not None and self.spent.total_tokens + held_tokens + tokens > self.tokens:
            return False
        return self.usd is None or self.spent.cost_usd + held_usd + usd <= self.usd

    async def reserve(self, tokens: int, usd: float) -> Reservation:
        """Set aside ``tokens`` and ``usd``; wait for requests in flight if needed; refuse when nothing is left."""
        while not self._fits(tokens, usd, with_reserved=True):
            if (
                self.reserved_tokens == 0
                and self.reserved_usd == 0.0
                or not self._fits(tokens, usd, with_reserved=False)
            ):
                self.exhausted = (
                    f"the next request needs up to {tokens} tokens (${usd:.4f}) but only "
                    f"{self._left()} of the budget is left ({self.spent.total_tokens} tokens, "
                    f"${self.spent.cost_usd:.4f} spent)"
                )
                raise BudgetExhausted(self.exhausted)
            await self._settled.wait()
        self.reserved_tokens += tokens
        self.reserved_usd += usd
        return Reservation(tokens=tokens, usd=usd)

    def settle(self, reservation: Reservation, actual: TokenCount | None) -> None:
        """Release ``reservation`` and count what the request really spent (``None``: it failed unbilled)."""
        self.reserved_tokens -= reservation.tokens
        self.reserved_usd -= reservation.usd
        if actual is not None:
            self.spent = self.spent.plus(actual)
        self._settled.set()
        self._settled = anyio.Event()

    def _left(self) -> str:
        parts = []
        if self.tokens is not None:
            parts.append(f"{max(0, self.tokens - self.spent.total_tokens)} tokens")
        if self.usd is not None:
            parts.append(f"${max(0.0, self.usd - self.spent.cost_usd):.4f}")
        return " / ".join(parts)
