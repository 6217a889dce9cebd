"""Versions: rollback, libraries at a version, export/import, and the learner's apply seam."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from debrief.learner.library import AppliedLookup, Provenance
from debrief.learner.operations import AddOperation, DeleteOperation, MergeOperation, ModifyOperation, Operation
from debrief.server.errors import Conflict, InvalidInput, NotFound
from debrief.server.store.experience_store import ExperienceStore
from debrief.server.store.learner_library import StoreLibrary
from debrief.server.store.models import ExportedExperience, LibraryExport

pytestmark = pytest.mark.anyio

UNITS = "When a word problem mixes units, convert every quantity to one unit before doing any arithmetic."
INTEGER = "When an answer must be an integer, check it by substituting it back into the original statement."
FLAKY = "When debugging a flaky test, first make the failure reproducible with a fixed random seed."
LEARNED = Provenance(kind="learned", run_id="run-1", step=1, groups=["g1"])


async def library(store: ExperienceStore, namespace: str) -> dict[str, str]:
    page = await store.list(namespace, limit=100)
    return {item.experience_id: item.text for item in page.items}


async def test_rollback_restores_the_library_of_an_earlier_version_keeping_ids(any_store: ExperienceStore) -> None:
    first = (await any_store.add("math", UNITS)).experience.experience_id
    second = (await any_store.add("math", INTEGER)).experience.experience_id
    at_two = await library(any_store, "math")
    await any_store.update(first, "Convert all quantities to one unit first.")
    await any_store.retire(second, "wrong")
    third = (await any_store.add("math", FLAKY)).experience.experience_id

    change = await any_store.rollback("math", 2, reason="bad learning step")

    assert change.kind == "rollback" and change.version == 6 and change.source.kind == "rollback"
    assert await library(any_store, "math") == at_two
    assert (await any_store.get(third)).status == "retired"
    assert {edit.experience_id for edit in change.edits} == {first, second, third}
    assert [e.text for e in await any_store.library_at("math", 5)] == [
        "Convert all quantities to one unit first.",
        FLAKY,
    ]


async def test_rollback_to_zero_retires_everything_and_can_itself_be_rolled_back(store: ExperienceStore) -> None:
    await store.add("math", UNITS)
    await store.add("math", INTEGER)
    before = await library(store, "math")

    await store.rollback("math", 0, reason="start over")
    assert await library(store, "math") == {}
    await store.rollback("math", 2, reason="undo the reset")

    assert await library(store, "math") == before
    assert [c.kind for c in await store.history("math")] == ["add", "add", "rollback", "rollback"]


async def test_rollback_refuses_future_and_current_versions_and_writes_nothing(store: ExperienceStore) -> None:
    await store.add("math", UNITS)

    with pytest.raises(NotFound, match="no version 5"):
        await store.rollback("math", 5, reason="x")
    with pytest.raises(Conflict, match="already at version 1"):
        await store.rollback("math", 1, reason="x")
    with pytest.raises(InvalidInput, match="reason must not be empty"):
        await store.rollback("math", 0, reason="")
    with pytest.raises(InvalidInput):
        await store.rollback("math", -1, reason="x")
    with pytest.raises(NotFound):
        await store.rollback("nothing", 3, reason="x")
    assert len(await store.history("math")) == 1


async def test_library_at_a_version_lists_what_was_active_then(store: ExperienceStore) -> None:
    first = (await store.add("math", UNITS)).experience.experience_id
    await store.add("math", INTEGER)
    await store.retire(first, "wrong")

    assert [e.text for e in await store.library_at("math", 1)] == [UNITS]
    assert [e.text for e in await store.library_at("math", 2)] == [UNITS, INTEGER]
    assert [e.text for e in await store.library_at("math", 3)] == [INTEGER]
    assert await store.library_at("math", 0) == []
    with pytest.raises(NotFound):
        await store.library_at("math", 4)


async def test_export_then_import_into_another_namespace_copies_the_library(any_store: ExperienceStore) -> None:
    await any_store.add("math", UNITS)
    retired = (await any_store.add("math", INTEGER)).experience.experience_id
    await any_store.retire(retired, "wrong")
    await any_store.add("math", FLAKY)
    exported = await any_store.export("math")
    assert exported.version == 4 and [e.status for e in exported.experiences] == ["active", "retired", "active"]

    change = await any_store.import_library("copy", exported, mode="merge")

    assert change is not None and change.kind == "import" and change.version == 1
    assert sorted((await library(any_store, "copy")).values()) == sorted([UNITS, FLAKY])
    assert all(key.startswith("copy:") for key in await library(any_store, "copy"))
    assert await any_store.import_library("copy", exported, mode="merge") is None


async def test_importing_a_trusted_backup_into_an_empty_namespace_keeps_ids_counters_and_sources(
    store: ExperienceStore,
) -> None:
    key = (await store.add("math", UNITS, source=LEARNED)).experience.experience_id
    await store.record_usage([key], helpful=True)
    exported = await store.export("math")
    await store.aclose()

    other = await ExperienceStore.open(
        store._settings.model_copy(update={"data_dir": store._settings.data_dir.parent / "other"}), store._embedder
    )
    try:
        await other.import_library("math", exported, mode="merge", trust_export=True)
        restored = await other.get(key)
    finally:
        await other.aclose()

    assert restored.text == UNITS and restored.counters.helpful == 1 and restored.source == LEARNED


async def test_merge_import_skips_near_duplicates_of_active_experiences(store: ExperienceStore) -> None:
    await store.add("math", UNITS)
    data = LibraryExport(
        namespace="elsewhere",
        version=1,
        exported_at=datetime.now(UTC),
        experiences=[
            ExportedExperience(experience_id="elsewhere:000000000001", text=UNITS.replace("any ", "")),
            ExportedExperience(experience_id="elsewhere:000000000002", text=FLAKY),
        ],
    )

    change = await store.import_library("math", data, mode="merge")

    assert change is not None and len(change.edits) == 1
    assert sorted((await library(store, "math")).values()) == sorted([UNITS, FLAKY])


async def test_replace_import_makes_the_library_exactly_the_import(store: ExperienceStore) -> None:
    kept = (await store.add("math", UNITS)).experience.experience_id
    dropped = (await store.add("math", INTEGER)).experience.experience_id
    data = LibraryExport(
        namespace="math",
        version=9,
        exported_at=datetime.now(UTC),
        experiences=[
            ExportedExperience(experience_id=kept, text=UNITS),
            ExportedExperience(experience_id="other:000000000003", text=FLAKY),
        ],
    )

    change = await store.import_library("math", data, mode="replace")

    assert change is not None and change.version == 3
    assert sorted((await library(store, "math")).values()) == sorted([UNITS, FLAKY])
    assert kept in await library(store, "math")
    assert (await store.get(dropped)).status == "retired"


async def test_an_import_with_a_bad_experience_is_refused_before_anything_is_written(store: ExperienceStore) -> None:
    data = LibraryExport(
        namespace="math",
        version=1,
        exported_at=datetime.now(UTC),
        experiences=[
            ExportedExperience(experience_id="math:000000000001", text=UNITS),
            ExportedExperience(experience_id="math:000000000002", text=" ".join(["w"] * 40)),
        ],
    )

    with pytest.raises(InvalidInput, match="'math:000000000002'.*has 40"):
        await store.import_library("math", data, mode="merge")
    assert await store.namespaces() == []


async def test_an_import_over_the_item_limit_is_refused(store: ExperienceStore) -> None:
    store._limits = store._limits.model_copy(update={"import_items": 1})
    data = LibraryExport(
        namespace="math",
        version=1,
        exported_at=datetime.now(UTC),
        experiences=[ExportedExperience(experience_id=f"math:00000000000{i}", text=f"Lesson {i}.") for i in (1, 2)],
    )

    with pytest.raises(InvalidInput, match="has 2 experiences; the limit is 1"):
        await store.import_library("math", data, mode="merge")


async def test_apply_records_valid_operations_as_one_learn_change_and_rejects_the_rest(store: ExperienceStore) -> None:
    first = (await store.add("math", UNITS)).experience.experience_id
    second = (await store.add("math", INTEGER)).experience.experience_id
    third = (await store.add("math", FLAKY)).experience.experience_id
    other = (await store.add("code", "Run the linter before committing.")).experience.experience_id
    operations: list[Operation] = [
        AddOperation(text="Draw a diagram before setting up equations."),
        ModifyOperation(experience_id=first, text="Convert all quantities to one unit before arithmetic."),
        MergeOperation(experience_ids=[second, third], text="Check answers and reproduce failures first."),
        DeleteOperation(experience_id=second),
        ModifyOperation(experience_id="math:0123456789ab", text="x."),
        DeleteOperation(experience_id=other),
        AddOperation(text=" ".join(["w"] * 33)),
    ]

    result = await store.apply("math", operations, provenance=LEARNED, reason="step 1")

    assert result.version == 4
    assert [a.operation for a in result.applied] == operations[:3]
    assert result.applied[2].experience_ids[1:] == (second, third)
    reasons = [r.reason for r in result.rejected]
    assert "retired" in reasons[0] and "unknown experience id" in reasons[1]
    assert "belongs to namespace 'code'" in reasons[2] and "has 33" in reasons[3]
    [change] = await store.history("math", since_version=3)
    assert change.kind == "learn" and change.source == LEARNED and change.reason == "step 1"
    assert len(change.edits) == 5
    merged = result.applied[2].experience_ids[0]
    assert await library(store, "math") == {
        first: "Convert all quantities to one unit before arithmetic.",
        result.applied[0].experience_ids[0]: "Draw a diagram before setting up equations.",
        merged: "Check answers and reproduce failures first.",
    }
    assert (await store.get(merged)).source == LEARNED


async def test_apply_with_nothing_valid_records_nothing(store: ExperienceStore) -> None:
    await store.add("math", UNITS)

    result = await store.apply(
        "math", [DeleteOperation(experience_id="math:0123456789ab")], provenance=LEARNED, reason="r"
    )

    assert result.version == 1 and not result.applied and len(result.rejected) == 1
    assert len(await store.history("math")) == 1


async def test_apply_rejects_an_add_that_nearly_copies_an_active_experience(store: ExperienceStore) -> None:
    await store.add("math", UNITS)

    result = await store.apply("math", [AddOperation(text=UNITS)], provenance=LEARNED, reason="r")

    assert "near-duplicate" in result.rejected[0].reason


async def test_the_store_library_serves_the_learner_without_counting_retrievals(store: ExperienceStore) -> None:
    lib = StoreLibrary(store, "math")
    result = await lib.apply([AddOperation(text=UNITS), AddOperation(text=FLAKY)], provenance=LEARNED, reason="r")
    assert result.version == 1

    entries = await lib.entries()
    relevant = await lib.relevant("units in a word problem", 1)

    assert [e.text for e in entries] == [UNITS, FLAKY]
    assert [e.text for e in relevant] == [UNITS]
    assert (await store.get(relevant[0].experience_id)).counters.retrieved == 0


async def test_the_store_library_finds_the_version_a_learning_step_made(store: ExperienceStore) -> None:
    lib = StoreLibrary(store, "math")
    await store.add("math", INTEGER)
    await lib.apply([AddOperation(text=UNITS)], provenance=LEARNED, reason="step 1")

    assert isinstance(lib, AppliedLookup)
    assert await lib.applied_version("run-1", 1) == 2
    assert await lib.applied_version("run-1", 2) is None
    assert await StoreLibrary(store, "empty").applied_version("run-1", 1) is None
