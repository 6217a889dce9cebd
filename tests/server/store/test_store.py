"""Behaviour of the experience store on real Chroma: single-experience edits, reads and retrieval."""

from __future__ import annotations

import pytest

from debrief.learner.library import Provenance
from debrief.server.errors import Conflict, InvalidInput, NotFound
from debrief.server.store.experience_store import ExperienceStore, flagged, usage_score
from debrief.server.store.models import Counters

pytestmark = pytest.mark.anyio

UNITS = "When a word problem mixes units, convert every quantity to one unit before doing any arithmetic."
INTEGER = "When an answer must be an integer, check it by substituting it back into the original statement."
FLAKY = "When debugging a flaky test, first make the failure reproducible with a fixed random seed."
LONG = " ".join(["word"] * 33) + "."


async def active_texts(store: ExperienceStore, namespace: str) -> list[str]:
    return [item.text for item in (await store.list(namespace, limit=100)).items]


async def test_an_added_experience_can_be_read_back_with_its_provenance(any_store: ExperienceStore) -> None:
    result = await any_store.add("math", UNITS, note="from a failed attempt")

    assert result.created and result.version == 1 and result.similarity is None
    experience = await any_store.get(result.experience.experience_id)
    assert experience.text == UNITS
    assert experience.namespace == "math"
    assert experience.status == "active"
    assert experience.source.kind == "manual"
    assert experience.version == 1
    assert experience.experience_id.startswith("math:")
    [change] = await any_store.history("math")
    assert (change.kind, change.reason, change.version) == ("add", "from a failed attempt", 1)
    assert change.edits[0].before is None and change.edits[0].after.text == UNITS


async def test_text_is_stored_as_one_clean_line(store: ExperienceStore) -> None:
    result = await store.add("math", "  Check   units\n first. ")

    assert result.experience.text == "Check units first."


async def test_learned_provenance_is_kept(store: ExperienceStore) -> None:
    source = Provenance(kind="learned", run_id="run-1", step=3, groups=["p1", "p2"])

    result = await store.add("math", UNITS, source=source)

    assert (await store.get(result.experience.experience_id)).source == source


async def test_an_experience_over_32_words_is_rejected_with_its_word_count_and_nothing_is_written(
    store: ExperienceStore,
) -> None:
    with pytest.raises(InvalidInput, match="has 33"):
        await store.add("math", LONG)

    assert await store.namespaces() == []
    assert await store.history("math") == []


async def test_an_experience_over_the_byte_limit_is_rejected(store: ExperienceStore) -> None:
    with pytest.raises(InvalidInput, match="bytes; the limit is 1024"):
        await store.add("math", "x" * 1100)


@pytest.mark.parametrize("namespace", ["", "Math", "a b", "-x", "x" * 64])
async def test_a_bad_namespace_is_refused_before_anything_is_written(store: ExperienceStore, namespace: str) -> None:
    with pytest.raises(InvalidInput, match="namespace"):
        await store.add(namespace, UNITS)

    assert await store.namespaces() == []


async def test_an_empty_experience_is_refused(store: ExperienceStore) -> None:
    with pytest.raises(InvalidInput, match="must not be empty"):
        await store.add("math", "   ")


async def test_a_near_copy_returns_the_existing_experience_without_a_new_version(any_store: ExperienceStore) -> None:
    first = await any_store.add("math", UNITS)

    again = await any_store.add("math", UNITS.replace("any arithmetic", "arithmetic"))

    assert not again.created
    assert again.experience.experience_id == first.experience.experience_id
    assert again.similarity is not None and again.similarity > 0.9
    assert again.version == 1
    assert len(await any_store.history("math")) == 1


async def test_a_copy_in_another_namespace_is_a_new_experience(store: ExperienceStore) -> None:
    await store.add("math", UNITS)

    other = await store.add("physics", UNITS)

    assert other.created and other.version == 1


async def test_update_keeps_the_id_and_records_before_and_after(any_store: ExperienceStore) -> None:
    added = await any_store.add("math", UNITS)
    key = added.experience.experience_id

    updated = await any_store.update(key, INTEGER, note="clearer")

    assert updated.version == 2
    assert updated.experience.experience_id == key and updated.experience.text == INTEGER
    change = (await any_store.history("math", since_version=1))[0]
    assert change.kind == "update" and change.reason == "clearer"
    assert change.edits[0].before is not None and change.edits[0].before.text == UNITS
    assert change.edits[0].after.text == INTEGER
    assert await active_texts(any_store, "math") == [INTEGER]


