"""A scripted world with two lessons: one raises the policy's accuracy, the other lowers it.

The reflector proposes both, so whatever keeps, rejects or retires lessons has something real to tell apart.
"""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Callable

from debrief.learner.backend import ChatRequest
from tests.learner.scripted import default_judge, default_summary, library_text, reply

GOOD = "When adding two-digit numbers, add the ones first and carry into the tens before writing the answer."
BAD = "When adding two-digit numbers, skip the carry because it rarely changes the final answer."
RIGHT_PLAIN = 0.5
RIGHT_WITH_GOOD = 0.9
RIGHT_WITH_BAD = 0.1

_NUMBERS = re.compile(r"What is (\d+) \+ (\d+)\?")


def chance(shown: str) -> float:
    """The policy's chance of being right given the experiences it was shown."""
    chance = RIGHT_PLAIN
    if GOOD in shown:
        chance += RIGHT_WITH_GOOD - RIGHT_PLAIN
    if BAD in shown:
        chance -= RIGHT_PLAIN - RIGHT_WITH_BAD
    return min(max(chance, 0.0), 1.0)


def policy(request: ChatRequest, choice: int) -> str:
    """Right with the chance above; deterministic per question, seed and choice."""
    # Wherever the experiences are placed (system prompt or the user turn), they count; the question seeds.
    shown = " ".join(message.content for message in request.messages)
    match = _NUMBERS.search(request.messages[-1].content)
    assert match is not None, request.messages[-1].content
    a, b = int(match.group(1)), int(match.group(2))
    rng = random.Random(zlib.crc32(match.group(0).encode()) * 7919 + (request.seed or 0) + choice)
    value = a + b if rng.random() < chance(shown) else a + b - 10
    return f"I add {a} and {b}.\nAnswer: \\boxed{{{value}}}"


def proposes_both(
    order: tuple[str, ...] = (BAD, GOOD), *, one_at_a_time: bool = False
) -> Callable[[ChatRequest, int], str]:
    """A reflector whose groups propose every lesson of ``order`` not yet in the library, in that order.

    ``one_at_a_time``: only the first missing one, so that each step adds one lesson.
    """

    def missing(request: ChatRequest) -> list[dict[str, str]]:
        return [{"op": "add", "text": text} for text in order if text not in library_text(request)]

    def answer(request: ChatRequest, choice: int) -> str:
        if request.stage == "summary":
            return default_summary(request)
        if request.stage == "judge":
            return default_judge(request)
        if request.stage == "advantage":
            return reply(
                {
                    "analysis": "Some attempts carried, some did not.",
                    "operations": missing(request)[: 1 if one_at_a_time else None],
                }
            )
        # Proposals apply unless consolidation drops or merges them (default-keep): it changes nothing here.
        return reply({"reasoning": "Both lessons were proposed; keep them as proposed.", "operations": []})

    return answer
