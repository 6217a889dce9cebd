"""Every model call of a run goes through here: one concurrency limit, accounting, and what each backend supports."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Literal

import anyio

from debrief.learner.accounting import Ledger, PriceTable, TokenCount
from debrief.learner.backend import Backends, ChatReply, ChatRequest, Role

StructuredMode = Literal["json_schema", "json_object", "plain"]
"""How structured output is asked for: a JSON schema, a JSON object with a schema, or plain prompting."""


class Caller:
    """Sends requests for one run: shares one :class:`anyio.CapacityLimiter` across all stages.

    It remembers, per role, whether the backend honours ``n`` and which structured mode worked, so later calls
    skip what failed before.
    """

    def __init__(
        self,
        backends: Backends,
        *,
        concurrency: int,
        prices: PriceTable,
        on_usage: Callable[[TokenCount], None] | None = None,
    ) -> None:
        self.backends = backends
        self.limiter = anyio.CapacityLimiter(concurrency)
        self.prices = prices
        self.ledger = Ledger(prices)
        self.honours_n: dict[Role, bool] = {}
        self.structured_modes: dict[Role, StructuredMode] = {}
        self._on_usage = on_usage

    async def complete(self, request: ChatRequest) -> tuple[ChatReply, TokenCount]:
        """Send one request under the shared limit and account for it."""
        backend = self.backends.for_role(request.role)
        async with self.limiter:
            reply = await backend.complete(request)
        count = self.ledger.record(request.stage, reply.model, reply.usage)
        if self._on_usage is not None:
            self._on_usage(count)
        return reply, count

    async def sample(self, request: ChatRequest, group_size: int) -> tuple[list[str], TokenCount]:
        """``group_size`` choices for ``request``: one request with ``n = G`` where honoured, else single requests.

        When a backend returns fewer choices than asked for, the missing ones are asked for one by one (with
        consecutive seeds) and the backend is remembered as not honouring ``n``.
        """
        texts: list[str] = []
        spent = TokenCount()
        base_seed = request.seed or 0
        if group_size > 1 and self.honours_n.get(request.role, True):
            reply, count = await self.complete(replace(request, n=group_size))
            texts.extend(reply.texts[:group_size])
            spent = spent.plus(count)
            self.honours_n[request.role] = len(reply.texts) >= group_size
        missing = range(len(texts), group_size)
        singles: dict[int, str] = {}

        async def one(index: int) -> None:
            nonlocal spent
            reply, count = await self.complete(replace(request, n=1, seed=base_seed + index))
            spent = spent.plus(count)
            singles[index] = reply.texts[0] if reply.texts else ""

        async with anyio.create_task_group() as group:
            for index in missing:
                group.start_soon(one, index)
        texts.extend(singles[index] for index in missing)
        return texts, spent
