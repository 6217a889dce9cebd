from __future__ import annotations

import json

import anyio
import pytest
from pydantic import BaseModel

from debrief.learner import Backends, FunctionBackend, InvalidReply, PriceTable
from debrief.learner.backend import ChatRequest, Message
from debrief.learner.calls import Caller
from debrief.learner.errors import ResponseFormatRejected
from debrief.learner.structured import ask_structured, parse_reply

pytestmark = pytest.mark.anyio


class Verdict(BaseModel):
    verdict: str
    score: int


REQUEST = ChatRequest(
    role="judge", stage="judge", temperature=0.0, messages=(Message(role="user", content="Grade this."),)
)
VALID = json.dumps({"verdict": "ok", "score": 3})


def caller_for(backend: FunctionBackend) -> Caller:
    return Caller(Backends(policy=backend), concurrency=2, prices=PriceTable())


async def test_a_server_refusing_json_schema_gets_json_object_with_the_schema_and_it_is_remembered() -> None:
    def answer(request: ChatRequest, choice: int) -> str:
        assert request.response_format is not None
        if request.response_format.kind == "json_schema":
            raise ResponseFormatRejected("json_schema unsupported", status=500)
        assert request.response_format.schema["title"] == "Verdict"
        assert '"score"' in request.messages[0].content
        return VALID

    backend = FunctionBackend(answer)
    caller = caller_for(backend)
    with anyio.fail_after(5):
        assert await ask_structured(caller, REQUEST, Verdict) == Verdict(verdict="ok", score=3)
        await ask_structured(caller, REQUEST, Verdict)
    kinds = [call.response_format.kind for call in backend.calls if call.response_format]
    assert kinds == ["json_schema", "json_object", "json_object"]
    assert caller.structured_modes["judge"] == "json_object"


async def test_a_server_refusing_both_formats_gets_plain_prompting() -> None:
    def answer(request: ChatRequest, choice: int) -> str:
        if request.response_format is not None:
            raise ResponseFormatRejected("no structured output here", status=400)
        return f"Sure! ```json\n{VALID}\n```"

    backend = FunctionBackend(answer)
    caller = caller_for(backend)
    with anyio.fail_after(5):
        assert (await ask_structured(caller, REQUEST, Verdict)).score == 3
    assert caller.structured_modes["judge"] == "plain"
    assert len(backend.calls) == 3


async def test_an_invalid_reply_is_sent_back_with_its_errors_and_the_valid_retry_is_used() -> None:
    replies = iter(["not json", json.dumps({"verdict": "ok"}), VALID])

    backend = FunctionBackend(lambda request, choice: next(replies))
    with anyio.fail_after(5):
        value = await ask_structured(caller_for(backend), REQUEST, Verdict, max_reasks=2)
    assert value.score == 3
    last = backend.calls[-1].messages
    assert [message.role for message in last] == ["user", "assistant", "user", "assistant", "user"]
    assert "score" in last[-1].content and "Field required" in last[-1].content


async def test_a_reply_still_invalid_after_the_bounded_reasks_raises() -> None:
    backend = FunctionBackend(lambda request, choice: "{}")
    with anyio.fail_after(5), pytest.raises(InvalidReply, match="after 1 re-asks"):
        await ask_structured(caller_for(backend), REQUEST, Verdict, max_reasks=1)
    assert len(backend.calls) == 2


async def test_a_check_objects_once_and_the_next_valid_reply_is_returned() -> None:
    backend = FunctionBackend(lambda request, choice: VALID)
    with anyio.fail_after(5):
        value = await ask_structured(caller_for(backend), REQUEST, Verdict, check=lambda value: "shorter please")
    assert value.score == 3
    assert len(backend.calls) == 2
    assert backend.calls[-1].messages[-1].content == "shorter please"


def test_parse_reply_finds_the_object_inside_prose_and_fences_but_still_validates() -> None:
    assert parse_reply(f"Here you go:\n```json\n{VALID}\n```\nthanks", Verdict).score == 3
    assert parse_reply('{"a": 1} and then ' + VALID, Verdict).score == 3
    with pytest.raises(ValueError, match="score"):
        parse_reply('```json\n{"verdict": "ok"}\n```', Verdict)
