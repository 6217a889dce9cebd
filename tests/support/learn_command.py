"""`debrief learn` in tests: a scripted OpenAI-compatible model and the command that runs against it."""

from __future__ import annotations

import json
import sys
from typing import Any

from tests.learner.scripted import LESSON


def scripted(body: dict[str, Any], choice: int) -> str:
    """The fake model's reply: right on choice 0, off by one otherwise; reflections that learn LESSON."""
    schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("name") or ""
    if schema == "AttemptSummary":
        return json.dumps({"summary": "Added the numbers column by column."})
    if schema == "GroupAdvantage":
        return json.dumps({"analysis": "The right attempts carried.", "operations": [{"op": "add", "text": LESSON}]})
    if schema == "ConsolidationPlan":
        return json.dumps({"reasoning": "One lesson.", "operations": [{"op": "add", "text": LESSON}]})
    question = body["messages"][-1]["content"]
    numbers = [int(token) for token in question.replace("?", " ").split() if token.isdigit()]
    total = sum(numbers)
    return f"Answer: \\boxed{{{total if choice == 0 else total + 1}}}"


def learn_command(base_url: str, *extra: str) -> list[str]:
    """`debrief learn` on six generated additions against the fake model at ``base_url``."""
    return [
        sys.executable,
        "-m",
        "debrief.server",
        "learn",
        "--generator",
        "tests.learner.scripted:addition",
        "--count",
        "6",
        "--verifier",
        "exact",
        "--namespace",
        "math",
        "--epochs",
        "1",
        "--batch-size",
        "6",
        "--group-size",
        "3",
        "--base-url",
        base_url,
        "--model",
        "fake-model",
        *extra,
    ]
