"""The prompts of every stage. Stable text (instructions, experiences) comes first so prefix caches hit."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from debrief.learner.backend import Message, estimate_tokens
from debrief.learner.operations import Operation
from debrief.learner.rewards import is_success
from debrief.learner.words import MAX_EXPERIENCE_WORDS

DEFAULT_INSTRUCTIONS = (
    "Solve the problem step by step. Finish with the final answer on its own line as \\boxed{answer}."
)

EXPERIENCE_RULES = (
    f"Each experience is one sentence of at most {MAX_EXPERIENCE_WORDS} words. It starts with a few words saying "
    "when it applies, and it is about strategy or a decision point, not a specific calculation. Do not repeat "
    "what an existing experience already says."
)


@dataclass(frozen=True, kw_only=True)
class Grade:
    """How an attempt was graded, as reflection is shown it."""

    correct: bool
    score: float | None = None
    """A reward between 0 and 1, shown when it says more than correct/incorrect."""
    feedback: str | None = None
    """What a user or checker said about the attempt."""

    @classmethod
    def of_reward(cls, reward: float, *, feedback: str | None = None) -> Grade:
        """A success (``rewards.is_success``) counts as correct; fractional rewards are shown as scores."""
        return cls(correct=is_success(reward), score=None if reward in (0.0, 1.0) else reward, feedback=feedback)


def cut_to_budget(text: str, token_budget: int) -> str:
    """``text`` cut in the middle to about ``token_budget`` tokens, the cut marked, or unchanged if it fits."""
    if estimate_tokens(text) <= token_budget:
        return text
    keep = max(token_budget * 4, 40)
    head, tail = text[: keep * 2 // 3], text[-(keep // 3) :]
    return f"{head}\n[... {len(text) - len(head) - len(tail)} characters cut ...]\n{tail}"


def rollout_messages(instructions: str, experiences: str, question: str) -> tuple[Message, ...]:
    """The policy's prompt: instructions and experiences (stable) first, the problem last."""
    system = instructions
    if experiences:
        system += f"\n\nExperiences from earlier problems (use those that apply):\n{experiences}"
    return (Message(role="system", content=system), Message(role="user", content=question))


def _problem_block(question: str, answer: str | None) -> str:
    block = f"Problem:\n{question}"
    if answer is not None:
        block += f"\n\nGround truth answer:\n{answer}"
    return block


def summary_messages(
    *, experiences: str, question: str, answer: str | None, attempt: str, grade: Grade | None
) -> tuple[Message, ...]:
    """Ask for a summary of one attempt: its steps, the experiences it used, where it went wrong."""
    library = experiences or "(none)"
    if grade is None:
        verdict = "The attempt is not graded: judge for yourself whether its reasoning and answer hold up."
    else:
        score = "" if grade.score is None else f" (score {grade.score:g} on a scale from 0 to 1)"
        verdict = f"The attempt was graded {'CORRECT' if grade.correct else 'INCORRECT'}{score}."
        if grade.feedback:
            verdict += f"\n\nFeedback on the attempt:\n{grade.feedback}"
    return (
        Message(
            role="system",
            content="You review attempts at problems so that lessons can be learned from them.\n\n"
            f"Experiences the attempt was shown:\n{library}",
        ),
        Message(
            role="user",
            content=f"{_problem_block(question, answer)}\n\nAttempt:\n{attempt}\n\n{verdict}\n\n"
            "Summarize the attempt in a few sentences: the steps it took, which experiences (by id) it used, "
            "and where it took a detour or went wrong, if it did.",
        ),
    )


def advantage_messages(
    *,
    experiences: str,
    question: str,
    answer: str | None,
    summaries: Sequence[tuple[str, Grade | None]],
    max_operations: int,
) -> tuple[Message, ...]:
    """Ask what separated good attempts from bad ones, and for at most ``max_operations`` library edits."""
    graded = any(grade is not None for _, grade in summaries)
    lines = []
    for number, (summary, grade) in enumerate(summaries, start=1):
        label = ""
        if grade is not None:
            score = "" if grade.score is None else f", score {grade.score:g}"
            label = f" ({'correct' if grade.correct else 'incorrect'}{score})"
        feedback = f"\nFeedback on it: {grade.feedback}" if grade is not None and grade.feedback else ""
        lines.append(f"Attempt {number}{label}:\n{summary}{feedback}")
    if len(summaries) == 1:
        task = "Decide what lesson this single attempt teaches"
    elif graded:
        task = "Explain what separated the correct attempts from the incorrect ones"
    else:
        task = "The attempts are not graded. Judge which of them are better and why"
    return (
        Message(
            role="system",
            content="You maintain a library of experiences that helps solve future problems.\n\n"
            f"Current library:\n{experiences or '(empty)'}\n\n{EXPERIENCE_RULES}",
        ),
        Message(
            role="user",
            content=f"{_problem_block(question, answer)}\n\n" + "\n\n".join(lines) + f"\n\n{task}. Then propose at "
            f"most {max_operations} operation(s) on the library: add a new experience, modify one by its id "
            "(G0, G1, ...), or delete one that proved wrong. Propose none if there is nothing general to learn.",
        ),
    )


def consolidation_messages(*, experiences: str, proposals: Sequence[Operation]) -> tuple[Message, ...]:
    """Ask for the final plan of one batch from all its proposals and the library."""
    listed = "\n".join(
        f"P{number}: {json.dumps(operation.model_dump(), ensure_ascii=False)}"
        for number, operation in enumerate(proposals, start=1)
    )
    return (
        Message(
            role="system",
            content="You curate a library of experiences that helps solve future problems.\n\n"
            f"Current library:\n{experiences or '(empty)'}\n\n{EXPERIENCE_RULES}",
        ),
        Message(
            role="user",
            content=f"Proposed operations from this batch:\n{listed}\n\nReturn the final list of operations to "
            "apply: add, modify (by id), merge (two or more ids into one sentence) or delete (by id). Experiences "
            "you do not mention are kept. Merge duplicates and near-duplicates (also between proposals and the "
            "library), resolve contradictions, and drop proposals that add nothing.",
        ),
    )


def shorten_objection(texts: Sequence[str]) -> str:
    """The message that sends over-long experiences back once."""
    listed = "\n".join(f"- {text}" for text in texts)
    return (
        f"These experiences are longer than {MAX_EXPERIENCE_WORDS} words:\n{listed}\n"
        f"Reply again with the same JSON object, every experience shortened to one sentence of at most "
        f"{MAX_EXPERIENCE_WORDS} words."
    )


def judge_messages(*, question: str, answer: str | None, response: str) -> tuple[Message, ...]:
    """Ask the judge whether a response answers the problem correctly."""
    reference = "" if answer is None else f"\n\nReference answer:\n{answer}"
    return (
        Message(role="system", content="You grade answers to problems strictly and fairly."),
        Message(
            role="user",
            content=f"Problem:\n{question}{reference}\n\nResponse:\n{response}\n\n"
            "Is the response's final answer correct?",
        ),
    )
