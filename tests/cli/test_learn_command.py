"""`debrief learn` as a user runs it: a real subprocess against a local fake OpenAI-compatible server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from tests.learner.fake_openai import FakeOpenAI, serve
from tests.learner.scripted import LESSON
from tests.support.learn_command import learn_command, scripted

pytestmark = pytest.mark.anyio


async def test_debrief_learn_writes_the_learned_lesson_into_the_store_and_prints_the_step_table(tmp_path: Path) -> None:
    fake = FakeOpenAI(reply=scripted)
    async with serve(fake) as base_url:
        env = {
            **os.environ,
            "DEBRIEF_DATA_DIR": str(tmp_path / "data"),
            "DEBRIEF_CHROMA_MODE": "in-process",
            "OPENAI_API_KEY": "test-key",
        }
        command = learn_command(base_url)
        with anyio.fail_after(240):
            done = await anyio.run_process(command, env=env, check=False, cwd=Path(__file__).parents[2])
    stdout, stderr = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, stderr
    assert "added" in stdout and "mean reward" in stdout
    assert "learning into namespace" in stderr
    listed = subprocess.run(
        [sys.executable, "-m", "debrief.server", "experiences", "list", "-n", "math"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert LESSON in listed.stdout
    assert all(body["model"] == "fake-model" for body in fake.bodies)
    assert any(body.get("n") == 3 for body in fake.bodies)
