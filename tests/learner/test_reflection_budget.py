"""An outcome reflection spends no more than its config's budget (the server's share of the daily cap)."""

from __future__ import annotations

import anyio
import pytest

from debrief.learner import (
    Backends,
    FunctionBackend,
    InMemoryLibrary,
    ModelPrice,
    PriceTable,
    Provenance,
    RecordedAttempt,
    RunConfig,
    reflect_on_attempts,
)
from tests.learner.scripted import reflector

pytestmark = pytest.mark.anyio

ATTEMPTS = [
    RecordedAttempt(attempt_id="o-1", account="Added the columns without carrying.", reward=0.0),
    RecordedAttempt(attempt_id="o-2", account="Added the columns, carrying into the tens.", reward=1.0),
]


async def reflect(budget_usd: float | None) -> tuple[str | None, int, InMemoryLibrary]:
    backend = FunctionBackend(reflector(), model="reflect-model")
    library = InMemoryLibrary()
    prices = PriceTable(default=ModelPrice(input_per_million=1000.0, output_per_million=1000.0))
    with anyio.fail_after(10):
        report = await reflect_on_attempts(
            task="Add the two-digit numbers on the invoice.",
            attempts=ATTEMPTS,
            backends=Backends(policy=backend),
            library=library,
            provenance=Provenance(kind="outcome", outcome_ids=["o-1", "o-2"]),
            reason="outcomes disagree",
            config=RunConfig(prices=prices, budget_usd=budget_usd, reflect_max_tokens=200),
        )
    return report.error, len(backend.calls), library


async def test_a_reflection_whose_budget_cannot_cover_a_request_sends_none_and_changes_nothing() -> None:
    error, calls, library = await reflect(budget_usd=0.0001)
    assert error is not None and "budget" in error
    assert calls == 0
    assert await library.entries() == []


async def test_without_a_budget_the_reflection_runs_as_before() -> None:
    error, calls, library = await reflect(budget_usd=None)
    assert error is None and calls > 0
    assert len(await library.entries()) == 1