async def test_updating_with_the_same_text_changes_nothing(store: ExperienceStore) -> None:
    added = await store.add("math", UNITS)

    same = await store.update(added.experience.experience_id, UNITS)

    assert same.version == 1
    assert len(await store.history("math")) == 1


async def test_updating_an_unknown_experience_says_it_does_not_exist(store: ExperienceStore) -> None:
    await store.add("math", UNITS)

    with pytest.raises(NotFound, match="no experience 'math:000000000000'"):
        await store.update("math:000000000000", INTEGER)
    with pytest.raises(NotFound):
        await store.update("fresh:000000000000", INTEGER)
    assert await store.namespaces() == [(await store.namespaces())[0]] and [
        info.namespace for info in await store.namespaces()
    ] == ["math"]


@pytest.mark.parametrize("experience_id", ["42", "math:XYZ", "math:0123456789abc", "Math:0123456789ab"])
async def test_a_malformed_experience_id_is_refused_with_the_expected_shape(
    store: ExperienceStore, experience_id: str
) -> None:
    with pytest.raises(InvalidInput, match="namespace:0123456789ab"):
        await store.get(experience_id)
    with pytest.raises(InvalidInput):
        await store.update(experience_id, UNITS)
    with pytest.raises(InvalidInput):
        await store.retire(experience_id, "wrong")


async def test_update_refuses_bad_text_and_keeps_the_old_one(store: ExperienceStore) -> None:
    added = await store.add("math", UNITS)

    with pytest.raises(InvalidInput, match="has 33"):
        await store.update(added.experience.experience_id, LONG)

    assert (await store.get(added.experience.experience_id)).text == UNITS
    assert len(await store.history("math")) == 1


async def test_a_retired_experience_is_no_longer_retrieved_but_is_kept(any_store: ExperienceStore) -> None:
    added = await any_store.add("math", UNITS)
    key = added.experience.experience_id

    retired = await any_store.retire(key, "misleading")

    assert retired.version == 2 and retired.experience.status == "retired"
    assert await any_store.retrieve("math", "convert units before arithmetic") == []
    assert (await any_store.get(key)).text == UNITS
    assert await active_texts(any_store, "math") == []
    assert [e.experience_id for e in (await any_store.list("math", status="retired")).items] == [key]
    [info] = await any_store.namespaces()
    assert (info.namespace, info.version, info.active, info.retired) == ("math", 2, 0, 1)


async def test_retiring_needs_a_reason_and_an_active_experience(store: ExperienceStore) -> None:
    key = (await store.add("math", UNITS)).experience.experience_id

    with pytest.raises(InvalidInput, match="reason must not be empty"):
        await store.retire(key, " ")
    await store.retire(key, "wrong")
    with pytest.raises(Conflict, match="already retired"):
        await store.retire(key, "again")
    with pytest.raises(Conflict, match="retired"):
        await store.update(key, INTEGER)
    assert len(await store.history("math")) == 2


async def test_retrieval_ranks_the_related_experience_first(any_store: ExperienceStore) -> None:
    for text in (UNITS, INTEGER, FLAKY):
        await any_store.add("math", text)

    found = await any_store.retrieve("math", "a word problem that mixes units of length", k=2)

    assert len(found) == 2
    assert found[0].text == UNITS
    assert found[0].score >= found[1].score
    assert found[0].counters.retrieved == 1


async def test_retrieval_counts_each_returned_experience(store: ExperienceStore) -> None:
    key = (await store.add("math", UNITS)).experience.experience_id

    await store.retrieve("math", "units", k=1)
    await store.retrieve("math", "units", k=1)

    assert (await store.get(key)).counters.retrieved == 2
    assert len(await store.history("math")) == 1


async def test_retrieval_applies_min_score_and_k(store: ExperienceStore) -> None:
    for text in (UNITS, INTEGER, FLAKY):
        await store.add("math", text)

    assert len(await store.retrieve("math", "anything at all", k=3)) == 3
    assert len(await store.retrieve("math", "anything", k=1)) == 1
    assert await store.retrieve("math", "zebra", k=3, min_score=0.5) == []


