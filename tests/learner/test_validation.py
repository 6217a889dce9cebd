from __future__ import annotations

import anyio
import pytest

from debrief.learner import Backends, FunctionBackend, InMemoryLibrary, RunConfig, make_verifier, run_learning
from debrief.learner.accounting import PriceTable
from debrief.learner.backend import ChatRequest
from debrief.learner.calls import Caller
from debrief.learner.errors import ConfigError
from debrief.learner.library import LibraryEntry
from debrief.learner.operations import AddOperation, DeleteOperation, MergeOperation, ModifyOperation
from debrief.learner.records import RunReport
from debrief.learner.validation import (
    ValidationGate,
    ValidationSettings,
    best_by_validation,
    edited,
    split_validation,
)
from tests.learner.scripted import addition_problems
from tests.learner.two_lessons import BAD, GOOD, policy, proposes_both

pytestmark = pytest.mark.anyio


def config(**overrides: object) -> RunConfig:
    settings: dict[str, object] = {"run_id": "gate", "epochs": 1, "batch_size": 8, "seed": 3, "max_operations": 2}
    settings.update(overrides)
    return RunConfig.model_validate(settings)


async def learn_with_gate(
    gate: ValidationGate | None, *, order: tuple[str, ...] = (BAD, GOOD), epochs: int = 1
) -> tuple[RunReport, InMemoryLibrary]:
    library = InMemoryLibrary()
    reflect = FunctionBackend(proposes_both(order), model="reflect")
    with anyio.fail_after(30):
        report = await run_learning(
            config(epochs=epochs),
            backends=Backends(policy=FunctionBackend(policy, model="policy"), reflect=reflect, judge=reflect),
            library=library,
            problems=addition_problems(8, seed=1),
            verifier=make_verifier("exact"),
            gate=gate,
        )
    return report, library


def gate(samples: int = 4, margin: float = 0.0) -> ValidationGate:
    return ValidationGate(
        problems=addition_problems(12, seed=99),
        verifier=make_verifier("exact"),
        settings=ValidationSettings(samples=samples, margin=margin),
    )


async def test_without_a_gate_both_proposed_lessons_land_in_the_library() -> None:
    _report, library = await learn_with_gate(None)

    assert sorted(entry.text for entry in await library.entries()) == sorted([BAD, GOOD])


async def test_the_gate_keeps_the_good_lesson_and_rejects_the_bad_one_with_its_figures() -> None:
    report, library = await learn_with_gate(gate())

    assert [entry.text for entry in await library.entries()] == [GOOD]
    [step] = report.steps
    refused = [item for item in step.rejected if item.kind == "validation"]
    assert len(refused) == 1 and refused[0].stage == "validation"
    assert refused[0].operation is not None and refused[0].operation.op == "add"
    assert refused[0].operation.text == BAD
    assert "rejected by validation" in refused[0].reason and "delta -" in refused[0].reason
    assert step.validation is not None
    bad, good = step.validation.edits
    assert not bad.kept and bad.delta < 0 and bad.ci95[1] < 0
    assert good.kept and good.delta > 0 and good.ci95[0] > 0
    assert step.validation.mean_after > step.validation.mean_before
    assert step.rejection_counts.get("validation") == 1


async def test_each_lesson_is_judged_against_the_library_it_would_join_whatever_the_plan_order() -> None:
    _report, library = await learn_with_gate(gate(), order=(GOOD, BAD))

    assert [entry.text for entry in await library.entries()] == [GOOD]


async def test_validation_tokens_are_reported_apart_and_counted_in_the_step_total() -> None:
    report, _library = await learn_with_gate(gate())

    [step] = report.steps
    assert step.validation is not None
    spent = step.tokens["validation"]
    assert spent.requests > 0 and spent.prompt_tokens > 0
    assert step.validation.tokens == spent
    learning = sum(count.total_tokens for stage, count in step.tokens.items() if stage != "validation")
    assert step.total.total_tokens == learning + spent.total_tokens
    assert report.tokens["validation"] == spent


