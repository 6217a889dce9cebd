"""`debrief learn`'s generation flags reach every request the model sees; the step table shows proposal fates."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

from tests.learner.fake_openai import FakeOpenAI, serve
from tests.support.learn_command import learn_command, scripted

pytestmark = pytest.mark.anyio


async def test_generation_flags_reach_the_rollout_and_reflection_requests(tmp_path: Path) -> None:
    fake = FakeOpenAI(reply=scripted)
    env = {
        **os.environ,
        "DEBRIEF_DATA_DIR": str(tmp_path / "data"),
        "DEBRIEF_CHROMA_MODE": "in-process",
        "OPENAI_API_KEY": "test-key",
    }
    flags = ("--max-tokens", "900", "--reflect-max-tokens", "700", "--top-p", "0.8", "--temperature", "0.5")
    async with serve(fake) as base_url:
        with anyio.fail_after(240):
            done = await anyio.run_process(
                learn_command(base_url, *flags, "--placement", "user", "--request-timeout", "30"),
                env=env,
                check=False,
                cwd=Path(__file__).parents[2],
            )
    assert done.returncode == 0, done.stderr.decode()
    rollouts = [body for body in fake.bodies if "seed" in body]  # (the endpoint check sends none)
    reflections = [body for body in fake.bodies if body.get("response_format")]
    assert rollouts and {(b["max_tokens"], b["top_p"], b["temperature"]) for b in rollouts} == {(900, 0.8, 0.5)}
    assert reflections and {body["max_tokens"] for body in reflections} == {700}
    assert "fates" in done.stdout.decode()