async def test_retrieval_in_an_unknown_namespace_finds_nothing(store: ExperienceStore) -> None:
    assert await store.retrieve("nothing-here", "task") == []


@pytest.mark.parametrize(
    ("task", "k", "message"),
    [("", 5, "task must not be empty"), ("x" * 9000, 5, "bytes"), ("task", 0, "k 0"), ("task", 51, "k 51")],
)
async def test_retrieval_refuses_bad_arguments(store: ExperienceStore, task: str, k: int, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        await store.retrieve("math", task, k=k)


async def test_helpful_outcomes_lift_an_experience_above_an_equally_similar_one(store: ExperienceStore) -> None:
    first = (await store.add("math", "Alpha beta gamma.")).experience.experience_id
    second = (await store.add("math", "Alpha beta delta.")).experience.experience_id
    await store.record_usage([second], helpful=True)
    await store.record_usage([second], helpful=True)

    found = await store.retrieve("math", "alpha beta", k=2)

    assert [item.experience_id for item in found] == [second, first]
    assert found[0].score == pytest.approx(found[0].similarity + 0.1 * 2 / 4)
    assert found[0].counters.helpful == 2


async def test_usage_counts_ignore_unknown_ids_and_are_not_versioned(store: ExperienceStore) -> None:
    key = (await store.add("math", UNITS)).experience.experience_id

    await store.record_usage([key, "math:0123456789ab", "other:0123456789ab"], helpful=False)
    await store.record_usage([key], helpful=False)

    experience = await store.get(key)
    assert experience.counters == Counters(retrieved=0, helpful=0, harmful=2)
    assert experience.version == 1
    assert len(await store.history("math")) == 1
    assert [e.experience_id for e in (await store.list("math", flagged_only=True)).items] == [key]


def test_the_usage_score_and_review_flag_follow_the_documented_rule() -> None:
    assert usage_score(0.5, Counters()) == 0.5
    assert usage_score(0.5, Counters(helpful=3, harmful=1)) == pytest.approx(0.5 + 0.1 * 2 / 6)
    assert not flagged(Counters(harmful=1))
    assert flagged(Counters(harmful=2, helpful=1))
    assert not flagged(Counters(harmful=2, helpful=2))


async def test_listing_pages_through_every_experience_once_oldest_first(any_store: ExperienceStore) -> None:
    texts = [f"Lesson number {word} is about topic {word}." for word in "abcdefg"]
    for text in texts:
        await any_store.add("math", text)

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await any_store.list("math", cursor=cursor, limit=3)
        seen.extend(item.text for item in page.items)
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break

    assert seen == texts
    assert pages == 3


@pytest.mark.parametrize(("kwargs", "message"), [({"limit": 0}, "limit 0"), ({"cursor": "nope"}, "cursor")])
async def test_listing_refuses_bad_arguments(store: ExperienceStore, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        await store.list("math", **kwargs)  # type: ignore[arg-type]


async def test_history_pages_with_since_version(store: ExperienceStore) -> None:
    for text in (UNITS, INTEGER, FLAKY):
        await store.add("math", text)

    assert [c.version for c in await store.history("math", since_version=1)] == [2, 3]
    assert [c.version for c in await store.history("math", since_version=0, limit=2)] == [1, 2]
    assert await store.history("math", since_version=3) == []
    with pytest.raises(InvalidInput):
        await store.history("math", since_version=-1)


async def test_namespaces_are_listed_with_versions_and_sizes(store: ExperienceStore) -> None:
    await store.add("math", UNITS)
    await store.add("math", INTEGER)
    await store.add("code", FLAKY)

    infos = await store.namespaces()

    assert [(i.namespace, i.version, i.active, i.retired) for i in infos] == [("code", 1, 1, 0), ("math", 2, 2, 0)]


async def test_namespaces_with_dots_and_underscores_get_separate_collections(store: ExperienceStore) -> None:
    await store.add("a.b", UNITS)
    await store.add("a_b", INTEGER)
    await store.add("a..b-", FLAKY)

    assert await active_texts(store, "a.b") == [UNITS]
    assert await active_texts(store, "a_b") == [INTEGER]
    assert await active_texts(store, "a..b-") == [FLAKY]
