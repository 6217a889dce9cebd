"""A scripted world for evaluation tests: one lesson that raises accuracy and one that lowers it.

The policy's luck depends only on the question, the seed and the choice, never on the prompt: arms sampled with
the same seeds share their random numbers, as a paired evaluation intends.
"""

from __future__ import annotations

import random
import re
import zlib

from debrief.learner.backend import ChatRequest
from debrief.learner.datasets import Problem, generate_problems
from tests.learner.scripted import addition

GOOD = "When adding two-digit numbers, add the ones first and carry into the tens before writing the answer."
BAD = "When adding numbers, estimate by rounding each number to the nearest ten and answer with the estimate."
NEUTRAL = "When a problem names units, keep them in the final answer."

BASE = 0.3
GOOD_GAIN = 0.5
BAD_LOSS = 0.2

_NUMBERS = re.compile(r"What is (\d+) \+ (\d+)\?")


def problems(count: int, seed: int = 0) -> list[Problem]:
    return generate_problems(addition, count, seed=seed)


def chance(system: str) -> float:
    """The chance of a right answer given what the prompt shows."""
    p = BASE + (GOOD_GAIN if GOOD in system else 0.0) - (BAD_LOSS if BAD in system else 0.0)
    return min(1.0, max(0.0, p))


def policy(request: ChatRequest, choice: int) -> str:
    system = request.messages[0].content
    question = request.messages[-1].content
    match = _NUMBERS.search(question)
    assert match is not None, question
    a, b = int(match.group(1)), int(match.group(2))
    rng = random.Random(zlib.crc32(question.encode()) * 7919 + (request.seed or 0) + choice)
    value = a + b if rng.random() < chance(system) else a + b - 10
    return f"I add {a} and {b}.\nAnswer: \\boxed{{{value}}}"
