"""Fixtures for server tests: a small deterministic embedder, real Chroma stores, a real `chroma run` server."""

from __future__ import annotations

import hashlib
import math
import re
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import IO

import pytest

from server.chroma_client import close_client
from server.embedder import Embedder
from server.settings import Settings
from server.store import ExperienceStore

_WORD = re.compile(r"[a-z0-9]+")


class HashEmbedder:
    """Bag of words hashed into 384 signed buckets, normalized: texts sharing words embed close together.

    A real, deterministic :class:`~server.embedder.Embedder` (not a mock), fast enough for property and
    multi-process tests; the MiniLM embedder is tested on its own.
    """

    def __init__(self, dimension: int = 384, name: str = "test-hashed-bag-of-words") -> None:
        self._dimension = dimension
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    @property
    def dimension(self) -> int:
        return self._dimension

    def vector(self, text: str) -> list[float]:
        vector = [0.0] * self._dimension
        for word in _WORD.findall(text.lower()):
            digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
            index = int.from_bytes(digest[:4], "little") % self._dimension
            vector[index] += 1.0 if digest[4] & 1 else -1.0
        norm = math.sqrt(sum(x * x for x in vector))
        if norm == 0.0:
            vector[0], norm = 1.0, 1.0
        return [x / norm for x in vector]

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self.vector(text) for text in texts]


@pytest.fixture
def test_embedder() -> Embedder:
    return HashEmbedder()


@pytest.fixture
def in_process_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", chroma_mode="in-process")


@pytest.fixture
async def store(in_process_settings: Settings, test_embedder: Embedder) -> AsyncIterator[ExperienceStore]:
    opened = await ExperienceStore.open(in_process_settings, test_embedder)
    try:
        yield opened
    finally:
        await opened.aclose()


def _drain(stream: IO[str], log: IO[str], ready: threading.Event) -> None:
    for line in stream:
        log.write(line)
        log.flush()
        if "listening on address" in line:
            ready.set()


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `chroma run` server on a free loopback port, shared by the session; yields its URL."""
    root = tmp_path_factory.mktemp("chroma-server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    chroma = Path(sys.executable).parent / "chroma"
    command = [str(chroma), "run", "--host", "127.0.0.1", "--port", str(port), "--path", str(root / "db")]
    ready = threading.Event()
    with (
        open(root / "server.log", "w") as log,
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as server,
    ):
        assert server.stdout is not None
        drainer = threading.Thread(target=_drain, args=(server.stdout, log, ready), daemon=True)
        drainer.start()
        try:
            if not ready.wait(timeout=60):
                pytest.fail(f"chroma run did not start within 60 s; see {root / 'server.log'}")
            yield f"http://127.0.0.1:{port}"
        finally:
            server.terminate()
            server.wait(timeout=30)
            drainer.join(timeout=10)


@pytest.fixture
def chroma_url(chroma_server: str) -> str:
    """The session's Chroma server, emptied for this test."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    host, port = chroma_server.removeprefix("http://").split(":")
    client = chromadb.HttpClient(host=host, port=int(port), settings=ChromaSettings(anonymized_telemetry=False))
    try:
        for collection in client.list_collections():
            client.delete_collection(collection.name)
    finally:
        close_client(client)
    return chroma_server


@pytest.fixture(params=["in-process", "chroma-url"])
async def any_store(
    request: pytest.FixtureRequest, tmp_path: Path, test_embedder: Embedder
) -> AsyncIterator[ExperienceStore]:
    """A store in in-process mode, then one on a real Chroma server (chroma_url mode)."""
    if request.param == "in-process":
        settings = Settings(data_dir=tmp_path / "data", chroma_mode="in-process")
    else:
        settings = Settings(data_dir=tmp_path / "data", chroma_url=request.getfixturevalue("chroma_url"))
    opened = await ExperienceStore.open(settings, test_embedder)
    try:
        yield opened
    finally:
        await opened.aclose()
