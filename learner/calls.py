"""Every model call of a run goes through here: adaptive concurrency per endpoint, retries, budget, accounting."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import anyio

from debrief.learner.accounting import Ledger, PriceTable, TokenCount
from debrief.learner.backend import Backends, ChatBackend, ChatReply, ChatRequest, Role, Usage, estimate_tokens
from debrief.learner.budget import RequestBudget
from debrief.learner.concurrency import AdaptiveLimiter
from debrief.learner.config import RunConfig
from debrief.learner.errors import BackendError

StructuredMode = Literal["json_schema", "json_object", "plain"]
"""How structured output is asked for: a JSON schema, a JSON object with a schema, or plain prompting."""

UNCAPPED_COMPLETION_ESTIMATE = 4096
"""Completion tokens a request without ``max_tokens`` is assumed to need, for its budget reservation."""


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How transient failures (5xx, 408/409/429, timeouts, connection errors) are retried, in every stage."""

    max_retries: int = 6
    backoff: float = 0.5
    """First wait in seconds; doubled per retry, with jitter, up to ``backoff_max``."""
    backoff_max: float = 30.0
    request_timeout: float | None = None
    """Seconds one request may take before it counts as a transient failure; ``None`` leaves it to the backend."""
    retry_after_max: float = 300.0
    """Longest ``Retry-After`` honoured as given; a longer one waits this long."""

    @classmethod
    def of(cls, config: RunConfig) -> RetryPolicy:
        """The retry settings of a run."""
        return cls(max_retries=config.max_retries, backoff=config.retry_backoff, request_timeout=config.request_timeout)

    def delay(self, attempt: int, error: BackendError) -> float:
        """The wait before retry ``attempt + 1``: the endpoint's ``Retry-After`` when it gave one, else backoff."""
        if error.retry_after is not None and error.retry_after >= 0:
            return min(error.retry_after, self.retry_after_max)
        return float(min(self.backoff_max, self.backoff * 2**attempt) * (0.5 + random.random() / 2))


class Caller:
    """Sends requests for one run.

    Each distinct backend object (endpoint) gets its own :class:`AdaptiveLimiter`, starting at ``concurrency``
    and backing off on 429/503. Transient failures are retried with backoff (the limiter slot is released while
    waiting); ``retried`` counts those retries. With a ``budget`` every request reserves its worst case first.
    The caller also remembers, per role, whether the backend honours ``n`` and which structured mode worked, so
    later calls skip what failed before.
    """

    def __init__(
        self,
        backends: Backends,
        *,
        concurrency: int,
        prices: PriceTable,
        on_usage: Callable[[TokenCount], None] | None = None,
        adaptive: bool = True,
        retry: RetryPolicy | None = None,
        budget: RequestBudget | None = None,
        reflect_concurrency: int | None = None,
    ) -> None:
        self.backends = backends
        self.concurrency = concurrency
        self.reflect_concurrency = reflect_concurrency
        self.adaptive = adaptive
        self.retry = retry or RetryPolicy()
        self.budget = budget
        self.prices = prices
        self.ledger = Ledger(prices)
        self.honours_n: dict[Role, bool] = {}
        self.structured_modes: dict[Role, StructuredMode] = {}
        self.retried = 0
        self.limiters: dict[int, AdaptiveLimiter] = {}
        self._on_usage = on_usage

    def limiter(self, backend: ChatBackend, role: Role = "policy") -> AdaptiveLimiter:
        """The limiter of ``backend``'s endpoint (one per backend object; its maximum from the first role using it)."""
        key = id(backend)
        if key not in self.limiters:
            maximum = self.concurrency
            if role != "policy" and self.reflect_concurrency is not None:
                maximum = self.reflect_concurrency
            self.limiters[key] = AdaptiveLimiter(maximum, adaptive=self.adaptive)
        return self.limiters[key]

    def _estimate(self, request: ChatRequest, model: str) -> tuple[int, float]:
        prompt = sum(estimate_tokens(message.content) for message in request.messages)
        completion = (request.max_tokens or UNCAPPED_COMPLETION_ESTIMATE) * request.n
        usage = Usage(prompt_tokens=prompt, completion_tokens=completion)
        return prompt + completion, self.prices.cost(model, usage)

    async def _once(self, backend: ChatBackend, request: ChatRequest, limiter: AdaptiveLimiter) -> ChatReply:
        async with limiter.slot() as ticket:
            try:
                if self.retry.request_timeout is None:
                    reply = await backend.complete(request)
                else:
                    with anyio.fail_after(self.retry.request_timeout):
                        reply = await backend.complete(request)
            except TimeoutError as error:
                raise BackendError(
                    f"{request.stage} request timed out after {self.retry.request_timeout:g}s", transient=True
                ) from error
            except BackendError as error:
                if error.overload:
                    limiter.overloaded(ticket, error.retry_after)
                raise
            limiter.succeeded()
            return reply

    async def complete(self, request: ChatRequest) -> tuple[ChatReply, TokenCount]:
        """Send one request under its endpoint's limit and the budget, retrying transient failures; account for it.

        Raises:
            BackendError: a permanent failure, or a transient one that outlasted the retries.
            BudgetExhausted: the request would take the run past its budget; nothing was sent.
        """
        backend = self.backends.for_role(request.role)
        limiter = self.limiter(backend, request.role)
        model = str(getattr(backend, "model", ""))
        attempt = 0
        while True:
            reservation = None
            if self.budget is not None and self.budget.limited:
                reservation = await self.budget.reserve(*self._estimate(request, model))
            try:
                reply = await self._once(backend, request, limiter)
            except BackendError as error:
                if reservation is not None and self.budget is not None:
                    self.budget.settle(reservation, None)
                if not error.transient or attempt >= self.retry.max_retries:
                    raise
                delay = self.retry.delay(attempt, error)
                attempt += 1
                self.retried += 1
                await anyio.sleep(delay)
                continue
            count = self.ledger.record(request.stage, reply.model, reply.usage)
            if self.budget is not None:
                if reservation is not None:
                    self.budget.settle(reservation, count)
                else:
                    self.budget.spent = self.budget.spent.plus(count)
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