async def test_a_margin_lets_a_harmful_edit_within_it_through() -> None:
    report, library = await learn_with_gate(gate(margin=1.0))

    assert sorted(entry.text for entry in await library.entries()) == sorted([BAD, GOOD])
    [step] = report.steps
    assert step.validation is not None and all(edit.kept for edit in step.validation.edits)
    assert "within the margin of 1.000" in step.validation.edits[0].reason


async def test_an_unchanged_library_is_not_validated_twice() -> None:
    report, _library = await learn_with_gate(gate(), epochs=2)

    first, second = report.steps
    assert first.validation is not None
    # The second step proposes only the rejected lesson again: its base library was measured in the first step.
    assert second.validation is not None
    [again] = second.validation.edits
    assert not again.kept
    assert second.tokens["validation"].requests < first.tokens["validation"].requests


async def test_the_best_library_by_validation_is_found_across_steps() -> None:
    report, _library = await learn_with_gate(gate(), epochs=2)

    best = best_by_validation([(step.step, step.validation) for step in report.steps])
    assert best is not None
    assert best.step == 1 and best.mean == best.last_mean
    assert best_by_validation([(0, None)]) is None


async def test_the_gate_refuses_problems_without_answers_for_a_verifier_that_needs_them() -> None:
    problems = [problem.model_copy(update={"answer": None}) for problem in addition_problems(2)]
    with pytest.raises(ConfigError, match="no ground truth"):
        ValidationGate(problems=problems, verifier=make_verifier("exact"))


async def test_retrieval_shows_each_problem_its_retrieved_experiences_plus_the_edited_one() -> None:
    library = InMemoryLibrary()
    for number in range(3):
        library.add_text(f"Lesson number {number} about something unrelated to sums.")
    seen: list[str] = []

    def record(request: ChatRequest, choice: int) -> str:
        seen.append(request.messages[0].content)
        return policy(request, choice)

    caller = Caller(Backends(policy=FunctionBackend(record)), concurrency=4, prices=PriceTable())
    checked = gate(samples=1)
    verdict = await checked.check(
        caller=caller,
        config=config(injection="retrieve", retrieve_k=1),
        library=library,
        entries=await library.entries(),
        operations=[AddOperation(text=GOOD)],
    )
    assert [edit.kept for edit in verdict.record.edits] == [True]
    with_good = [prompt for prompt in seen if GOOD in prompt]
    assert with_good and all(prompt.count("Lesson number") == 1 for prompt in with_good)


def test_edits_are_simulated_on_a_copy_of_the_entries() -> None:
    entries = [LibraryEntry(experience_id="a", text="First lesson."), LibraryEntry(experience_id="b", text="Second.")]

    added = edited(entries, AddOperation(text="Third."), new_id="n")
    modified = edited(entries, ModifyOperation(experience_id="a", text="First, rewritten."), new_id="n")
    merged = edited(entries, MergeOperation(experience_ids=["a", "b"], text="Both."), new_id="n")
    deleted = edited(entries, DeleteOperation(experience_id="b"), new_id="n")

    assert added is not None and [entry.text for entry in added] == ["First lesson.", "Second.", "Third."]
    assert modified is not None and [entry.text for entry in modified] == ["First, rewritten.", "Second."]
    assert merged is not None and [(entry.experience_id, entry.text) for entry in merged] == [("n", "Both.")]
    assert deleted is not None and [entry.experience_id for entry in deleted] == ["a"]
    assert edited(entries, DeleteOperation(experience_id="zz"), new_id="n") is None
    assert len(entries) == 2


def test_the_validation_split_is_seeded_disjoint_and_refuses_to_leave_nothing_to_learn() -> None:
    problems = addition_problems(20)

    train, held = split_validation(problems, 0.25, seed=5)
    again, held_again = split_validation(problems, 0.25, seed=5)
    _other_train, held_other = split_validation(problems, 0.25, seed=6)

    assert len(held) == 5 and len(train) == 15
    assert {p.problem_id for p in train}.isdisjoint({p.problem_id for p in held})
    assert held == held_again and train == again
    assert held != held_other
    with pytest.raises(ConfigError, match="between 0 and 1"):
        split_validation(problems, 1.0, seed=0)
    with pytest.raises(ConfigError, match="none to learn from"):
        split_validation(problems[:1], 0.5, seed=0)
