"""Reflection tasks over real Streamable HTTP with scoped tokens: a task is seen and answered only within scope."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from pydantic import SecretStr

from debrief.server.embedding.hashed import HashEmbedder
from debrief.server.mcp.app import create_server
from debrief.server.mcp.auth import http_auth
from debrief.server.settings import HttpSettings, OutcomeSettings, Settings
from tests.support.http import serving
from tests.support.mcp_calls import call, call_error

pytestmark = pytest.mark.anyio

FULL = "full-access-token-0a1b2c"
CODE_READ = "code-read-token-3d4e5f60"
OTHER_WRITE = "other-write-token-7a8b9c"
LESSON = "When dates arrive as text, parse them into datetime values before sorting or comparing them."


@asynccontextmanager
async def as_token(url: str, token: str) -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    async with http, Client(streamable_http_client(url, http_client=http)) as client:
        yield client


@pytest.fixture
async def url(tmp_path: Path) -> AsyncIterator[str]:
    tokens_file = tmp_path / "tokens.json"
    entries = [
        {"token": CODE_READ, "namespaces": ["code"], "access": "read"},
        {"token": OTHER_WRITE, "namespaces": ["other"], "access": "write"},
    ]
    tokens_file.write_text(json.dumps({"tokens": entries}), encoding="utf-8")
    settings = Settings(
        data_dir=tmp_path / "data",
        chroma_mode="in-process",
        http=HttpSettings(tokens=[SecretStr(FULL)], tokens_file=tokens_file),
        outcomes=OutcomeSettings(reflection="client"),
    )

    def build(port: int) -> Any:
        return create_server(settings, embedder=HashEmbedder(), http_auth=http_auth(settings, "127.0.0.1", port))

    async with serving(build) as served:
        yield served


async def test_a_reflection_task_is_seen_and_answered_only_within_the_tokens_scope(url: str) -> None:
    async with as_token(url, FULL) as admin:
        request = {"namespace": "code", "task": "Sort records by date.", "task_key": "dates"}
        await call(admin, "record_outcome", attempt="Compared strings.", outcome="failure", **request)
        waiting = await call(admin, "record_outcome", attempt="Parsed dates.", outcome="success", **request)
        task_id = waiting["reflection_task_id"]
        version = (await call(admin, "library_history", namespace="code"))["current_version"]
    async with as_token(url, CODE_READ) as reader:
        assert (await call(reader, "get_reflection_task", namespace="code"))["task"]["task_id"] == task_id
        operations = [{"op": "add", "text": LESSON}]
        assert "may only read namespace 'code'" in await call_error(
            reader, "submit_reflection", task_id=task_id, operations=operations
        )
        assert "may only read" in await call_error(reader, "skip_reflection_task", task_id=task_id)
    async with as_token(url, OTHER_WRITE) as stranger:
        assert (await call(stranger, "get_reflection_task"))["task"] is None
        assert "no access to namespace 'code'" in await call_error(stranger, "get_reflection_task", namespace="code")
        assert "no access" in await call_error(stranger, "submit_reflection", task_id=task_id, operations=[])
    async with as_token(url, FULL) as admin:
        assert (await call(admin, "library_history", namespace="code"))["current_version"] == version
        assert (await call(admin, "get_reflection_task"))["task"]["task_id"] == task_id
