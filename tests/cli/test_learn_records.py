"""`debrief learn` keeps a run record like the server's runs: list_learning_runs and the daily cap see it."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest
from mcp import Client

from debrief.server.embedding.embedder import make_embedder
from debrief.server.mcp.app import create_server
from debrief.server.settings import PriceSettings, RunSettings, Settings
from tests.learner.fake_openai import FakeOpenAI, serve
from tests.support.learn_command import learn_command, scripted
from tests.support.mcp_calls import call, call_error
from tests.support.runs import ScriptedProvider, problems

pytestmark = pytest.mark.anyio

PRICES = PriceSettings(input_per_million=1.0, output_per_million=1.0)


async def test_a_command_line_run_is_listed_by_the_server_and_counts_toward_its_daily_cap(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {
        **os.environ,
        "DEBRIEF_DATA_DIR": str(data),
        "DEBRIEF_CHROMA_MODE": "in-process",
        "DEBRIEF_PRICE_INPUT_PER_MILLION": "1.0",
        "DEBRIEF_PRICE_OUTPUT_PER_MILLION": "1.0",
        "OPENAI_API_KEY": "test-key-not-recorded",
    }
    async with serve(FakeOpenAI(reply=scripted)) as base_url:
        with anyio.fail_after(240):
            done = await anyio.run_process(
                learn_command(base_url, "--api-key", "sk-secret-flag"),
                env=env,
                check=False,
                cwd=Path(__file__).parents[2],
            )
    assert done.returncode == 0, done.stderr.decode()

    settings = Settings(data_dir=data, chroma_mode="in-process", prices=PRICES)
    async with Client(
        create_server(settings, embedder=make_embedder(settings), provider=ScriptedProvider(settings))
    ) as client:
        listed = (await call(client, "list_learning_runs", namespace="math"))["runs"]
        assert len(listed) == 1
        run = listed[0]
        assert run["status"] == "succeeded" and run["stop_reason"] == "finished"
        assert run["request"] is None
        assert run["command"].startswith("debrief learn --namespace math --generator tests.learner.scripted:addition")
        assert "sk-secret-flag" not in run["command"] and "api-key" not in run["command"]
        assert run["owner_pid"] is None
        assert run["version_before"] == 0 and run["version_after"] >= 1
        assert len(run["steps"]) == 1
        spent = run["progress"]["cost_usd"]
        assert spent > 0
        message = await call_error(client, "resume_learning_run", run_id=run["run_id"])
        assert "'succeeded'" in message

    # The same data dir under a daily cap the command-line run already spent: the server refuses the next run.
    capped = Settings(
        data_dir=data, chroma_mode="in-process", prices=PRICES, runs=RunSettings(daily_budget_usd=spent / 2)
    )
    async with Client(
        create_server(capped, embedder=make_embedder(capped), provider=ScriptedProvider(capped))
    ) as client:
        message = await call_error(
            client, "start_learning_run", namespace="math", problems=problems(2), verifier="exact"
        )
        assert "budget" in message
