from __future__ import annotations

import json
from pathlib import Path

import pytest

from debrief.learner.errors import ConfigError
from debrief.learner.gym_tasks import GymVerifier, parse_gym_source
from debrief.learner.sources import load_source
from debrief.learner.verifiers import make_verifier

pytestmark = pytest.mark.anyio


async def never(_problem: object, _response: str) -> bool:
    raise AssertionError("reasoning-gym scoring never asks a judge")


def write(path: Path, records: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(record) for record in records) + "\n", encoding="utf-8")
    return path


async def test_a_reasoning_gym_source_makes_the_same_problems_for_the_same_seed_and_scores_with_its_checks() -> None:
    source = load_source("reasoning-gym:basic_arithmetic?size=5&seed=3")
    again = load_source("reasoning-gym:basic_arithmetic?size=5&seed=3")
    other = load_source("reasoning-gym:basic_arithmetic?size=5&seed=4")

    assert len(source.problems) == 5 and source.problems == again.problems
    assert source.problems != other.problems
    verifier = source.verifier
    assert isinstance(verifier, GymVerifier) and verifier.needs_answer
    problem = source.problems[0]
    assert problem.answer is not None
    right = await verifier.score(problem, f"Let me compute.\nAnswer: {problem.answer}", judge=never)
    tagged = await verifier.score(problem, f"<answer>{problem.answer}</answer>", judge=never)
    wrong = await verifier.score(problem, "Answer: 123456789", judge=never)
    assert (right, tagged, wrong) == (1.0, 1.0, 0.0)


async def test_a_fresh_gym_verifier_rebuilds_the_dataset_from_the_spec_alone() -> None:
    source = load_source("reasoning-gym:basic_arithmetic?size=3&seed=1")
    fresh = GymVerifier(spec=parse_gym_source("reasoning-gym:basic_arithmetic?size=3&seed=1"))

    problem = source.problems[2]
    assert await fresh.score(problem, f"\\boxed{{{problem.answer}}}", judge=never) == 1.0


def test_bad_reasoning_gym_sources_are_refused_with_what_to_write() -> None:
    with pytest.raises(ConfigError, match="no dataset 'no_such_task'"):
        load_source("reasoning-gym:no_such_task")
    with pytest.raises(ConfigError, match="size must be a whole number"):
        load_source("reasoning-gym:basic_arithmetic?size=0")
    with pytest.raises(ConfigError, match="names no dataset"):
        load_source("reasoning-gym:?size=3")
    assert parse_gym_source("reasoning-gym:chain_sum?size=4&min_terms=2").options == {"min_terms": 2}


async def test_dapo_style_records_give_the_problem_and_the_answer_from_any_of_its_usual_places(tmp_path: Path) -> None:
    path = write(
        tmp_path / "dapo.jsonl",
        [
            {
                "data_source": "math_dapo",
                "prompt": [{"role": "user", "content": "What is 2 + 3?"}],
                "reward_model": {"ground_truth": "5", "style": "rule"},
                "extra_info": {"index": "a-1"},
            },
            {"problem": "What is 7 * 6?", "solution": "Six sevens are \\boxed{42}."},
            {"prompt": "What is 9 - 4?", "answer": "5"},
        ],
    )

    source = load_source(f"dapo:{path}")

    assert [(p.question, p.answer) for p in source.problems] == [
        ("What is 2 + 3?", "5"),
        ("What is 7 * 6?", "42"),
        ("What is 9 - 4?", "5"),
    ]
    assert source.problems[0].problem_id == "a-1" and source.verifier_name == "math"
    scored = await make_verifier("math").score(source.problems[1], "so \\boxed{42}", judge=never)
    assert scored == 1.0


def test_aime_style_answers_are_integers_and_bad_records_are_named(tmp_path: Path) -> None:
    path = write(
        tmp_path / "aime.jsonl",
        [{"ID": "2024-I-1", "Problem": "Find x.", "Answer": "033"}, {"problem": "Find y.", "answer": 204}],
    )

    source = load_source(f"aime:{path}")

    assert [p.answer for p in source.problems] == ["33", "204"]
    assert source.problems[0].problem_id == "2024-I-1"
    assert source.verifier_name == "numeric"
    bad = write(tmp_path / "bad.jsonl", [{"problem": "Find z.", "answer": "one half"}])
    with pytest.raises(ConfigError, match="line 1: an AIME answer is an integer"):
        load_source(f"aime:{bad}")
    no_answer = write(tmp_path / "no-answer.jsonl", [{"prompt": "What?"}])
    with pytest.raises(ConfigError, match="is not DAPO-style"):
        load_source(f"dapo:{no_answer}")
    with pytest.raises(ConfigError, match="is not a file"):
        load_source(str(tmp_path / "absent.jsonl"))
