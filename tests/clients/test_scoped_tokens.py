"""Scoped bearer tokens over real Streamable HTTP: every tool obeys the token's namespaces and access."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from pydantic import SecretStr

from debrief.server.embedding.embedder import Embedder
from debrief.server.embedding.hashed import HashEmbedder
from debrief.server.errors import InvalidInput
from debrief.server.mcp.access import Grant, load_tokens_file
from debrief.server.mcp.app import create_server
from debrief.server.mcp.auth import http_auth
from debrief.server.settings import HttpSettings, Settings
from tests.support.http import serving
from tests.support.mcp_calls import LESSON, OTHER, call, call_error
from tests.support.runs import ScriptedProvider, problems

pytestmark = pytest.mark.anyio


@pytest.fixture
def test_embedder() -> Embedder:
    return HashEmbedder()


FULL = "full-access-token-5b1e0f"
MATH_READ = "math-read-token-9c2d7a41"
MATH_WRITE = "math-write-token-3e8f6b20"
ALL_READ = "everything-read-token-71aa"
SECRET = "When a release is cut, tag it before writing the changelog entry."


def scoped_settings(tmp_path: Path) -> Settings:
    tokens_file = tmp_path / "tokens.json"
    entries = [
        {"token": MATH_READ, "namespaces": ["math"], "access": "read"},
        {"token": MATH_WRITE, "namespaces": ["math", "spare"], "access": "write"},
        {"token": ALL_READ, "namespaces": ["*"], "access": "read"},
    ]
    tokens_file.write_text(json.dumps({"tokens": entries}), encoding="utf-8")
    return Settings(
        data_dir=tmp_path / "data",
        chroma_mode="in-process",
        http=HttpSettings(tokens=[SecretStr(FULL)], tokens_file=tokens_file),
    )


@asynccontextmanager
async def scoped_server(tmp_path: Path, embedder: Embedder) -> AsyncIterator[str]:
    settings = scoped_settings(tmp_path)
    provider = ScriptedProvider(settings)

    def build(port: int) -> Any:
        return create_server(
            settings, embedder=embedder, provider=provider, http_auth=http_auth(settings, "127.0.0.1", port)
        )

    async with serving(build) as url:
        yield url


@asynccontextmanager
async def as_token(url: str, token: str) -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    async with http, Client(streamable_http_client(url, http_client=http)) as client:
        yield client


async def seed(url: str) -> dict[str, Any]:
    """Full access: one lesson in math and one in secret, an outcome and a finished run in secret."""
    async with as_token(url, FULL) as admin:
        math = await call(admin, "add_experience", text=LESSON, namespace="math")
        secret = await call(admin, "add_experience", text=SECRET, namespace="secret")
        await call(admin, "record_outcome", namespace="secret", task="Cut release 2.0.", attempt="tagged", outcome=1)
        run = await call(admin, "start_learning_run", namespace="secret", problems=problems(2), verifier="exact")
        with anyio.fail_after(30):
            while (await call(admin, "get_learning_run", run_id=run["run_id"]))["status"] in ("queued", "running"):
                await call(admin, "wait_learning_run", run_id=run["run_id"], timeout_seconds=10)
        return {
            "math_id": math["experience"]["experience_id"],
            "secret_id": secret["experience"]["experience_id"],
            "run_id": run["run_id"],
        }


async def secret_state(url: str) -> tuple[Any, ...]:
    async with as_token(url, FULL) as admin:
        history = await call(admin, "library_history", namespace="secret")
        outcomes = await call(admin, "list_outcomes", namespace="secret")
        runs = await call(admin, "list_learning_runs", namespace="secret")
        return history["current_version"], len(outcomes["items"]), [(r["run_id"], r["status"]) for r in runs["runs"]]


def out_of_scope_calls(seeded: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every tool, aimed at namespace 'secret'."""
    export = {"namespace": "secret", "version": 1, "exported_at": "2026-01-01T00:00:00Z", "experiences": []}
    return [
        ("retrieve_experiences", {"task": "release", "namespace": "secret"}),
        ("list_experiences", {"namespace": "secret"}),
        ("add_experience", {"text": OTHER, "namespace": "secret"}),
        ("update_experience", {"experience_id": seeded["secret_id"], "text": OTHER}),
        ("retire_experience", {"experience_id": seeded["secret_id"], "reason": "mine now"}),
        ("library_history", {"namespace": "secret"}),
        ("rollback_library", {"namespace": "secret", "version": 0}),
        ("export_library", {"namespace": "secret"}),
        ("import_library", {"namespace": "secret", "data": export, "mode": "replace"}),
        ("start_learning_run", {"namespace": "secret", "problems": problems(2), "verifier": "exact"}),
        ("get_learning_run", {"run_id": seeded["run_id"]}),
        ("wait_learning_run", {"run_id": seeded["run_id"], "timeout_seconds": 1}),
        ("cancel_learning_run", {"run_id": seeded["run_id"]}),
        ("resume_learning_run", {"run_id": seeded["run_id"]}),
        ("list_learning_runs", {"namespace": "secret"}),
        ("record_outcome", {"namespace": "secret", "task": "t", "attempt": "a", "outcome": "failure"}),
        ("list_outcomes", {"namespace": "secret"}),
        ("explain_experience", {"experience_id": seeded["secret_id"]}),
        ("start_evaluation", {"namespace": "secret", "problems": problems(2), "verifier": "exact"}),
        ("list_evaluations", {"namespace": "secret"}),
    ]


