"""Start ``debrief serve --http`` as a subprocess and know, without sleeping, when it listens."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

import anyio
import anyio.abc
from anyio.streams.text import TextReceiveStream

READY = "Uvicorn running on"


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@asynccontextmanager
async def http_server(argv: Sequence[str], env: Mapping[str, str]) -> AsyncIterator[anyio.abc.Process]:
    """Run ``argv`` until the block ends; yields once uvicorn reports it is listening."""
    listening = anyio.Event()
    log: list[str] = []

    async def watch(stream: anyio.abc.ByteReceiveStream) -> None:
        # Keeps draining after startup, so a chatty server never blocks on a full pipe.
        async for chunk in TextReceiveStream(stream):
            log.append(chunk)
            if READY in "".join(log[-2:]):
                listening.set()
        listening.set()  # the server exited: fail on its log instead of waiting out the timeout

    async with await anyio.open_process(list(argv), env=dict(env)) as process, anyio.create_task_group() as group:
        assert process.stderr is not None
        group.start_soon(watch, process.stderr)
        try:
            await listening.wait()
            assert READY in "".join(log), "the server stopped before listening:\n" + "".join(log)
            yield process
        finally:
            process.terminate()
