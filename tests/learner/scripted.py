"""A scripted world for learner tests: addition problems, a policy that improves once it reads a lesson,
and a reflector that proposes that lesson."""

from __future__ import annotations

import json
import random
import re
import zlib
from collections.abc import Callable
from typing import Any

from debrief.learner.backend import ChatRequest
from debrief.learner.datasets import Problem, generate_problems

LESSON = "When adding two-digit numbers, add the ones first and carry into the tens before writing the answer."
RIGHT_WITH_LESSON = 0.9
RIGHT_WITHOUT_LESSON = 0.3

_NUMBERS = re.compile(r"What is (\d+) \+ (\d+)\?")


def addition(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    return f"What is {a} + {b}?", str(a + b)


def addition_problems(count: int, seed: int = 0) -> list[Problem]:
    return generate_problems(addition, count, seed=seed)


def question_of(request: ChatRequest) -> str:
    return request.messages[-1].content


def policy(request: ChatRequest, choice: int) -> str:
    """Right with probability 0.9 when the lesson is in the prompt, else 0.3; deterministic per request."""
    shown = "\n".join(message.content for message in request.messages)
    question = question_of(request)
    match = _NUMBERS.search(question)
    assert match is not None, question
    a, b = int(match.group(1)), int(match.group(2))
    rng = random.Random(zlib.crc32(question.encode()) * 7919 + (request.seed or 0) + choice)
    p = RIGHT_WITH_LESSON if LESSON in shown else RIGHT_WITHOUT_LESSON
    value = a + b if rng.random() < p else a + b - 10
    return f"I add {a} and {b}.\nAnswer: \\boxed{{{value}}}"


def reply(payload: dict[str, Any]) -> str:
    return json.dumps(payload)


def library_text(request: ChatRequest) -> str:
    return request.messages[0].content


def default_summary(request: ChatRequest) -> str:
    graded = "CORRECT" if "graded CORRECT" in request.messages[-1].content else "INCORRECT or ungraded"
    return reply({"summary": f"Added column by column; {graded}."})


def default_advantage(request: ChatRequest) -> str:
    operations = [] if LESSON in library_text(request) else [{"op": "add", "text": LESSON}]
    return reply({"analysis": "The correct attempts carried.", "operations": operations})


_PROPOSAL = re.compile(r"^(P\d+): (\{.*\})$", re.MULTILINE)


def proposals_of(request: ChatRequest) -> dict[str, dict[str, Any]]:
    """The proposals a consolidation request lists, by label (P1, P2, ...)."""
    return {label: json.loads(body) for label, body in _PROPOSAL.findall(request.messages[-1].content)}


def default_consolidation(request: ChatRequest) -> str:
    """Keeps every proposal (the default) except those the library already says: dropped with a reason."""
    library = library_text(request)
    decisions = [
        {"proposal": label, "decision": "drop", "reason": "the library already says this"}
        for label, operation in proposals_of(request).items()
        if operation.get("text") and operation["text"] in library
    ]
    return reply({"reasoning": "Kept new lessons, dropped repeats.", "decisions": decisions, "operations": []})


def default_judge(request: ChatRequest) -> str:
    text = request.messages[-1].content
    match = _NUMBERS.search(text)
    boxed = re.search(r"\\boxed\{(-?\d+)\}", text)
    right = match is not None and boxed is not None and int(boxed.group(1)) == int(match[1]) + int(match[2])
    return reply({"reasoning": "checked the sum", "verdict": "correct" if right else "incorrect"})


Handler = Callable[[ChatRequest], str]


def reflector(
    *,
    summary: Handler = default_summary,
    advantage: Handler = default_advantage,
    consolidation: Handler = default_consolidation,
    judge: Handler = default_judge,
) -> Callable[[ChatRequest, int], str]:
    handlers = {"summary": summary, "advantage": advantage, "consolidation": consolidation, "judge": judge}

    def answer(request: ChatRequest, choice: int) -> str:
        return handlers[request.stage](request)

    return answer