async def test_a_token_scoped_to_other_namespaces_can_neither_read_nor_write_this_one(
    tmp_path: Path, test_embedder: Embedder
) -> None:
    with anyio.fail_after(120):
        async with scoped_server(tmp_path, test_embedder) as url:
            seeded = await seed(url)
            before = await secret_state(url)
            refused: dict[str, str] = {}
            async with as_token(url, MATH_WRITE) as client:
                for tool, arguments in out_of_scope_calls(seeded):
                    refused[tool] = await call_error(client, tool, **arguments)
            after = await secret_state(url)
            async with as_token(url, FULL) as admin:
                resource = await admin.read_resource("experiences://secret")
    assert len(refused) == 20
    for tool, message in refused.items():
        assert "no access to namespace 'secret'" in message, (tool, message)
        assert SECRET not in message, tool
    assert after == before
    assert SECRET in str(resource)


async def test_a_read_token_reads_its_namespace_and_every_write_is_refused(
    tmp_path: Path, test_embedder: Embedder
) -> None:
    with anyio.fail_after(120):
        async with scoped_server(tmp_path, test_embedder) as url:
            seeded = await seed(url)
            async with as_token(url, MATH_READ) as reader:
                found = await call(reader, "retrieve_experiences", task="word problem with units", namespace="math")
                listed = await call(reader, "list_experiences", namespace="math")
                explained = await call(reader, "explain_experience", experience_id=seeded["math_id"])
                await call(reader, "library_history", namespace="math")
                await call(reader, "export_library", namespace="math")
                await call(reader, "list_outcomes", namespace="math")
                writes = {
                    "add_experience": await call_error(reader, "add_experience", text=OTHER, namespace="math"),
                    "retire_experience": await call_error(
                        reader, "retire_experience", experience_id=seeded["math_id"], reason="no"
                    ),
                    "record_outcome": await call_error(
                        reader, "record_outcome", namespace="math", task="t", attempt="a", outcome=1
                    ),
                    "start_learning_run": await call_error(
                        reader, "start_learning_run", namespace="math", problems=problems(2), verifier="exact"
                    ),
                    "rollback_library": await call_error(reader, "rollback_library", namespace="math", version=0),
                }
                still = await call(reader, "list_experiences", namespace="math")
                outcomes = await call(reader, "list_outcomes", namespace="math")
    assert found["experiences"][0]["text"] == LESSON
    assert [item["text"] for item in listed["items"]] == [LESSON]
    assert explained["experience"]["text"] == LESSON
    for tool, message in writes.items():
        assert "may only read namespace 'math'" in message, (tool, message)
    assert [item["text"] for item in still["items"]] == [LESSON]
    assert outcomes["items"] == []


async def test_listings_show_only_the_namespaces_a_token_may_see(tmp_path: Path, test_embedder: Embedder) -> None:
    with anyio.fail_after(120):
        async with scoped_server(tmp_path, test_embedder) as url:
            await seed(url)
            seen: dict[str, tuple[list[str], list[str]]] = {}
            for name, token in (("full", FULL), ("math", MATH_READ), ("all-read", ALL_READ)):
                async with as_token(url, token) as client:
                    spaces = await call(client, "list_namespaces")
                    runs = await call(client, "list_learning_runs")
                    seen[name] = (
                        sorted(item["namespace"] for item in spaces["namespaces"]),
                        sorted(record["namespace"] for record in runs["runs"]),
                    )
    assert seen["full"] == (["math", "secret"], ["secret"])
    assert seen["all-read"] == (["math", "secret"], ["secret"])
    assert seen["math"] == (["math"], [])


async def test_a_write_token_works_in_its_namespaces(tmp_path: Path, test_embedder: Embedder) -> None:
    with anyio.fail_after(120):
        async with scoped_server(tmp_path, test_embedder) as url:
            async with as_token(url, MATH_WRITE) as writer:
                added = await call(writer, "add_experience", text=OTHER, namespace="spare")
                recorded = await call(writer, "record_outcome", namespace="spare", task="t", attempt="a", outcome=1)
                listed = await call(writer, "list_experiences", namespace="spare")
    assert added["created"] is True
    assert recorded["outcome"]["namespace"] == "spare"
    assert [item["text"] for item in listed["items"]] == [OTHER]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("not json", "cannot be read as JSON"),
        ('{"tokens": [{"token": "short", "namespaces": ["math"], "access": "read"}]}', "at least 16"),
        ('{"tokens": [{"token": "long-enough-token-1", "namespaces": [], "access": "read"}]}', "namespaces"),
        ('{"tokens": [{"token": "long-enough-token-1", "namespaces": ["Bad NS"], "access": "read"}]}', "namespace"),
        ('{"tokens": [{"token": "long-enough-token-1", "namespaces": ["math"], "access": "admin"}]}', "access"),
    ],
)
def test_a_bad_tokens_file_is_refused_with_what_to_fix(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InvalidInput, match=expected):
        load_tokens_file(path)


def test_a_grant_survives_the_round_trip_through_access_token_scopes() -> None:
    for grant in (
        Grant(namespaces=None, write=True),
        Grant(namespaces=frozenset({"a", "b"}), write=False),
        Grant(namespaces=frozenset(), write=False),
    ):
        assert Grant.of_scopes(grant.scopes()) == grant
