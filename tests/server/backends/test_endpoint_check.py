"""The check before a run: one small request that finds a wrong URL, key or model and says how to fix it."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.types import TextContent
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from debrief.learner.backend import ChatRequest
from debrief.learner.errors import BackendError
from debrief.server.backends.endpoint_check import EndpointUnavailable, check_endpoint
from debrief.server.backends.provider import ModelProvider
from debrief.server.embedding.embedder import Embedder
from debrief.server.mcp.app import create_server
from debrief.server.settings import ModelSettings, Settings
from tests.support.http import serving_app
from tests.support.runs import ScriptedProvider, connect, finish, settings_for, start

pytestmark = pytest.mark.anyio
WAIT = 30


@dataclass
class Endpoint:
    """An OpenAI-compatible endpoint with a key, an optional /models list and the models its chat knows."""

    key: str = "right-key"
    listed: list[str] | None = None
    chat_models: list[str] = field(default_factory=lambda: ["m"])
    requests: list[str] = field(default_factory=list)

    def refused(self, request: Request) -> Response | None:
        self.requests.append(request.url.path)
        if request.headers.get("authorization") != f"Bearer {self.key}":
            return JSONResponse({"error": {"message": "Incorrect API key provided"}}, status_code=401)
        return None

    async def models(self, request: Request) -> Response:
        if (refusal := self.refused(request)) is not None:
            return refusal
        if self.listed is None:
            return JSONResponse({"error": {"message": "not found"}}, status_code=404)
        return JSONResponse({"object": "list", "data": [{"id": name, "object": "model"} for name in self.listed]})

    async def chat(self, request: Request) -> Response:
        if (refusal := self.refused(request)) is not None:
            return refusal
        model = (await request.json())["model"]
        if model not in self.chat_models:
            return JSONResponse({"error": {"message": f"model {model} does not exist"}}, status_code=404)
        return JSONResponse(
            {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": "OK"}}],
            }
        )


@asynccontextmanager
async def serve(endpoint: Endpoint) -> AsyncIterator[str]:
    app = Starlette(
        routes=[
            Route("/v1/models", endpoint.models, methods=["GET"]),
            Route("/v1/chat/completions", endpoint.chat, methods=["POST"]),
        ]
    )
    async with serving_app(app) as root:
        yield f"{root}/v1"


def closed_port_url() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


async def test_an_unreachable_url_is_reported_as_cannot_reach_with_the_setting_to_fix() -> None:
    url = closed_port_url()
    with anyio.fail_after(WAIT), pytest.raises(EndpointUnavailable) as raised:
        await check_endpoint(base_url=url, api_key="k", models=["m"])
    assert str(raised.value).startswith(f"cannot reach {url}: ")
    assert "DEBRIEF_MODEL_BASE_URL" in str(raised.value)


async def test_a_refused_key_is_a_401_naming_both_key_variables() -> None:
    endpoint = Endpoint(listed=["m"])
    async with serve(endpoint) as url:
        with anyio.fail_after(WAIT), pytest.raises(EndpointUnavailable) as raised:
            await check_endpoint(base_url=url, api_key="wrong-key", models=["m"])
    message = str(raised.value)
    assert message.startswith(f"401 from {url}: ")
    assert "set DEBRIEF_MODEL_API_KEY or OPENAI_API_KEY" in message
    assert endpoint.requests == ["/v1/models"]


async def test_a_listed_model_passes_with_a_single_request_and_no_tokens() -> None:
    endpoint = Endpoint(listed=["m", "other"])
    async with serve(endpoint) as url:
        with anyio.fail_after(WAIT):
            await check_endpoint(base_url=url, api_key="right-key", models=["m", "m"])
    assert endpoint.requests == ["/v1/models"]


async def test_an_unknown_model_names_the_models_the_endpoint_offers() -> None:
    endpoint = Endpoint(listed=["qwen2.5:7b", "llama3"], chat_models=["qwen2.5:7b"])
    async with serve(endpoint) as url:
        with anyio.fail_after(WAIT), pytest.raises(EndpointUnavailable) as raised:
            await check_endpoint(base_url=url, api_key="right-key", models=["gpt-4o-mini"])
    message = str(raised.value)
    assert "model 'gpt-4o-mini'" in message
    assert "'qwen2.5:7b', 'llama3'" in message
    assert "DEBRIEF_MODEL" in message


async def test_without_a_models_route_one_token_of_chat_decides() -> None:
    endpoint = Endpoint(listed=None, chat_models=["local"])
    async with serve(endpoint) as url:
        with anyio.fail_after(WAIT):
            await check_endpoint(base_url=url, api_key="right-key", models=["local"])
    assert endpoint.requests == ["/v1/models", "/v1/chat/completions"]


async def test_the_provider_checks_an_endpoint_once_and_hands_out_backends_only_when_it_answers(
    tmp_path: Path,
) -> None:
    endpoint = Endpoint(listed=["m"])
    async with serve(endpoint) as url:
        wrong = ModelProvider(
            Settings(data_dir=tmp_path, models=ModelSettings(base_url=url, name="m", api_key=SecretStr("bad")))
        )
        with anyio.fail_after(WAIT), pytest.raises(EndpointUnavailable, match="401 from"):
            await wrong.backends()
        await wrong.aclose()
        right = ModelProvider(
            Settings(data_dir=tmp_path, models=ModelSettings(base_url=url, name="m", api_key=SecretStr("right-key")))
        )
        with anyio.fail_after(WAIT):
            await right.backends()
            await right.backends()
        await right.aclose()
    assert endpoint.requests == ["/v1/models", "/v1/models"]


async def test_start_learning_run_refuses_at_once_when_the_endpoint_cannot_be_reached(
    tmp_path: Path, test_embedder: Embedder
) -> None:
    url = closed_port_url()
    settings = Settings(
        data_dir=tmp_path / "data", chroma_mode="in-process", models=ModelSettings(base_url=url, name="m")
    )
    async with Client(create_server(settings, embedder=test_embedder)) as client:
        with anyio.fail_after(WAIT):
            result = await client.call_tool(
                "start_learning_run",
                {"namespace": "math", "problems": [{"question": "1+1?", "answer": "2"}], "verifier": "exact"},
            )
            runs = await client.call_tool("list_learning_runs", {})
    assert result.is_error
    text = " ".join(block.text for block in result.content if isinstance(block, TextContent))
    assert f"cannot reach {url}" in text and "DEBRIEF_MODEL_BASE_URL" in text
    assert runs.structured_content == {"runs": []}


async def test_the_run_record_names_the_model_that_ran_when_the_client_named_none(
    tmp_path: Path, test_embedder: Embedder
) -> None:
    settings = settings_for(tmp_path)
    async with connect(settings, test_embedder, ScriptedProvider(settings)) as client:
        started = await start(client, epochs=1)
        record = await finish(client, started["run_id"])
    assert started["model"] == "policy-model"
    assert record["model"] == "policy-model"


async def test_a_run_over_mcp_in_which_every_group_failed_is_failed_and_says_why(
    tmp_path: Path, test_embedder: Embedder
) -> None:
    def refusing(request: ChatRequest, choice: int) -> str:
        raise BackendError("scripted refusal: the prompt is too long for this model")

    settings = settings_for(tmp_path)
    async with connect(settings, test_embedder, ScriptedProvider(settings, refusing)) as client:
        started = await start(client, epochs=1)
        record = await finish(client, started["run_id"])
    assert record["status"] == "failed"
    assert "the groups of all 8 problems failed" in record["error"]
    assert "scripted refusal" in record["error"]
