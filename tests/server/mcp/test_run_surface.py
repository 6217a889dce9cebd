"""What a run record shows a user about a model that scored 0: a few of its failed replies."""

from __future__ import annotations

from pathlib import Path

import pytest

from debrief.learner.backend import ChatRequest
from debrief.server.embedding.embedder import Embedder
from tests.support.runs import ScriptedProvider, connect, finish, settings_for, start

pytestmark = pytest.mark.anyio
WRONG = "I add the numbers and get minus one.\nAnswer: \\boxed{-1}"


async def test_the_run_record_keeps_a_few_replies_of_failed_attempts(tmp_path: Path, test_embedder: Embedder) -> None:
    def always_wrong(request: ChatRequest, choice: int) -> str:
        return WRONG

    settings = settings_for(tmp_path)
    async with connect(settings, test_embedder, ScriptedProvider(settings, always_wrong)) as client:
        started = await start(client, epochs=1, group_size=4)
        record = await finish(client, started["run_id"])
    groups = [group for step in record["steps"] for group in step["groups"]]
    assert groups and all(group["rewards"] == [0.0] * 4 for group in groups)
    assert all(group["failed_replies"] == [WRONG, WRONG] for group in groups)
