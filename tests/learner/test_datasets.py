from __future__ import annotations

import json
from pathlib import Path

import pytest

from debrief.learner import ConfigError, generate_problems, load_generator, load_jsonl
from tests.learner.scripted import addition


def write(path: Path, records: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(record) for record in records) + "\n", encoding="utf-8")
    return path


def test_jsonl_problems_are_read_with_the_usual_field_names(tmp_path: Path) -> None:
    path = write(
        tmp_path / "data.jsonl",
        [{"id": 1, "question": "1+1?", "answer": 2}, {"problem": "2+2?", "groundtruth": "4", "level": 3}],
    )
    first, second = load_jsonl(path)
    assert (first.problem_id, first.question, first.answer) == ("1", "1+1?", "2")
    assert second.question == "2+2?" and second.answer == "4"
    assert second.problem_id.startswith("p-") and second.metadata == {"level": 3}


def test_jsonl_field_names_are_configurable(tmp_path: Path) -> None:
    path = write(tmp_path / "data.jsonl", [{"task": "Name a colour.", "gold": "red"}])
    (problem,) = load_jsonl(path, question_fields=["task"], answer_fields=["gold"])
    assert (problem.question, problem.answer) == ("Name a colour.", "red")


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([{"answer": "1"}], "question fields"),
        ([{"id": "a", "question": "x"}, {"id": "a", "question": "y"}], "line 2 repeats line 1 \\(the same id 'a'"),
        ([{"question": "x"}, {"question": "y"}, {"question": "x"}], "line 3 repeats line 1 \\(the same question"),
        ([[1, 2]], "not a JSON object"),
    ],
)
def test_bad_jsonl_is_refused_with_the_line_number(tmp_path: Path, records: list[object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_jsonl(write(tmp_path / "bad.jsonl", records))


def test_a_missing_answer_is_refused_when_answers_are_required(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="line 1"):
        load_jsonl(write(tmp_path / "d.jsonl", [{"question": "x"}]), require_answer=True)


def test_generated_problems_are_distinct_and_the_same_for_the_same_seed() -> None:
    problems = generate_problems(addition, 30, seed=5)
    assert len({problem.problem_id for problem in problems}) == 30
    assert generate_problems(addition, 30, seed=5) == problems
    assert generate_problems(addition, 30, seed=6) != problems


def test_a_generator_is_imported_by_module_and_function_name() -> None:
    generator = load_generator("tests.learner.scripted:addition")
    assert generate_problems(generator, 3, seed=1) == generate_problems(addition, 3, seed=1)
    with pytest.raises(ConfigError):
        load_generator("tests.learner.scripted")


def test_a_missing_file_is_one_line_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read .*nope.jsonl.*: no such file"):
        load_jsonl(tmp_path / "nope.jsonl")
