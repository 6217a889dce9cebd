"""Faults in the model backend: retries in every stage, adaptive concurrency, budgets held per request."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from pydantic import BaseModel

from debrief.learner import (
    BackendError,
    Backends,
    FunctionBackend,
    InMemoryLibrary,
    PriceTable,
    RunConfig,
    RunReport,
    make_verifier,
    run_learning,
)
from debrief.learner.accounting import TokenCount
from debrief.learner.backend import ChatRequest, Message, Stage
from debrief.learner.budget import RequestBudget
from debrief.learner.calls import Caller, RetryPolicy
from debrief.learner.concurrency import AdaptiveLimiter
from debrief.learner.errors import BudgetExhausted, ResponseFormatRejected
from debrief.learner.openai_backend import OpenAIBackend, format_refused
from debrief.learner.structured import ask_structured
from tests.learner.fake_openai import FakeOpenAI, json_reply, serve
from tests.learner.scripted import LESSON, addition_problems, policy, reflector

pytestmark = pytest.mark.anyio

_STAGES: dict[str, Stage] = {
    "AttemptSummary": "summary",
    "GroupAdvantage": "advantage",
    "ConsolidationPlan": "consolidation",
    "JudgeVerdict": "judge",
}
_REFLECT = reflector()


def scripted_world(body: dict[str, Any], choice: int) -> str:
    """The scripted policy and reflector of tests/learner/scripted.py, answering over HTTP."""
    messages = tuple(Message(role=item["role"], content=item.get("content") or "") for item in body["messages"])
    response_format = body.get("response_format") or {}
    name = (response_format.get("json_schema") or {}).get("name") or (response_format.get("schema") or {}).get("title")
    if name is None:
        request = ChatRequest(
            role="policy", stage="rollout", temperature=0.7, messages=messages, seed=body.get("seed"), n=1
        )
        return policy(request, choice)
    request = ChatRequest(role="reflect", stage=_STAGES[name], temperature=0.0, messages=messages)
    return _REFLECT(request, choice)


async def learn_over_http(fake: FakeOpenAI, config: RunConfig) -> tuple[RunReport, InMemoryLibrary]:
    library = InMemoryLibrary()
    with anyio.fail_after(90):
        async with serve(fake) as url:
            async with OpenAIBackend(model="fake-model", base_url=url, api_key="k", timeout=10.0) as backend:
                report = await run_learning(
                    config,
                    backends=Backends(policy=backend),
                    library=library,
                    problems=addition_problems(16),
                    verifier=make_verifier("exact"),
                )
    return report, library


async def test_5xx_timeouts_and_truncated_json_lose_no_group_and_the_status_tells_the_truth() -> None:
    fake = FakeOpenAI(
        reply=scripted_world, fail_rate=0.2, hang_rate=0.05, truncate_rate=0.2, faults_per_request=2, seed=3
    )
    config = RunConfig(
        run_id="faults",
        epochs=1,
        batch_size=8,
        seed=7,
        reflection_input="summaries",
        retry_backoff=0.0,
        request_timeout=1.0,
        concurrency=32,
    )

    report, library = await learn_over_http(fake, config)

    assert fake.faults.get("5xx", 0) > 5 and fake.faults.get("hang", 0) > 0 and fake.faults.get("truncated", 0) > 0
    assert report.status == "succeeded" and report.failed_groups == [] and report.failed_consolidations == 0
    assert all(step.groups_failed == 0 for step in report.steps)
    assert report.retried_requests >= fake.faults["5xx"]
    structured = {body["response_format"]["type"] for body in fake.bodies if body.get("response_format")}
    assert structured == {"json_schema"}, "a transient failure stepped the JSON mode down"
    assert [entry.text for entry in await library.entries()] == [LESSON]


async def test_429_above_n_in_flight_backs_off_and_the_run_completes_with_no_group_failed() -> None:
    fake = FakeOpenAI(reply=scripted_world, max_in_flight=4, retry_after="0.02", latency=0.01)
    config = RunConfig(run_id="limited", epochs=1, batch_size=16, seed=7, retry_backoff=0.0, concurrency=64)

    report, library = await learn_over_http(fake, config)

    assert fake.faults.get("429", 0) > 0
    assert report.status == "succeeded" and all(step.groups_failed == 0 for step in report.steps)
    assert report.retried_requests == fake.faults["429"]
    assert [entry.text for entry in await library.entries()] == [LESSON]


class Verdict(BaseModel):
    verdict: str


JUDGE = ChatRequest(role="judge", stage="judge", temperature=0.0, messages=(Message(role="user", content="Grade."),))


async def test_a_500_on_a_structured_request_is_retried_and_never_steps_the_json_mode_down() -> None:
    fake = FakeOpenAI(reply=json_reply({"verdict": "correct"}), fail_first=[500, 500])
    with anyio.fail_after(20):
        async with serve(fake) as url:
            async with OpenAIBackend(model="m", base_url=url, api_key="k") as adapter:
                caller = Caller(
                    Backends(policy=adapter), concurrency=2, prices=PriceTable(), retry=RetryPolicy(backoff=0.0)
                )
                assert (await ask_structured(caller, JUDGE, Verdict)).verdict == "correct"
    assert [body["response_format"]["type"] for body in fake.bodies] == ["json_schema"] * 3
    assert caller.structured_modes["judge"] == "json_schema" and caller.retried == 2


async def test_a_429_carries_its_retry_after_to_the_caller() -> None:
    fake = FakeOpenAI(fail_first=[429])
    with anyio.fail_after(20):
        async with serve(fake) as url:
            async with OpenAIBackend(model="m", base_url=url, api_key="k") as adapter:
                with pytest.raises(BackendError) as raised:
                    await adapter.complete(JUDGE)
    assert raised.value.status == 429 and raised.value.overload and raised.value.transient
    assert raised.value.retry_after == 0.0


def test_only_a_clear_signal_counts_as_a_refused_response_format() -> None:
    llama_cpp = "1 validation error: response_format.type Input should be 'text' or 'json_object'"
    assert format_refused(400, "response_format json_schema is not allowed for this model")
    assert format_refused(422, "unknown field json_schema")
    assert format_refused(500, llama_cpp)
    assert not format_refused(500, "upstream error")
    assert not format_refused(503, "service unavailable")
    assert not format_refused(400, "max_tokens is too large")
    assert not ResponseFormatRejected("refused", status=500).transient


async def test_the_limit_halves_once_per_burst_and_grows_back_while_healthy() -> None:
    limiter = AdaptiveLimiter(64)
    async with anyio.create_task_group() as group:
        tickets: list[int] = []
        held = anyio.Event()

        async def hold() -> None:
            async with limiter.slot() as ticket:
                tickets.append(ticket)
                await held.wait()

        for _ in range(10):
            group.start_soon(hold)
        with anyio.fail_after(5):
            while len(tickets) < 10:
                await anyio.lowlevel.checkpoint()
        for ticket in tickets:
            limiter.overloaded(ticket, None)
        assert limiter.limit == 32 and limiter.stats.decreases == 1
        held.set()
    async with limiter.slot() as later:
        limiter.overloaded(later, None)
    assert limiter.limit == 16
    for _ in range(16):
        limiter.succeeded()
    assert 16.9 < limiter.limit < 18


async def test_a_pinned_limit_does_not_move_and_caps_requests_in_flight() -> None:
    limiter = AdaptiveLimiter(3, adaptive=False)
    limiter.overloaded(1, None)
    assert limiter.limit == 3
    peak = 0
    running = 0

    async def one() -> None:
        nonlocal peak, running
        async with limiter.slot():
            running += 1
            peak = max(peak, running)
            for _ in range(3):
                await anyio.lowlevel.checkpoint()
            running -= 1

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            for _ in range(12):
                group.start_soon(one)
    assert peak == 3


async def test_retry_after_holds_back_the_next_request_for_at_least_that_long() -> None:
    sent: list[float] = []

    def answer(request: ChatRequest, choice: int) -> str:
        sent.append(anyio.current_time())
        if len(sent) == 1:
            raise BackendError("slow down", status=429, retry_after=0.05)
        return "ok"

    caller = Caller(Backends(policy=FunctionBackend(answer)), concurrency=8, prices=PriceTable())
    with anyio.fail_after(5):
        reply, _ = await caller.complete(JUDGE)
    assert reply.texts == ("ok",) and caller.retried == 1
    assert sent[1] - sent[0] >= 0.05
    limiter = next(iter(caller.limiters.values()))
    assert 4 <= limiter.limit < 5 and limiter.stats.decreases == 1 and limiter.stats.paused_seconds > 0


async def test_a_permanent_error_is_not_retried() -> None:
    calls = 0

    def answer(request: ChatRequest, choice: int) -> str:
        nonlocal calls
        calls += 1
        raise BackendError("bad request", status=400)

    caller = Caller(Backends(policy=FunctionBackend(answer)), concurrency=8, prices=PriceTable())
    with anyio.fail_after(5), pytest.raises(BackendError, match="bad request"):
        await caller.complete(JUDGE)
    assert calls == 1 and caller.retried == 0


async def test_a_reservation_waits_for_requests_in_flight_and_is_refused_when_nothing_is_left() -> None:
    budget = RequestBudget(tokens=100, usd=None)
    first = await budget.reserve(60, 0.0)
    second_done = anyio.Event()

    async def second() -> None:
        reservation = await budget.reserve(60, 0.0)
        budget.settle(reservation, TokenCount(prompt_tokens=10))
        second_done.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(second)
            await anyio.lowlevel.checkpoint()
            assert not second_done.is_set()  # 60 + 60 would not fit: it waits
            budget.settle(first, TokenCount(prompt_tokens=20, completion_tokens=10))
    assert budget.spent.total_tokens == 40
    with pytest.raises(BudgetExhausted, match="budget"):
        await budget.reserve(61, 0.0)
    assert budget.exhausted is not None


async def test_a_dollar_budget_counts_each_requests_worst_case_at_the_models_price() -> None:
    prices = PriceTable.model_validate({"models": {"function": {"input_per_million": 1e6, "output_per_million": 0}}})
    caller = Caller(
        Backends(policy=FunctionBackend(lambda request, choice: "ok")),
        concurrency=8,
        prices=prices,
        budget=RequestBudget(tokens=None, usd=3.5),
    )
    with anyio.fail_after(5):
        await caller.complete(JUDGE)  # prompt "Grade." is 2 tokens: $2
        with pytest.raises(BudgetExhausted):
            await caller.complete(JUDGE)
    assert caller.budget is not None and caller.budget.spent.cost_usd == pytest.approx(2.0)
