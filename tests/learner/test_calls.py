from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from debrief.learner import Backends, FunctionBackend, PriceTable
from debrief.learner.accounting import ModelPrice, TokenCount, budget_stop_reason
from debrief.learner.backend import ChatRequest, Message, Usage
from debrief.learner.calls import Caller

pytestmark = pytest.mark.anyio

REQUEST = ChatRequest(
    role="policy", stage="rollout", temperature=0.7, seed=100, messages=(Message(role="user", content="Q?"),)
)


def sample_text(request: ChatRequest, choice: int) -> str:
    return f"sample {(request.seed or 0) + choice}"


async def test_a_group_is_one_request_with_n_when_honoured() -> None:
    backend = FunctionBackend(sample_text)
    caller = Caller(Backends(policy=backend), concurrency=4, prices=PriceTable())
    with anyio.fail_after(5):
        texts, spent = await caller.sample(REQUEST, 5)
    assert texts == [f"sample {100 + i}" for i in range(5)]
    assert len(backend.calls) == 1 and backend.calls[0].n == 5
    assert spent.requests == 1
    assert caller.honours_n["policy"] is True


async def test_fewer_choices_than_asked_fall_back_to_single_requests_and_are_remembered() -> None:
    backend = FunctionBackend(sample_text, honours_n=False)
    caller = Caller(Backends(policy=backend), concurrency=4, prices=PriceTable())
    with anyio.fail_after(5):
        first, spent = await caller.sample(REQUEST, 5)
        second, _ = await caller.sample(REQUEST, 5)
    assert first == second == [f"sample {100 + i}" for i in range(5)]
    assert [call.n for call in backend.calls] == [5, 1, 1, 1, 1] + [1] * 5
    assert spent.requests == 5
    assert caller.honours_n["policy"] is False


async def test_one_concurrency_limit_is_shared_by_every_stage() -> None:
    in_flight = 0
    peak = 0

    async def answer(request: ChatRequest, choice: int) -> str:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        for _ in range(5):
            await anyio.lowlevel.checkpoint()
        in_flight -= 1
        return "{}"

    backend = FunctionBackend(answer)
    caller = Caller(Backends(policy=backend, reflect=backend), concurrency=3, prices=PriceTable())
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            for _ in range(4):
                for request in (
                    REQUEST,
                    ChatRequest(role="reflect", stage="summary", temperature=0, messages=REQUEST.messages),
                    ChatRequest(role="reflect", stage="advantage", temperature=0, messages=REQUEST.messages),
                ):
                    group.start_soon(caller.complete, request)
    assert peak == 3
    assert set(caller.ledger.by_stage) == {"rollout", "summary", "advantage"}
    assert caller.ledger.total.requests == 12


def test_cached_prompt_tokens_cost_the_cached_price() -> None:
    prices = PriceTable(
        models={"m": ModelPrice(input_per_million=2.0, cached_input_per_million=0.5, output_per_million=8.0)}
    )
    usage = Usage(prompt_tokens=1_000_000, cached_tokens=400_000, completion_tokens=100_000, requests=1)
    assert prices.cost("m", usage) == pytest.approx(0.6 * 2 + 0.4 * 0.5 + 0.1 * 8)
    assert prices.cost("unknown", usage) == 0.0


def test_the_budget_stops_before_a_step_that_would_overrun_it() -> None:
    step = TokenCount(prompt_tokens=600, completion_tokens=100, cost_usd=1.0)
    assert budget_stop_reason(TokenCount(), [], budget_tokens=1000, budget_usd=None) is None
    assert budget_stop_reason(step, [step], budget_tokens=1500, budget_usd=None) is None
    assert budget_stop_reason(step, [step], budget_tokens=1000, budget_usd=None) is not None
    reason = budget_stop_reason(step, [step], budget_tokens=None, budget_usd=1.5)
    assert reason is not None and "$1.5" in reason
