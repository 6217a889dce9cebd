from __future__ import annotations

import re

import pytest

from debrief.server.cli.demo_tasks import ANSWER_INSTRUCTION, MAX_TASKS, check_answer, extract_answer, generate_tasks


def _recompute(question: str) -> int:
    """Solve a demo question independently of the generator, from its wording."""
    numbers = [int(n) for n in re.findall(r"\d+", question.removesuffix(" " + ANSWER_INSTRUCTION))]
    if "gets" in question:
        have, more = numbers
        return have + more
    if "gives" in question:
        have, given = numbers
        return have - given
    raise AssertionError(f"unknown template: {question!r}")


def test_the_same_seed_gives_the_same_problems() -> None:
    assert generate_tasks(seed=7, n_train=20, n_heldout=5) == generate_tasks(seed=7, n_train=20, n_heldout=5)


def test_different_seeds_give_different_problems() -> None:
    first = generate_tasks(seed=1, n_train=10, n_heldout=0).train
    second = generate_tasks(seed=2, n_train=10, n_heldout=0).train
    assert {task.question for task in first} != {task.question for task in second}


def test_every_answer_matches_a_recomputation_from_the_question() -> None:
    split = generate_tasks(seed=3, n_train=300, n_heldout=100)
    for task in (*split.train, *split.heldout):
        assert task.answer == str(_recompute(task.question)), task.question
        assert int(task.answer) >= 0


def test_train_and_heldout_are_disjoint_with_unique_ids() -> None:
    split = generate_tasks(seed=0, n_train=40, n_heldout=20)
    assert (len(split.train), len(split.heldout)) == (40, 20)
    assert not {task.question for task in split.train} & {task.question for task in split.heldout}
    ids = [task.problem_id for task in (*split.train, *split.heldout)]
    assert len(set(ids)) == len(ids)


def test_every_question_carries_the_answer_format_instruction() -> None:
    split = generate_tasks(seed=5, n_train=5, n_heldout=5)
    assert all(task.question.endswith(ANSWER_INSTRUCTION) for task in (*split.train, *split.heldout))


def test_negative_counts_are_rejected() -> None:
    with pytest.raises(ValueError, match="n_train=-1"):
        generate_tasks(seed=0, n_train=-1, n_heldout=0)


def test_asking_for_more_than_the_maximum_is_rejected() -> None:
    with pytest.raises(ValueError, match="at most"):
        generate_tasks(seed=0, n_train=MAX_TASKS, n_heldout=1)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("42", "42"),
        ("She has 5 + 3 = 8 apples, then 8 - 2 = 6.", "6"),
        ("5 + 3 = 8\n8 - 2 = 6\nAnswer: 6", "6"),
        ("Answer: 6. I counted 3 twice to be sure.", "6"),
        ("**Answer:** 17", "17"),
        ("The answer is 23 apples.", "23"),
        ("the final answer is $1,200.", "1200"),
        ("Step 1: 4 * 3 = 12\n#### 12", "12"),
        ("#### 12\nAnswer: 99", "12"),
        ("So we get \\boxed{36} and 7 left over", "36"),
        ("\\boxed{4} then \\boxed{ 9 }", "9"),
        ("Answer: 9\n\\boxed{10}", "10"),
        ("The total is 12.0", "12"),
        ("It costs 2.50 dollars", "2.5"),
        ("The temperature is -4 degrees", "-4"),
        ("10-3 gives 7", "7"),
        ("Sums: 3,4 and 5", "5"),
        ("There are 1,234,567 stars", "1234567"),
        ("Answer = 15", "15"),
    ],
)
def test_extract_answer_reads_the_final_number(reply: str, expected: str) -> None:
    assert extract_answer(reply) == expected


@pytest.mark.parametrize("reply", ["", "I do not know.", "Answer: none", "x2 and y3"])
def test_extract_answer_is_none_without_a_number(reply: str) -> None:
    assert extract_answer(reply) is None


@pytest.mark.parametrize(
    ("reply", "answer", "right"),
    [
        ("Answer: 12", "12", True),
        ("Answer: 12.0", "12", True),
        ("Answer: 12", " 12 ", True),
        ("Answer: 1,200", "1200", True),
        ("Answer: 13", "12", False),
        ("12 apples, no wait: Answer: 11", "12", False),
        ("Answer: 12", "not a number", False),
        ("no number here", "12", False),
        ("Answer: 2.5", "2.50", True),
        ("Answer: 2.51", "2.5", False),
    ],
)
def test_check_answer_compares_the_final_number_exactly(reply: str, answer: str, right: bool) -> None:
    assert check_answer(reply, answer) is right
