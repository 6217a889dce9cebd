from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from debrief.server.embedding.hashed import HashEmbedder
from debrief.server.learning.utility import RetireRule, retire_unhelpful, unhelpful
from debrief.server.mcp.app import create_server
from debrief.server.settings import OutcomeSettings, Settings
from debrief.server.store.experience_store import ExperienceStore
from debrief.server.store.models import Counters

pytestmark = pytest.mark.anyio

HURTS = "When a test fails, delete the test so that the suite passes again."
HELPS = "When a test fails, read its assertion message before changing any code."


async def used(store: ExperienceStore, experience_id: str, *, helpful: int, harmful: int) -> None:
    for _ in range(helpful):
        await store.record_usage([experience_id], helpful=True)
    for _ in range(harmful):
        await store.record_usage([experience_id], helpful=False)


def test_the_rule_needs_enough_uses_and_a_small_helpful_share() -> None:
    rule = RetireRule()

    assert unhelpful(Counters(helpful=1, harmful=4), rule)
    assert unhelpful(Counters(helpful=2, harmful=3), rule)
    assert not unhelpful(Counters(helpful=0, harmful=4), rule)  # four uses are not enough
    assert not unhelpful(Counters(helpful=3, harmful=3), rule)  # half helpful is not below half
    assert not unhelpful(Counters(retrieved=50), rule)  # retrievals without outcomes say nothing
    assert unhelpful(Counters(helpful=1, harmful=1), RetireRule(min_uses=2, min_helpful_share=0.6))


async def test_an_experience_that_mostly_failed_is_retired_with_its_evidence_and_comes_back_on_rollback(
    store: ExperienceStore,
) -> None:
    bad = (await store.add("dev", HURTS)).experience.experience_id
    good = (await store.add("dev", HELPS)).experience.experience_id
    await used(store, bad, helpful=1, harmful=4)
    await used(store, good, helpful=4, harmful=1)
    before = await store.version("dev")

    decisions = await retire_unhelpful(store, [bad, good], RetireRule(), outcome_id="out-123")

    assert [(item.experience_id, item.action) for item in decisions] == [(bad, "retired")]
    assert (await store.get(bad)).status == "retired"
    assert (await store.get(good)).status == "active"
    [change] = await store.history("dev", since_version=before)
    assert change.kind == "retire"
    assert change.source.kind == "outcome" and change.source.outcome_ids == ["out-123"]
    assert "helpful in 1 of 5 recorded outcomes (20%), below 50%" in change.reason
    assert [text.text for text in await store.active("dev")] == [HELPS]

    await store.rollback("dev", before, reason="the failures were the tests' fault")
    assert sorted(item.text for item in await store.active("dev")) == sorted([HURTS, HELPS])


async def test_with_the_switch_set_the_rule_only_flags(store: ExperienceStore) -> None:
    bad = (await store.add("dev", HURTS)).experience.experience_id
    await used(store, bad, helpful=0, harmful=5)
    before = await store.version("dev")

    decisions = await retire_unhelpful(store, [bad], RetireRule(flag_only=True), outcome_id="out-1")

    assert [(item.action, item.harmful, item.version) for item in decisions] == [("flagged", 5, None)]
    assert "flagged by outcomes" in decisions[0].reason
    assert (await store.get(bad)).status == "active"
    assert await store.version("dev") == before


async def test_a_retired_or_unknown_experience_is_left_alone(store: ExperienceStore) -> None:
    bad = (await store.add("dev", HURTS)).experience.experience_id
    await used(store, bad, helpful=0, harmful=6)
    first = await retire_unhelpful(store, [bad], RetireRule(), outcome_id="out-1")
    version = await store.version("dev")

    again = await retire_unhelpful(store, [bad, "dev:000000000000"], RetireRule(), outcome_id="out-2")

    assert len(first) == 1 and again == []
    assert await store.version("dev") == version


async def client_records_failures(tmp_path: Path, outcomes: OutcomeSettings) -> tuple[str, dict[str, Any], Any]:
    """A client retrieves a lesson and reports five failed tasks that used it; returns its id, explanation, and
    the active listing."""
    settings = Settings(data_dir=tmp_path / "data", chroma_mode="in-process", outcomes=outcomes)
    async with Client(create_server(settings, embedder=HashEmbedder())) as client:

        async def call(tool: str, **arguments: Any) -> dict[str, Any]:
            result = await client.call_tool(tool, arguments)
            assert not result.is_error, result.content
            content: dict[str, Any] | None = result.structured_content
            assert content is not None
            return content

        added = await call("add_experience", namespace="dev", text=HURTS)
        experience_id = added["experience"]["experience_id"]
        for number in range(5):
            await call(
                "record_outcome",
                namespace="dev",
                task=f"Fix failing test number {number} in the parser module.",
                task_key=f"task-{number}",
                attempt="Deleted the failing test.",
                outcome="failure",
                experience_ids_used=[experience_id],
            )
        explained = await call("explain_experience", experience_id=experience_id)
        listed = await call("list_experiences", namespace="dev")
    return experience_id, explained, listed


async def test_record_outcome_retires_a_lesson_after_five_failed_uses_with_the_evidence_in_its_history(
    tmp_path: Path,
) -> None:
    _id, explained, listed = await client_records_failures(tmp_path, OutcomeSettings(reflection="client"))

    assert explained["experience"]["status"] == "retired"
    retirement = explained["changes"][-1]
    assert retirement["kind"] == "retire" and retirement["source"]["kind"] == "outcome"
    assert "helpful in 0 of 5 recorded outcomes" in retirement["reason"]
    assert len(retirement["source"]["outcome_ids"]) == 1
    assert listed["items"] == []


async def test_with_flag_only_set_record_outcome_leaves_the_lesson_active(tmp_path: Path) -> None:
    _id, explained, listed = await client_records_failures(
        tmp_path, OutcomeSettings(reflection="client", retire_flag_only=True)
    )

    assert explained["experience"]["status"] == "active"
    assert explained["experience"]["counters"]["harmful"] == 5
    assert [item["text"] for item in listed["items"]] == [HURTS]
