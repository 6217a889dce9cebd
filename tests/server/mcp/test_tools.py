"""Every library tool through a real MCP client, in both protocol modes, against real Chroma."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from debrief.server.embedding.embedder import Embedder
from debrief.server.mcp.app import create_server
from debrief.server.settings import Settings
from tests.support.mcp_calls import LESSON, OTHER, THIRD, active_texts, call, call_error

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["auto", "legacy"])
async def client(request: pytest.FixtureRequest, tmp_path: Path, test_embedder: Embedder) -> AsyncIterator[Client]:
    settings = Settings(data_dir=tmp_path / "data", chroma_mode="in-process")
    async with Client(create_server(settings, embedder=test_embedder), mode=request.param) as connected:
        yield connected


async def test_every_tool_is_listed_with_annotations_and_output_schema(client: Client) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) >= {
        "retrieve_experiences",
        "list_experiences",
        "add_experience",
        "update_experience",
        "retire_experience",
        "list_namespaces",
        "library_history",
        "rollback_library",
        "export_library",
        "import_library",
    }
    for tool in tools.values():
        assert tool.output_schema is not None, tool.name
        assert tool.description, tool.name
        assert tool.annotations is not None, tool.name
    assert tools["list_experiences"].annotations.read_only_hint is True  # type: ignore[union-attr]
    assert tools["rollback_library"].annotations.destructive_hint is True  # type: ignore[union-attr]
    assert tools["add_experience"].annotations.destructive_hint is False  # type: ignore[union-attr]


async def test_added_experience_is_retrieved_for_a_related_task_with_a_prompt_block(client: Client) -> None:
    added = await call(client, "add_experience", text=LESSON, namespace="math", note="from a tutor")
    await call(client, "add_experience", text=THIRD, namespace="math")
    assert added["created"] is True
    found = await call(
        client, "retrieve_experiences", task="A word problem mixes units of meters and centimeters", namespace="math"
    )
    assert found["experiences"][0]["experience_id"] == added["experience"]["experience_id"]
    assert LESSON in found["prompt_block"]
    page = await call(client, "list_experiences", namespace="math")
    counters = {item["text"]: item["counters"]["retrieved"] for item in page["items"]}
    assert counters[LESSON] == 1


async def test_an_experience_over_32_words_is_rejected_and_nothing_is_stored(client: Client) -> None:
    long_text = " ".join(["word"] * 33)
    message = await call_error(client, "add_experience", text=long_text, namespace="math")
    assert "33" in message and "32" in message
    assert await active_texts(client, "math") == []
    history = await call(client, "library_history", namespace="math")
    assert history["current_version"] == 0


async def test_a_near_copy_returns_the_existing_experience(client: Client) -> None:
    first = await call(client, "add_experience", text=LESSON, namespace="math")
    again = await call(client, "add_experience", text=LESSON.replace("every", "each"), namespace="math")
    assert again["created"] is False
    assert again["experience"]["experience_id"] == first["experience"]["experience_id"]
    assert len(await active_texts(client, "math")) == 1


async def test_a_bad_namespace_is_refused_with_a_message(client: Client) -> None:
    message = await call_error(client, "add_experience", text=LESSON, namespace="Bad Namespace!")
    assert "namespace" in message


async def test_update_keeps_the_id_and_records_before_and_after(client: Client) -> None:
    added = await call(client, "add_experience", text=LESSON, namespace="math")
    experience_id = added["experience"]["experience_id"]
    updated = await call(client, "update_experience", experience_id=experience_id, text=OTHER, note="clearer")
    assert updated["experience"]["experience_id"] == experience_id
    assert updated["experience"]["text"] == OTHER
    history = await call(client, "library_history", namespace="math")
    last = history["changes"][-1]
    assert last["kind"] == "update"
    assert last["edits"][0]["before"]["text"] == LESSON
    assert last["edits"][0]["after"]["text"] == OTHER
    assert history["current_version"] == 2


async def test_updating_an_unknown_experience_says_it_does_not_exist(client: Client) -> None:
    await call(client, "add_experience", text=LESSON, namespace="math")
    message = await call_error(client, "update_experience", experience_id="math:000000000000", text=OTHER)
    assert "math:000000000000" in message


async def test_a_retired_experience_is_no_longer_retrieved_but_is_kept(client: Client) -> None:
    added = await call(client, "add_experience", text=LESSON, namespace="math")
    experience_id = added["experience"]["experience_id"]
    retired = await call(client, "retire_experience", experience_id=experience_id, reason="wrong")
    assert retired["experience"]["status"] == "retired"
    found = await call(client, "retrieve_experiences", task="units in a word problem", namespace="math")
    assert found["experiences"] == []
    assert found["prompt_block"] == ""
    kept = await call(client, "list_experiences", namespace="math", status="retired")
    assert [item["experience_id"] for item in kept["items"]] == [experience_id]


async def test_listing_pages_through_every_experience_once(client: Client) -> None:
    texts = [
        "When bread dough stays dense, let it rise longer in a warm place.",
        "Before frying fish, pat it dry so the oil does not spit.",
        "When boiling pasta, salt the water generously once it boils.",
        "Grilled vegetables char better after a light coat of oil.",
        "Steam delicate greens briefly so they keep their colour.",
        "Rest roasted meat under foil before carving it.",
        "Poach eggs in barely simmering water with a splash of vinegar.",
    ]
    for text in texts:
        await call(client, "add_experience", text=text, namespace="cooking")
    seen: list[str] = []
    cursor: str | None = None
    while True:
        arguments: dict[str, Any] = {"namespace": "cooking", "limit": 3}
        if cursor is not None:
            arguments["cursor"] = cursor
        page = await call(client, "list_experiences", **arguments)
        assert len(page["items"]) <= 3
        seen.extend(item["text"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(texts)


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("list_experiences", {"namespace": "math", "limit": 101}),
        ("retrieve_experiences", {"namespace": "math", "task": "x", "k": 51}),
        ("retrieve_experiences", {"namespace": "math", "task": "x" * (8 * 1024 + 1)}),
        ("retrieve_experiences", {"namespace": "math", "task": "é" * (4 * 1024 + 1)}),
        ("library_history", {"namespace": "math", "limit": 0}),
        ("rollback_library", {"namespace": "math", "version": -1}),
    ],
)
async def test_out_of_bounds_arguments_are_refused(client: Client, tool: str, arguments: dict[str, Any]) -> None:
    await call_error(client, tool, **arguments)


async def test_namespaces_are_listed_with_versions_and_sizes(client: Client) -> None:
    await call(client, "add_experience", text=LESSON, namespace="math")
    await call(client, "add_experience", text=THIRD, namespace="my-repo")
    listed = await call(client, "list_namespaces")
    by_name = {item["namespace"]: item for item in listed["namespaces"]}
    assert by_name["math"]["active"] == 1 and by_name["math"]["version"] == 1
    assert by_name["my-repo"]["active"] == 1


async def test_history_pages_with_since_version(client: Client) -> None:
    for text in (LESSON, OTHER, THIRD):
        await call(client, "add_experience", text=text, namespace="math")
    first = await call(client, "library_history", namespace="math", limit=2)
    assert [change["version"] for change in first["changes"]] == [1, 2]
    assert first["next_since_version"] == 2
    rest = await call(client, "library_history", namespace="math", since_version=2)
    assert [change["version"] for change in rest["changes"]] == [3]
    assert rest["next_since_version"] is None


async def test_rollback_restores_the_library_of_an_earlier_version(client: Client) -> None:
    first = await call(client, "add_experience", text=LESSON, namespace="math")
    await call(client, "update_experience", experience_id=first["experience"]["experience_id"], text=OTHER)
    await call(client, "add_experience", text=THIRD, namespace="math")
    assert sorted(await active_texts(client, "math")) == sorted([OTHER, THIRD])
    change = await call(client, "rollback_library", namespace="math", version=1)
    assert change["kind"] == "rollback"
    assert change["version"] == 4
    assert await active_texts(client, "math") == [LESSON]
    page = await call(client, "list_experiences", namespace="math")
    assert page["items"][0]["experience_id"] == first["experience"]["experience_id"]


async def test_rollback_to_a_version_that_does_not_exist_is_refused(client: Client) -> None:
    await call(client, "add_experience", text=LESSON, namespace="math")
    message = await call_error(client, "rollback_library", namespace="math", version=9)
    assert "9" in message
    assert await active_texts(client, "math") == [LESSON]


async def test_export_then_import_into_another_namespace_copies_the_library(client: Client) -> None:
    await call(client, "add_experience", text=LESSON, namespace="math")
    await call(client, "add_experience", text=OTHER, namespace="math")
    exported = await call(client, "export_library", namespace="math")
    assert exported["format"] == "debrief-library" and exported["version"] == 2
    imported = await call(client, "import_library", data=exported, namespace="math-copy")
    assert imported["change"]["kind"] == "import"
    assert sorted(await active_texts(client, "math-copy")) == sorted([LESSON, OTHER])
    again = await call(client, "import_library", data=exported, namespace="math-copy")
    assert again["change"] is None
    assert len(await active_texts(client, "math-copy")) == 2


async def test_import_in_replace_mode_makes_the_library_exactly_the_import(client: Client) -> None:
    await call(client, "add_experience", text=THIRD, namespace="work")
    await call(client, "add_experience", text=LESSON, namespace="source")
    exported = await call(client, "export_library", namespace="source")
    await call(client, "import_library", data=exported, namespace="work", mode="replace")
    assert await active_texts(client, "work") == [LESSON]


async def test_an_import_over_the_item_limit_is_refused_before_anything_is_written(client: Client) -> None:
    data = {
        "namespace": "math",
        "version": 1,
        "exported_at": "2026-01-01T00:00:00Z",
        "experiences": [{"experience_id": f"math:{index:012x}", "text": "x"} for index in range(10_001)],
    }
    message = await call_error(client, "import_library", data=data, namespace="math")
    assert "10000" in message or "10,000" in message
    assert await active_texts(client, "math") == []


async def test_the_library_resource_is_plain_text_ready_for_a_prompt(client: Client) -> None:
    added = await call(client, "add_experience", text=LESSON, namespace="math")
    result = await client.read_resource("experiences://math")
    text = result.contents[0].text  # type: ignore[union-attr]
    assert added["experience"]["experience_id"] in text
    assert LESSON in text


async def test_the_protocol_prompt_teaches_retrieve_then_record(client: Client) -> None:
    prompt = await client.get_prompt("use_experience_memory", {"namespace": "my-repo"})
    text = prompt.messages[0].content.text  # type: ignore[union-attr]
    assert "retrieve_experiences" in text and "record_outcome" in text and "'my-repo'" in text
