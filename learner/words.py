"""The 32-word cap the paper asks of every experience, checked in code rather than only requested."""

from __future__ import annotations

import re

from debrief.learner.fencing import strip_controls
from debrief.learner.screening import lesson_screen_problem

MAX_EXPERIENCE_WORDS = 32
"""An experience is one sentence of at most this many words (the paper's instruction)."""

_WORD = re.compile(r"\S+")


def count_words(text: str) -> int:
    """Number of whitespace-separated words in ``text``."""
    return len(_WORD.findall(text))


def normalize_experience_text(text: str) -> str:
    """Drop control characters and terminal escapes, collapse whitespace: stored text is one clean line."""
    return " ".join(strip_controls(text).split())


def experience_text_problem(text: str, max_words: int = MAX_EXPERIENCE_WORDS) -> str | None:
    """Say what is wrong with ``text`` as an experience, or ``None`` when it is acceptable."""
    clean = normalize_experience_text(text)
    if not clean:
        return "an experience must not be empty"
    words = count_words(clean)
    if words > max_words:
        return f"an experience has at most {max_words} words; this one has {words}: shorten it to one sentence"
    return lesson_screen_problem(clean)
