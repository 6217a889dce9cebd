"""No test reaches a real model: endpoints off this machine are refused while model requests are not allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from debrief.server.backends.provider import ModelProvider
from debrief.server.embedding.embedder import OpenAIEmbedder, make_embedder
from debrief.server.errors import ModelRequestsRefused
from debrief.server.settings import EmbeddingSettings, ModelSettings, Settings

pytestmark = pytest.mark.anyio


def test_the_suite_runs_with_model_requests_refused(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path).models.allow_requests is False


@pytest.mark.parametrize("base_url", ["https://api.openai.com/v1", "http://10.0.0.7:8000/v1", "http://example.com"])
async def test_a_model_endpoint_off_this_machine_is_refused_before_any_request(tmp_path: Path, base_url: str) -> None:
    settings = Settings(data_dir=tmp_path, models=ModelSettings(base_url=base_url, name="gpt-real"))
    provider = ModelProvider(settings)
    try:
        with pytest.raises(ModelRequestsRefused, match="DEBRIEF_ALLOW_MODEL_REQUESTS"):
            await provider.endpoint()
    finally:
        await provider.aclose()


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:9/v1", "http://localhost:9/v1", "http://[::1]:9/v1"])
async def test_a_loopback_endpoint_stays_allowed(tmp_path: Path, base_url: str) -> None:
    settings = Settings(data_dir=tmp_path, models=ModelSettings(base_url=base_url, name="fake"))
    provider = ModelProvider(settings)
    try:
        endpoint = await provider.endpoint()
    finally:
        await provider.aclose()
    assert (endpoint.base_url, endpoint.model, endpoint.local) == (base_url, "fake", False)


async def test_allowing_model_requests_lets_a_remote_endpoint_through(tmp_path: Path) -> None:
    models = ModelSettings(base_url="https://api.openai.com/v1", name="gpt-real", allow_requests=True)
    provider = ModelProvider(Settings(data_dir=tmp_path, models=models))
    try:
        endpoint = await provider.endpoint()
    finally:
        await provider.aclose()
    assert endpoint.base_url == "https://api.openai.com/v1"


def test_an_embedding_endpoint_off_this_machine_is_refused_and_a_loopback_one_is_built(tmp_path: Path) -> None:
    remote = EmbeddingSettings(kind="openai", base_url="https://api.openai.com/v1")
    with pytest.raises(ModelRequestsRefused, match="embedding endpoint"):
        make_embedder(Settings(data_dir=tmp_path, embedding=remote))
    local = EmbeddingSettings(kind="openai", base_url="http://127.0.0.1:9/v1")
    assert isinstance(make_embedder(Settings(data_dir=tmp_path, embedding=local)), OpenAIEmbedder)
