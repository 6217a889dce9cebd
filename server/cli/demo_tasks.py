"""Small verifiable word problems for the demo, and a checker that reads the final number from a reply."""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

ANSWER_INSTRUCTION = "Answer with a number."
"""Appended to each question. Longer format instructions ("step by step", "finish with 'Answer: n'") made
SmolLM2-135M ramble; with this one its one-step sums went from 1/12 to 6/12 right (temperature 0.7)."""

MAX_TASKS = 2_000
"""Most problems one call may ask for; the templates make several times as many distinct ones."""

_NAMES = ("Tom", "Ana", "Sam", "Mia", "Leo", "Zoe", "Ben", "Eva", "Max", "Ivy", "Raj", "Kim")
_ITEMS = ("apples", "pencils", "stickers", "marbles", "cookies", "books", "shells", "cards")


@dataclass(frozen=True, kw_only=True)
class DemoTask:
    """One word problem with its integer answer."""

    problem_id: str
    question: str
    answer: str


@dataclass(frozen=True, kw_only=True)
class DemoTaskSplit:
    """Training problems and held-out problems; no question appears in both."""

    train: tuple[DemoTask, ...]
    heldout: tuple[DemoTask, ...]


def _gets_more(rng: random.Random) -> tuple[str, int]:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    have, more = rng.randint(2, 9), rng.randint(2, 9)
    question = f"{name} has {have} {item}. {name} gets {more} more {item}. How many {item} does {name} have now?"
    return question, have + more


def _gives_away(rng: random.Random) -> tuple[str, int]:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    have = rng.randint(3, 9)
    given = rng.randint(1, have - 1)
    question = f"{name} has {have} {item} and gives {given} of them to a friend. How many {item} does {name} have left?"
    return question, have - given


# SmolLM2-135M at temperature 0.7 got three-term sums and small products right almost never (0/24), and even
# one-step sums and differences only 3-50 % of the time, varying run to run (7/40 over 10 problems x 4).
# One-step problems it is: enough of its groups of 4 are mixed, the groups the method learns from.
_TEMPLATES: tuple[Callable[[random.Random], tuple[str, int]], ...] = (_gets_more, _gets_more, _gives_away)


def make_task(rng: random.Random) -> tuple[str, str]:
    """One ``(question, answer)`` pair drawn from ``rng`` (the shape of a learner task generator)."""
    question, answer = rng.choice(_TEMPLATES)(rng)
    return f"{question} {ANSWER_INSTRUCTION}", str(answer)


def _problem_id(question: str) -> str:
    return "demo-" + hashlib.sha256(question.encode()).hexdigest()[:12]


def generate_tasks(seed: int, n_train: int, n_heldout: int) -> DemoTaskSplit:
    """``n_train`` training and ``n_heldout`` held-out problems, the same ones for the same seed.

    Raises:
        ValueError: a count is negative, or they sum to more than ``MAX_TASKS``.
    """
    if n_train < 0 or n_heldout < 0 or n_train + n_heldout > MAX_TASKS:
        raise ValueError(
            f"counts must be >= 0 and sum to at most {MAX_TASKS!r}, got n_train={n_train!r}, n_heldout={n_heldout!r}"
        )
    rng = random.Random(seed)
    tasks: dict[str, DemoTask] = {}
    wanted = n_train + n_heldout
    for _ in range(100 * wanted + 100):
        if len(tasks) == wanted:
            break
        question, answer = make_task(rng)
        tasks.setdefault(question, DemoTask(problem_id=_problem_id(question), question=question, answer=answer))
    else:
        if len(tasks) < wanted:
            raise ValueError(f"only {len(tasks)!r} distinct problems could be made of the {wanted!r} asked for")
    ordered = tuple(tasks.values())
    return DemoTaskSplit(train=ordered[:n_train], heldout=ordered[n_train:])


_NUMBER = r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_ANY_NUMBER = re.compile(rf"(?<![\w.]){_NUMBER}")
_BOXED = re.compile(rf"\\boxed\{{\s*\$?\s*({_NUMBER})\s*\}}")
_HASHES = re.compile(rf"####\s*\$?\s*({_NUMBER})")
_ANSWER_IS = re.compile(rf"answer\s*(?:is|:|=)?\s*[:*$\s]*({_NUMBER})", re.IGNORECASE)


def _normalize(number: str) -> str | None:
    try:
        value = Decimal(number.replace(",", ""))
    except InvalidOperation:
        return None
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def extract_answer(reply: str) -> str | None:
    r"""The final number of a reply, normalized (``"1,200.0"`` -> ``"1200"``), or None if it has none.

    Read from the last ``\boxed{}``, else the last ``#### n``, else the last ``Answer: n`` (or "answer is n"),
    else the last number anywhere.
    """
    for pattern in (_BOXED, _HASHES, _ANSWER_IS):
        found = pattern.findall(reply)
        if found:
            return _normalize(found[-1])
    numbers = _ANY_NUMBER.findall(reply)
    return _normalize(numbers[-1]) if numbers else None


def check_answer(reply: str, answer: str) -> bool:
    """Whether the final number of ``reply`` equals ``answer`` exactly (``"12.0"`` equals ``"12"``)."""
    expected = _normalize(answer.strip())
    return expected is not None and extract_answer(reply) == expected
