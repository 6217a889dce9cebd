from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from debrief.learner.aliases import AliasMap, alias_operation, resolve_operation
from debrief.learner.backend import estimate_tokens
from debrief.learner.library import LibraryEntry
from debrief.learner.operations import DeleteOperation, MergeOperation, ModifyOperation
from debrief.learner.prompts import cut_to_budget

ids = st.lists(st.text(alphabet="abcdef0123456789-", min_size=3, max_size=12), min_size=1, max_size=30, unique=True)


@given(ids)
def test_every_alias_maps_back_to_its_stable_id(keys: list[str]) -> None:
    aliases = AliasMap.of([LibraryEntry(experience_id=key, text=f"text {key}") for key in keys])
    for index, key in enumerate(keys):
        assert aliases.alias(key) == f"G{index}"
        assert aliases.resolve(f"G{index}") == key
        assert aliases.resolve(f"[G{index}]") == key
        assert aliases.resolve(key) == key
    assert aliases.resolve(f"G{len(keys)}") is None


@given(ids)
def test_operations_round_trip_through_aliases(keys: list[str]) -> None:
    aliases = AliasMap.of([LibraryEntry(experience_id=key, text="t") for key in keys])
    for operation in (
        ModifyOperation(experience_id=keys[0], text="new"),
        DeleteOperation(experience_id=keys[-1]),
    ):
        shown = alias_operation(operation, aliases)
        assert not isinstance(shown, str)
        assert resolve_operation(shown, aliases) == operation
    if len(keys) > 1:
        merge = MergeOperation(experience_ids=keys[:2], text="both")
        shown = alias_operation(merge, aliases)
        assert not isinstance(shown, str) and resolve_operation(shown, aliases) == merge


def test_operations_naming_unknown_experiences_are_explained() -> None:
    aliases = AliasMap.of([LibraryEntry(experience_id="E1", text="t")])
    assert isinstance(resolve_operation(DeleteOperation(experience_id="G7"), aliases), str)
    assert isinstance(alias_operation(DeleteOperation(experience_id="E9"), aliases), str)


@given(st.text(min_size=0, max_size=5000), st.integers(min_value=50, max_value=500))
def test_a_long_text_is_cut_near_its_token_budget_with_the_cut_marked(text: str, budget: int) -> None:
    cut = cut_to_budget(text, budget)
    if estimate_tokens(text) <= budget:
        assert cut == text
    else:
        assert "characters cut" in cut
        assert estimate_tokens(cut) <= budget + 20
        assert cut.startswith(text[:10])
