"""Outcomes of real work over MCP: groups, background reflection with provenance, usage counters in ranking."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from debrief.server.embedding.embedder import Embedder
from debrief.server.mcp.app import create_server
from debrief.server.settings import OutcomeSettings, Settings
from tests.learner.scripted import LESSON
from tests.support.mcp_calls import call, call_error
from tests.support.runs import ScriptedProvider

pytestmark = pytest.mark.anyio

TASK = "Add 47 and 38 and report the sum."
SORT_TASK = "sort a list of records by date in python"
BY_DATE = "When sorting records by date in python, parse the date strings first."
BY_KEY = "When ordering a list of records, sort by a key function instead of comparing by hand."


@pytest.fixture(params=["auto", "legacy"])
async def setup(
    request: pytest.FixtureRequest, tmp_path: Path, test_embedder: Embedder
) -> AsyncIterator[tuple[Client, ScriptedProvider]]:
    # The scripted model stands in for a configured reflection model (auto would pick the client without one).
    settings = Settings(
        data_dir=tmp_path / "data", chroma_mode="in-process", outcomes=OutcomeSettings(reflection="server")
    )
    provider = ScriptedProvider(settings)
    server = create_server(settings, embedder=test_embedder, provider=provider)
    async with Client(server, mode=request.param) as client:
        yield client, provider


async def record(client: Client, **arguments: Any) -> dict[str, Any]:
    defaults: dict[str, Any] = {"namespace": "math", "task": TASK, "attempt": "I added the tens, then the ones."}
    defaults.update(arguments)
    return await call(client, "record_outcome", **defaults)


async def test_a_mixed_group_is_reflected_on_once_and_recorded_with_its_outcomes_as_provenance(
    setup: tuple[Client, ScriptedProvider],
) -> None:
    client, provider = setup
    first = await record(client, outcome="failure", task_key="sum-47-38", feedback="said 75")
    assert first["reflection"] == "not_mixed"
    assert first["group_size"] == 1
    second = await record(client, outcome="success", task_key="sum-47-38", wait_seconds=30)
    assert second["outcome"]["group_id"] == first["outcome"]["group_id"]
    assert second["reflection"] == "applied"
    history = await call(client, "library_history", namespace="math")
    assert len(history["changes"]) == 1
    change = history["changes"][0]
    assert change["source"]["kind"] == "outcome"
    assert change["source"]["outcome_ids"] == [first["outcome"]["outcome_id"], second["outcome"]["outcome_id"]]
    assert [edit["after"]["text"] for edit in change["edits"]] == [LESSON]
    summaries = provider.reflect.calls_for("summary")
    assert len(summaries) == 2
    assert any("said 75" in message.content for request in summaries for message in request.messages)
    third = await record(client, outcome="success", task_key="sum-47-38")
    assert third["reflection"] == "not_mixed"
    assert len((await call(client, "library_history", namespace="math"))["changes"]) == 1


async def test_outcomes_without_a_key_are_grouped_by_task_similarity(setup: tuple[Client, ScriptedProvider]) -> None:
    client, _ = setup
    first = await record(client, outcome=0.0)
    same = await record(client, outcome=0.2, task="add 47 and 38 and report the sum")
    other = await record(client, outcome=0.0, task="Write a haiku about autumn leaves falling.")
    assert same["outcome"]["group_id"] == first["outcome"]["group_id"]
    assert same["group_size"] == 2 and same["reflection"] == "not_mixed"
    assert other["outcome"]["group_id"] != first["outcome"]["group_id"]


async def test_helpful_and_harmful_counts_change_the_ranking_and_flag_what_hurts(
    setup: tuple[Client, ScriptedProvider],
) -> None:
    client, _ = setup
    by_date = (await call(client, "add_experience", text=BY_DATE, namespace="code"))["experience"]["experience_id"]
    by_key = (await call(client, "add_experience", text=BY_KEY, namespace="code"))["experience"]["experience_id"]
    before = await call(client, "retrieve_experiences", task=SORT_TASK, namespace="code", k=2)
    assert [item["experience_id"] for item in before["experiences"]] == [by_key, by_date]
    for index in range(4):
        await record(
            client,
            namespace="code",
            task=f"{SORT_TASK} #{index}",
            task_key=f"a{index}",
            outcome="success",
            experience_ids_used=[by_date],
        )
        await record(
            client,
            namespace="code",
            task=f"{SORT_TASK} #{index}",
            task_key=f"b{index}",
            outcome="failure",
            experience_ids_used=[by_key],
        )
    after = await call(client, "retrieve_experiences", task=SORT_TASK, namespace="code", k=2)
    assert [item["experience_id"] for item in after["experiences"]] == [by_date, by_key]
    ranked = {item["experience_id"]: item for item in after["experiences"]}
    assert ranked[by_key]["counters"]["harmful"] == 4
    assert ranked[by_date]["counters"]["helpful"] == 4
    flagged = await call(client, "list_experiences", namespace="code", flagged_only=True)
    assert [item["experience_id"] for item in flagged["items"]] == [by_key]
    explained = await call(client, "explain_experience", experience_id=by_key)
    assert explained["flagged"] is True
    assert (await call(client, "list_experiences", namespace="code"))["items"][1]["status"] == "active"


async def test_explain_experience_shows_history_and_the_outcomes_behind_it(
    setup: tuple[Client, ScriptedProvider],
) -> None:
    client, _ = setup
    first = await record(client, outcome="failure", task_key="k")
    second = await record(client, outcome="success", task_key="k", wait_seconds=30)
    assert second["reflection"] == "applied"
    learned = (await call(client, "list_experiences", namespace="math"))["items"][0]
    explained = await call(client, "explain_experience", experience_id=learned["experience_id"])
    assert [change["kind"] for change in explained["changes"]] == ["learn"]
    assert {item["outcome_id"] for item in explained["outcomes"]} == {
        first["outcome"]["outcome_id"],
        second["outcome"]["outcome_id"],
    }


async def test_outcomes_are_listed_newest_first_a_page_at_a_time(setup: tuple[Client, ScriptedProvider]) -> None:
    client, _ = setup
    ids = [
        (await record(client, outcome="failure", task=f"task number {i} about gardens"))["outcome"]["outcome_id"]
        for i in range(5)
    ]
    page = await call(client, "list_outcomes", namespace="math", limit=3)
    assert [item["outcome_id"] for item in page["items"]] == ids[::-1][:3]
    rest = await call(client, "list_outcomes", namespace="math", limit=3, cursor=page["next_cursor"])
    assert [item["outcome_id"] for item in rest["items"]] == ids[::-1][3:]
    assert rest["next_cursor"] is None


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"outcome": 1.5}, "outcome"),
        ({"outcome": "maybe"}, "outcome"),
        ({"outcome": "success", "experience_ids_used": ["other:0123456789ab"]}, "not in namespace"),
        ({"outcome": "success", "task": "x" * 9000}, "task"),
    ],
)
async def test_bad_outcomes_are_refused_and_nothing_is_stored(
    setup: tuple[Client, ScriptedProvider], arguments: dict[str, Any], expected: str
) -> None:
    client, _ = setup
    request = {"namespace": "math", "task": TASK, "attempt": "tried"}
    request.update(arguments)
    message = await call_error(client, "record_outcome", **request)
    assert expected in message
    assert (await call(client, "list_outcomes", namespace="math"))["items"] == []
