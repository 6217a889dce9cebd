"""`debrief learn --val-fraction` as a user runs it: the gate's verdicts on stderr, the kept library in the store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from debrief.learner.backend import ChatRequest, Message
from tests.learner.fake_openai import FakeOpenAI, serve
from tests.learner.two_lessons import BAD, GOOD, policy

pytestmark = pytest.mark.anyio


def scripted(body: dict[str, Any], choice: int) -> str:
    """The two-lesson world over HTTP: every group proposes both lessons, consolidation keeps the proposals."""
    schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("name") or ""
    if schema == "AttemptSummary":
        return json.dumps({"summary": "Added the numbers column by column."})
    if schema == "GroupAdvantage":
        operations = [{"op": "add", "text": text} for text in (BAD, GOOD)]
        return json.dumps({"analysis": "Some attempts carried.", "operations": operations})
    if schema == "ConsolidationPlan":
        return json.dumps({"reasoning": "Keep the proposals as they are.", "operations": []})
    if "What is" not in body["messages"][-1]["content"]:
        return "OK"  # the provider's endpoint check
    messages = tuple(Message(role=item["role"], content=item["content"]) for item in body["messages"])
    request = ChatRequest(role="policy", stage="rollout", messages=messages, temperature=0.7, seed=body.get("seed"))
    return policy(request, choice)


async def test_debrief_learn_with_a_validation_fraction_keeps_the_good_lesson_and_says_why_it_refused_the_bad(
    tmp_path: Path,
) -> None:
    env = {
        **os.environ,
        "DEBRIEF_DATA_DIR": str(tmp_path / "data"),
        "DEBRIEF_CHROMA_MODE": "in-process",
        "OPENAI_API_KEY": "test-key",
    }
    root = Path(__file__).parents[2]
    async with serve(FakeOpenAI(reply=scripted)) as base_url:
        command = [
            sys.executable,
            "-m",
            "debrief.server",
            "learn",
            "--generator",
            "tests.learner.scripted:addition",
            "--count",
            "20",
            "--verifier",
            "exact",
            "--namespace",
            "math",
            "--epochs",
            "1",
            "--batch-size",
            "12",
            "--group-size",
            "4",
            "--max-operations",
            "2",
            "--val-fraction",
            "0.4",
            "--val-samples",
            "4",
            "--base-url",
            base_url,
            "--model",
            "fake-model",
        ]
        with anyio.fail_after(240):
            done = await anyio.run_process(command, env=env, check=False, cwd=root)
    stdout, stderr = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, stderr
    assert "rejected by validation" in stderr and BAD in stderr
    assert "kept the last library" in stderr
    listed = subprocess.run(
        [sys.executable, "-m", "debrief.server", "experiences", "list", "-n", "math"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert [line.split("\t")[1] for line in listed.stdout.splitlines()] == [GOOD]
    assert "rejected" in stdout and "validated" in stdout and "1/2 kept" in stdout


def arithmetic(body: dict[str, Any], choice: int) -> str:
    """reasoning-gym's basic_arithmetic: right on choice 0, off by one on the others; reflection learns LESSON."""
    schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("name") or ""
    if schema == "AttemptSummary":
        return json.dumps({"summary": "Worked left to right."})
    if schema == "GroupAdvantage":
        return json.dumps({"analysis": "Order of operations.", "operations": [{"op": "add", "text": GOOD}]})
    if schema == "ConsolidationPlan":
        return json.dumps({"reasoning": "Keep it.", "operations": []})
    question = body["messages"][-1]["content"]
    if "Calculate" not in question:
        return "OK"  # the provider's endpoint check
    expression = question.split("Calculate", 1)[1].strip().rstrip(".")
    assert set(expression) <= set("0123456789+-*/() ."), expression
    value = round(eval(expression))  # a scripted test model: digits and operators only, checked above
    return f"Answer: {value if choice == 0 else value + 1}"


async def test_debrief_learn_takes_a_reasoning_gym_source_and_scores_with_its_checks(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DEBRIEF_DATA_DIR": str(tmp_path / "data"),
        "DEBRIEF_CHROMA_MODE": "in-process",
        "OPENAI_API_KEY": "test-key",
    }
    async with serve(FakeOpenAI(reply=arithmetic)) as base_url:
        command = [
            sys.executable,
            "-m",
            "debrief.server",
            "learn",
            "--data",
            "reasoning-gym:basic_arithmetic?size=6&seed=1&max_digits=2",
            "--namespace",
            "gym",
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
        ]
        with anyio.fail_after(240):
            done = await anyio.run_process(command, env=env, check=False, cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr.decode()
    # Mixed groups (one right attempt of three) were reflected on: the reasoning-gym checks scored them.
    assert "6/6" in done.stdout.decode()
    listed = subprocess.run(
        [sys.executable, "-m", "debrief.server", "experiences", "list", "-n", "gym"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert GOOD in listed.stdout
