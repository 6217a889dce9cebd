"""The loopback endpoint a running server offers to ``debrief hook`` commands (see ``hook_wire``).

The hook process stays light (no embedder, no Chroma): it asks this endpoint, which answers from the server's warm
store. Only this user can read the token file, and only loopback connections are accepted.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.abc import SocketStream, TaskGroup
from anyio.streams.buffered import BufferedByteReceiveStream
from pydantic import ValidationError

from debrief.server.errors import DebriefError
from debrief.server.learning.outcomes import OutcomeBook
from debrief.server.mcp.hook_wire import MAX_MESSAGE_BYTES, write_endpoint
from debrief.server.settings import Settings
from debrief.server.store.experience_store import ExperienceStore
from debrief.server.store.models import check_namespace

logger = logging.getLogger(__name__)

REQUEST_SECONDS = 10
"""Longest time one hook request may hold a connection."""


def _clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8, at a character boundary."""
    return text.encode()[:limit].decode(errors="ignore")


class HookEndpoint:
    """Answers hook requests: relevant experiences for a prompt, or an ungraded turn to record."""

    def __init__(self, *, settings: Settings, store: ExperienceStore, outcomes: OutcomeBook) -> None:
        self._settings = settings
        self._store = store
        self._outcomes = outcomes
        self.token = secrets.token_urlsafe(24)

    async def answer(self, message: dict[str, Any]) -> dict[str, Any]:
        """The reply to one request (already authenticated)."""
        op = message.get("op")
        if op == "ping":
            return {"ok": True}
        namespace = check_namespace(str(message.get("namespace", "")))
        limit = self._settings.limits.task_bytes
        if op == "retrieve":
            task = _clip(str(message.get("task", "")), limit)
            k = max(1, min(int(message.get("k", 5)), self._settings.limits.retrieve_k))
            min_score = message.get("min_score")
            found = await self._store.retrieve(
                namespace, task, k=k, min_score=None if min_score is None else float(min_score)
            )
            return {
                "ok": True,
                "namespace": namespace,
                "experiences": [
                    {"experience_id": item.experience_id, "text": item.text, "score": round(item.score, 4)}
                    for item in found
                ],
            }
        if op == "record_turn":
            result = await self._outcomes.record(
                namespace=namespace,
                task=_clip(str(message.get("task", "")), limit),
                attempt=_clip(str(message.get("attempt", "")), limit),
                reward=None,
                feedback=None,
                experience_ids_used=[],
                task_key=None,
            )
            return {
                "ok": True,
                "outcome_id": result.outcome.outcome_id,
                "reflection": result.reflection,
                "reflection_task_id": result.reflection_task_id,
            }
        raise ValueError(f"unknown op {op!r}")

    async def handle(self, stream: SocketStream) -> None:
        """Serve one connection: one request line, one reply line."""
        async with stream:
            reply: dict[str, Any]
            try:
                with anyio.fail_after(REQUEST_SECONDS):
                    raw = await BufferedByteReceiveStream(stream).receive_until(b"\n", MAX_MESSAGE_BYTES)
                    message = json.loads(raw)
                    if not isinstance(message, dict) or not hmac.compare_digest(
                        str(message.get("token", "")), self.token
                    ):
                        reply = {"ok": False, "error": "bad token"}
                    else:
                        reply = await self.answer(message)
                    await stream.send(json.dumps(reply).encode() + b"\n")
            except (DebriefError, ValueError, TypeError, ValidationError) as error:
                # The hook falls back silently, so the reason is for whoever reads the server's log.
                logger.info("hook request refused: %s", error)
                await self._send_quietly(stream, {"ok": False, "error": str(error)})
            except (anyio.EndOfStream, anyio.IncompleteRead, anyio.DelimiterNotFound, TimeoutError, OSError):
                logger.debug("hook connection dropped")
            except anyio.BrokenResourceError:
                logger.debug("hook connection broken")

    @staticmethod
    async def _send_quietly(stream: SocketStream, reply: dict[str, Any]) -> None:
        try:
            await stream.send(json.dumps(reply).encode() + b"\n")
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass


@asynccontextmanager
async def serve_hook_endpoint(
    *, settings: Settings, store: ExperienceStore, outcomes: OutcomeBook, task_group: TaskGroup
) -> AsyncIterator[HookEndpoint]:
    """Listen on a free loopback port and announce it under the data dir until the context ends."""
    endpoint = HookEndpoint(settings=settings, store=store, outcomes=outcomes)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = int(listener.extra(anyio.abc.SocketAttribute.local_port))
    pid = os.getpid()
    path = await anyio.to_thread.run_sync(
        lambda: write_endpoint(settings.data_dir, port=port, token=endpoint.token, pid=pid)
    )
    scope = anyio.CancelScope()
    stopped = anyio.Event()

    async def run() -> None:
        try:
            with scope:
                await listener.serve(endpoint.handle)
        finally:
            with anyio.CancelScope(shield=True):
                await listener.aclose()
            stopped.set()

    task_group.start_soon(run)
    logger.debug("hook endpoint on 127.0.0.1:%d (%s)", port, path)
    try:
        yield endpoint
    finally:
        path.unlink(missing_ok=True)
        scope.cancel()
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            await stopped.wait()
