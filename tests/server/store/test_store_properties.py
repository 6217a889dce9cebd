"""Property: after any sequence of edits, rolling back to version v restores exactly the library of version v."""

from __future__ import annotations

import tempfile
from pathlib import Path

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from debrief.learner.library import Provenance
from debrief.learner.operations import MergeOperation
from debrief.server.embedding.hashed import HashEmbedder
from debrief.server.errors import Conflict
from debrief.server.settings import Settings
from debrief.server.store.experience_store import ExperienceStore

Action = tuple[str, int, int]
actions = st.lists(
    st.tuples(
        st.sampled_from(["add", "add", "update", "retire", "merge", "rollback"]),
        st.integers(0, 10_000),
        st.integers(0, 10_000),
    ),
    min_size=1,
    max_size=12,
)
LEARNED = Provenance(kind="learned", run_id="property")


async def active_library(store: ExperienceStore) -> dict[str, str]:
    page = await store.list("prop", limit=100)
    return {item.experience_id: item.text for item in page.items}


async def scenario(data_dir: Path, steps: list[Action], checks: list[int]) -> None:
    store = await ExperienceStore.open(Settings(data_dir=data_dir, chroma_mode="in-process"), HashEmbedder())
    try:
        recorded: dict[int, dict[str, str]] = {0: {}}
        version = 0
        for number, (kind, a, b) in enumerate(steps):
            text = f"Remember p{number}x p{number}y p{number}z today."
            active = sorted(recorded[version])
            if kind == "add":
                result = await store.add("prop", text)
                assert result.created
                version = result.version
            elif kind == "update" and active:
                version = (await store.update(active[a % len(active)], text)).version
            elif kind == "retire" and active:
                version = (await store.retire(active[a % len(active)], "property test")).version
            elif kind == "merge" and len(active) >= 2:
                first = active[a % len(active)]
                rest = [key for key in active if key != first]
                second = rest[b % len(rest)]
                merge = MergeOperation(experience_ids=[first, second], text=text)
                applied = await store.apply("prop", [merge], provenance=LEARNED, reason="merge")
                assert applied.applied and not applied.rejected
                version = applied.version
            elif kind == "rollback" and version > 0:
                target = a % version
                try:
                    version = (await store.rollback("prop", target, reason="property test")).version
                except Conflict:
                    assert recorded[target] == recorded[version]
                else:
                    assert await active_library(store) == recorded[target]
            else:
                continue
            recorded[version] = await active_library(store)
        assert [c.version for c in await store.history("prop")] == list(range(1, version + 1))
        for old in range(version + 1):
            assert {e.experience_id: e.text for e in await store.library_at("prop", old)} == recorded[old]
        for pick in checks:
            target = pick % (version + 1)
            try:
                version = (await store.rollback("prop", target, reason="check")).version
            except Conflict:
                assert recorded[target] == recorded[version]
                continue
            assert await active_library(store) == recorded[target]
            recorded[version] = recorded[target]
    finally:
        await store.aclose()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=actions, checks=st.lists(st.integers(0, 10_000), min_size=1, max_size=3))
def test_rolling_back_to_any_version_restores_exactly_the_library_recorded_at_it(
    steps: list[Action], checks: list[int]
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        anyio.run(scenario, Path(directory) / "data", steps, checks)
