"""Training problems: JSONL files with configurable field names, and Python task generators."""

from __future__ import annotations

import hashlib
import importlib
import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from debrief.learner.errors import ConfigError


class Problem(BaseModel):
    """One training problem, with its ground truth when there is one."""

    model_config = ConfigDict(frozen=True)
    problem_id: str = Field(description="Stable key of the problem (from the data, else a hash of the question).")
    question: str = Field(description="The task put to the policy.")
    answer: str | None = Field(default=None, description="Ground truth, if known.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Other fields of the record.")


def problem_key(question: str) -> str:
    """A stable id for a problem without one: a short hash of its text."""
    return "p-" + hashlib.sha256(question.encode()).hexdigest()[:12]


def _pick(record: dict[str, Any], names: Sequence[str]) -> tuple[str, Any] | None:
    for name in names:
        if name in record and record[name] is not None:
            return name, record[name]
    return None


def load_jsonl(
    path: str | Path,
    *,
    question_fields: Sequence[str] = ("question", "problem", "prompt"),
    answer_fields: Sequence[str] = ("answer", "groundtruth", "ground_truth", "solution"),
    id_fields: Sequence[str] = ("id", "problem_id", "uid"),
    require_answer: bool = False,
) -> list[Problem]:
    """Read problems from a JSONL file; the first field name present in each list is used.

    Raises:
        ConfigError: a line is not a JSON object, lacks a question (or an answer when ``require_answer``), or
            two problems share an id.
    """
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"cannot read {str(path)!r}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read {str(path)!r} as UTF-8 text: {error}") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{str(path)!r} line {number} is not JSON: {error}") from error
        if not isinstance(record, dict):
            raise ConfigError(f"{str(path)!r} line {number} is not a JSON object")
        question = _pick(record, question_fields)
        if question is None:
            raise ConfigError(f"{str(path)!r} line {number} has none of the question fields {list(question_fields)!r}")
        answer = _pick(record, answer_fields)
        if answer is None and require_answer:
            raise ConfigError(f"{str(path)!r} line {number} has none of the answer fields {list(answer_fields)!r}")
        key = _pick(record, id_fields)
        problem_id = str(key[1]) if key is not None else problem_key(str(question[1]))
        if problem_id in seen:
            same = f"the same id {problem_id!r}" if key is not None else "the same question"
            raise ConfigError(
                f"{str(path)!r} line {number} repeats line {seen[problem_id]} ({same}, problem id {problem_id!r}): "
                "remove one of them"
            )
        seen[problem_id] = number
        used = {question[0], *([answer[0]] if answer else []), *([key[0]] if key else [])}
        problems.append(
            Problem(
                problem_id=problem_id,
                question=str(question[1]),
                answer=None if answer is None else str(answer[1]),
                metadata={name: value for name, value in record.items() if name not in used},
            )
        )
    return problems


TaskGenerator = Callable[[random.Random], tuple[str, str]]
"""Makes one task from a seeded random source: ``(question, answer)``."""


def generate_problems(generator: TaskGenerator, count: int, *, seed: int = 0) -> list[Problem]:
    """``count`` problems from ``generator``, the same ones for the same seed; duplicates are skipped."""
    rng = random.Random(seed)
    problems: dict[str, Problem] = {}
    tries = 0
    while len(problems) < count:
        tries += 1
        if tries > 100 * count + 100:
            raise ConfigError(f"the generator made only {len(problems)} distinct problems of the {count} asked for")
        question, answer = generator(rng)
        key = problem_key(question)
        problems.setdefault(key, Problem(problem_id=key, question=question, answer=answer))
    return list(problems.values())


def load_generator(spec: str) -> TaskGenerator:
    """Import a task generator named ``module:function``."""
    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise ConfigError(f"a generator is named 'module:function', not {spec!r}")
    try:
        function = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"cannot import generator {spec!r}: {error}") from error
    if not callable(function):
        raise ConfigError(f"{spec!r} is not callable")
    generator: TaskGenerator = function
    return generator
