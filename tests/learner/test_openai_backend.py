from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from pydantic import BaseModel

from debrief.learner import BackendError, Backends, PriceTable
from debrief.learner.backend import ChatRequest, Message
from debrief.learner.calls import Caller
from debrief.learner.openai_backend import OpenAIBackend
from debrief.learner.structured import ask_structured
from tests.learner.fake_openai import FakeOpenAI, json_reply, serve

pytestmark = pytest.mark.anyio

ROLLOUT = ChatRequest(
    role="policy", stage="rollout", temperature=0.7, seed=9, messages=(Message(role="user", content="What is 2+2?"),)
)
JUDGE = ChatRequest(role="judge", stage="judge", temperature=0.0, messages=(Message(role="user", content="Grade."),))


class Verdict(BaseModel):
    verdict: str


def backend(base_url: str, **options: Any) -> OpenAIBackend:
    settings: dict[str, Any] = {"timeout": 5.0, "max_retries": 3, "backoff": 0.01}
    settings.update(options)
    return OpenAIBackend(model="fake-model", base_url=base_url, api_key="k", **settings)


async def test_a_group_is_one_request_with_n_and_usage_is_counted_once() -> None:
    fake = FakeOpenAI(cached_tokens=2)
    with anyio.fail_after(20):
        async with serve(fake) as url:
            async with backend(url) as adapter:
                caller = Caller(Backends(policy=adapter), concurrency=4, prices=PriceTable())
                texts, spent = await caller.sample(ROLLOUT, 5)
    assert texts == [f"choice {index}" for index in range(5)]
    assert len(fake.bodies) == 1
    assert fake.bodies[0]["n"] == 5 and fake.bodies[0]["seed"] == 9 and fake.bodies[0]["temperature"] == 0.7
    assert spent.requests == 1 and spent.cached_tokens == 2 and spent.prompt_tokens > 0


async def test_a_server_ignoring_n_is_asked_again_with_single_requests() -> None:
    fake = FakeOpenAI(honours_n=False)
    with anyio.fail_after(20):
        async with serve(fake) as url:
            async with backend(url) as adapter:
                caller = Caller(Backends(policy=adapter), concurrency=4, prices=PriceTable())
                texts, _ = await caller.sample(ROLLOUT, 3)
                await caller.sample(ROLLOUT, 3)
    assert len(texts) == 3
    assert [body.get("n") for body in fake.bodies] == [3, None, None, None, None, None]
    assert sorted(int(body["seed"]) for body in fake.bodies[1:3]) == [10, 11]


async def test_json_schema_refused_with_a_500_falls_back_to_json_object_with_the_schema() -> None:
    fake = FakeOpenAI(reply=json_reply({"verdict": "correct"}), refuse_json_schema=True)
    with anyio.fail_after(20):
        async with serve(fake) as url:
            async with backend(url) as adapter:
                caller = Caller(Backends(policy=adapter), concurrency=2, prices=PriceTable())
                assert (await ask_structured(caller, JUDGE, Verdict)).verdict == "correct"
                assert (await ask_structured(caller, JUDGE, Verdict)).verdict == "correct"
    formats = [body["response_format"] for body in fake.bodies]
    assert [item["type"] for item in formats] == ["json_schema", "json_object", "json_object"]
    assert formats[0]["json_schema"]["schema"]["title"] == "Verdict"
    assert formats[1]["schema"]["title"] == "Verdict"


async def test_a_429_then_success_is_retried_with_backoff() -> None:
    fake = FakeOpenAI(fail_first=[429, 503])
    with anyio.fail_after(20):
        async with serve(fake) as url:
            async with backend(url) as adapter:
                reply = await adapter.complete(ROLLOUT)
    assert reply.texts == ("choice 0",)
    assert len(fake.bodies) == 3


async def test_retries_run_out_with_a_clear_error() -> None:
    fake = FakeOpenAI(fail_first=[500] * 10)
    with anyio.fail_after(20):
        async with serve(fake) as url:
            async with backend(url, max_retries=2) as adapter:
                with pytest.raises(BackendError, match="after 3 attempt") as raised:
                    await adapter.complete(ROLLOUT)
    assert raised.value.status == 500


async def test_a_request_error_other_than_rate_limits_is_not_retried() -> None:
    fake = FakeOpenAI(fail_first=[401])
    with anyio.fail_after(20):
        async with serve(fake) as url:
            async with backend(url) as adapter:
                with pytest.raises(BackendError, match="401"):
                    await adapter.complete(ROLLOUT)
    assert len(fake.bodies) == 1


async def test_a_timed_out_request_is_retried() -> None:
    fake = FakeOpenAI(hang_first=1)
    with anyio.fail_after(20):
        async with serve(fake) as url:
            async with backend(url, timeout=0.3) as adapter:
                reply = await adapter.complete(ROLLOUT)
    assert reply.texts == ("choice 0",)
    assert len(fake.bodies) == 2


async def test_an_invalid_json_reply_is_reasked_and_the_valid_one_used() -> None:
    replies = iter(["{not json", json.dumps({"verdict": "incorrect"})])
    fake = FakeOpenAI(reply=lambda body, choice: next(replies))
    with anyio.fail_after(20):
        async with serve(fake) as url:
            async with backend(url) as adapter:
                caller = Caller(Backends(policy=adapter), concurrency=2, prices=PriceTable())
                assert (await ask_structured(caller, JUDGE, Verdict)).verdict == "incorrect"
    assert len(fake.bodies) == 2
    assert fake.bodies[1]["messages"][-2] == {"role": "assistant", "content": "{not json"}
