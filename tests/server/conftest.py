"""Fixtures for server tests: a small deterministic embedder, real Chroma stores, a real `chroma run` server."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO

import pytest

from debrief.server.chroma.client import close_client
from debrief.server.embedding.embedder import Embedder
from debrief.server.embedding.hashed import HashEmbedder
from debrief.server.settings import Settings
from debrief.server.store.experience_store import ExperienceStore


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
