r"""Where problems come from, by name: a JSONL file, the paper's recipes (DAPO, AIME), or reasoning-gym.

``--data`` takes any of these:

- ``FILE.jsonl``: one JSON object per line with a question and (usually) an answer field.
- ``dapo:FILE.jsonl``: DAPO-Math-17k style (the paper's training set, e.g. its 100-problem "DAPO-100" subset):
  the problem in ``prompt`` (text, or chat messages whose last user turn is the problem) or ``problem``; the
  answer in ``reward_model.ground_truth``, ``answer``, or a ``solution`` whose last ``\boxed{}`` holds it.
- ``aime:FILE.jsonl``: AIME-style test sets (``problem``/``question`` and an integer ``answer``, any case);
  answers are compared as integers, so ``"033"`` and ``33`` agree.
- ``reasoning-gym:NAME?size=&seed=``: generated offline by reasoning-gym, scored by its own checks.

The recipes only read local files: fetch the data sets yourself (they are not shipped).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from debrief.learner.datasets import Problem, load_jsonl, problem_key
from debrief.learner.errors import ConfigError
from debrief.learner.gym_tasks import gym_problems, is_gym_source
from debrief.learner.verifiers import Verifier, final_answer, make_verifier

DAPO_PREFIX = "dapo:"
AIME_PREFIX = "aime:"


@dataclass(frozen=True, kw_only=True)
class Source:
    """Problems, and the verifier the source scores with (``None``: the caller's choice)."""

    problems: list[Problem]
    verifier: Verifier | None = None
    verifier_name: str | None = None
    """The verifier spec that fits the source (``numeric`` for AIME), when it is a plain one."""


def _records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{str(path)!r} line {number} is not JSON: {error}") from error
        if not isinstance(record, dict):
            raise ConfigError(f"{str(path)!r} line {number} is not a JSON object")
        records.append((number, record))
    return records


def _lower(record: dict[str, Any]) -> dict[str, Any]:
    return {str(key).lower(): value for key, value in record.items()}


def _unique(problems: Sequence[Problem], path: Path) -> list[Problem]:
    seen: set[str] = set()
    for problem in problems:
        if problem.problem_id in seen:
            raise ConfigError(f"{str(path)!r} repeats problem id {problem.problem_id!r}")
        seen.add(problem.problem_id)
    return list(problems)


def _dapo_question(record: dict[str, Any]) -> str | None:
    prompt = record.get("prompt", record.get("problem", record.get("question")))
    if isinstance(prompt, list):
        turns = [turn for turn in prompt if isinstance(turn, dict) and turn.get("role", "user") == "user"]
        prompt = turns[-1].get("content") if turns else None
    return prompt if isinstance(prompt, str) and prompt.strip() else None


def _dapo_answer(record: dict[str, Any]) -> str | None:
    reward_model = record.get("reward_model")
    if isinstance(reward_model, dict) and reward_model.get("ground_truth") is not None:
        return str(reward_model["ground_truth"])
    if record.get("answer") is not None:
        return str(record["answer"])
    solution = record.get("solution")
    if isinstance(solution, str) and "\\boxed" in solution:
        return final_answer(solution)
    return None


def load_dapo_jsonl(path: str | Path) -> list[Problem]:
    """DAPO-style problems (see the module docstring); every problem must have an answer."""
    path = Path(path)
    problems = []
    for number, record in _records(path):
        question, answer = _dapo_question(record), _dapo_answer(record)
        if question is None or answer is None:
            raise ConfigError(
                f"{str(path)!r} line {number} is not DAPO-style: it needs a prompt (or problem) and an answer "
                "(reward_model.ground_truth, answer, or a solution with \\boxed{})"
            )
        extra = record.get("extra_info")
        index = extra.get("index") if isinstance(extra, dict) else None
        key = record.get("id", index)
        problems.append(
            Problem(
                problem_id=str(key) if key is not None else problem_key(question),
                question=question,
                answer=answer,
                metadata={"source": record.get("data_source", "dapo")},
            )
        )
    return _unique(problems, path)


def load_aime_jsonl(path: str | Path) -> list[Problem]:
    """AIME-style problems (see the module docstring): integer answers, leading zeros dropped."""
    path = Path(path)
    problems = []
    for number, raw in _records(path):
        record = _lower(raw)
        question = record.get("problem", record.get("question"))
        answer = record.get("answer")
        if not isinstance(question, str) or answer is None:
            raise ConfigError(f"{str(path)!r} line {number} is not AIME-style: it needs a problem and an answer")
        text = final_answer(str(answer)) if "\\boxed" in str(answer) else str(answer).strip()
        try:
            value = str(int(text))
        except ValueError as error:
            raise ConfigError(f"{str(path)!r} line {number}: an AIME answer is an integer, not {answer!r}") from error
        key = record.get("id", record.get("url"))
        problems.append(
            Problem(
                problem_id=str(key) if key is not None else problem_key(question),
                question=question,
                answer=value,
                metadata={name: item for name, item in record.items() if name in ("year", "url")},
            )
        )
    return _unique(problems, path)


def load_source(source: str, *, require_answer: bool = False, **jsonl: Any) -> Source:
    """The problems ``source`` names: a reasoning-gym spec, ``dapo:``/``aime:`` files, or a plain JSONL file.

    ``jsonl`` goes to :func:`~debrief.learner.datasets.load_jsonl` for plain files (field names).

    Raises:
        ConfigError: the source cannot be read, or a record does not fit its format.
    """
    if is_gym_source(source):
        problems, verifier = gym_problems(source)
        return Source(problems=problems, verifier=verifier)
    for prefix, loader, verifier_name in (
        (DAPO_PREFIX, load_dapo_jsonl, "math"),
        (AIME_PREFIX, load_aime_jsonl, "numeric"),
    ):
        if source.startswith(prefix):
            path = Path(source[len(prefix) :]).expanduser()
            if not path.is_file():
                raise ConfigError(f"{str(path)!r} is not a file")
            return Source(problems=loader(path), verifier_name=verifier_name)
    path = Path(source).expanduser()
    if not path.is_file():
        raise ConfigError(f"{source!r} is not a file (nor reasoning-gym:NAME, dapo:FILE or aime:FILE)")
    return Source(problems=load_jsonl(path, require_answer=require_answer, **jsonl))


def source_verifier(source: Source, spec: str | None) -> Verifier:
    """The verifier to score ``source`` with: ``spec`` when given, else the source's own, else ``math``."""
    if spec is not None:
        return make_verifier(spec)
    if source.verifier is not None:
        return source.verifier
    return make_verifier(source.verifier_name or "math")


def is_named_source(source: str) -> bool:
    """Whether ``source`` names a recipe or generator (``dapo:``, ``aime:``, ``reasoning-gym:``), not a plain file."""
    return is_gym_source(source) or source.startswith((DAPO_PREFIX, AIME_PREFIX))


def data_verifier(spec: str | None, data: str | None) -> Verifier:
    """The verifier of a run: ``spec`` when given, else the named source's own (``data``), else ``math``."""
    if spec is None and data is not None and is_named_source(data):
        return source_verifier(load_source(data), None)
    return make_verifier(spec or "math")
