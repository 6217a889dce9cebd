"""`debrief eval` as a user runs it (a subprocess against a local fake OpenAI-compatible server), its tables, and
`debrief runs plot`."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from debrief.learner import Backends, DirectoryCheckpoint, FunctionBackend, InMemoryLibrary, RunConfig, make_verifier
from debrief.learner.backend import ChatRequest, Message
from debrief.learner.controls import evaluate_library
from debrief.learner.run import run_learning
from debrief.server.cli.eval import evaluation_tables
from debrief.server.cli.main import build_parser
from tests.learner import evaluation_world
from tests.learner.evaluation_world import BAD, GOOD, NEUTRAL, problems
from tests.learner.fake_openai import FakeOpenAI, serve
from tests.learner.scripted import addition_problems, policy, reflector

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).parents[2]


def scripted(body: dict[str, Any], choice: int) -> str:
    schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("name") or ""
    if schema == "DirectTips":
        return json.dumps({"tips": [NEUTRAL, "When a sum is asked, check the answer by subtracting once."]})
    if "What is" not in body["messages"][-1]["content"]:
        return "OK"  # the provider's endpoint check
    messages = tuple(Message(role=item["role"], content=item["content"]) for item in body["messages"])
    request = ChatRequest(role="policy", stage="rollout", messages=messages, temperature=0.3, seed=body.get("seed"))
    return evaluation_world.policy(request, choice)


def export(namespace: str, texts: list[str]) -> str:
    return json.dumps(
        {
            "namespace": namespace,
            "version": 1,
            "exported_at": datetime.now(UTC).isoformat(),
            "experiences": [{"experience_id": f"e{index}", "text": text} for index, text in enumerate(texts)],
        }
    )


async def test_debrief_eval_json_reports_paired_deltas_controls_and_per_experience_effects(tmp_path: Path) -> None:
    fake = FakeOpenAI(reply=scripted)
    env = {
        **os.environ,
        "DEBRIEF_DATA_DIR": str(tmp_path / "data"),
        "DEBRIEF_CHROMA_MODE": "in-process",
        "OPENAI_API_KEY": "test-key",
    }
    library_file = tmp_path / "library.json"
    library_file.write_text(export("math", [GOOD, BAD]), encoding="utf-8")
    plot = tmp_path / "eval.png"
    with anyio.fail_after(240):
        imported = await anyio.run_process(
            [sys.executable, "-m", "debrief.server", "experiences", "import", str(library_file)],
            env=env,
            check=False,
            cwd=ROOT,
        )
        assert imported.returncode == 0, imported.stderr.decode()
        async with serve(fake) as base_url:
            done = await anyio.run_process(
                [
                    sys.executable,
                    "-m",
                    "debrief.server",
                    "eval",
                    "--generator",
                    "tests.learner.scripted:addition",
                    "--count",
                    "24",
                    "--verifier",
                    "exact",
                    "--namespace",
                    "math",
                    "--samples",
                    "4",
                    "--control",
                    "random",
                    "--control",
                    "tips",
                    "--per-experience",
                    "--json",
                    "--plot",
                    str(plot),
                    "--base-url",
                    base_url,
                    "--model",
                    "fake-model",
                ],
                env=env,
                check=False,
                cwd=ROOT,
            )
    stdout, stderr = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, stderr
    result = json.loads(stdout)
    # With both lessons the chance is 0.3 + 0.5 - 0.2 = 0.6, without 0.3: the library helps.
    assert result["without"]["mean_at_k"] < result["with"]["mean_at_k"]
    assert set(result["without"]) >= {"mean_at_k", "pass_at_k"} and set(result["with"]) >= {"mean_at_k", "pass_at_k"}
    low, high = result["delta"]["ci95"]
    assert 0 < low <= result["delta"]["mean_at_k"] <= high and result["delta"]["verdict"] == "better"
    assert set(result["controls"]) == {"random", "tips"}
    assert result["controls"]["tips"]["size"] == 2 and "beaten" in result["controls"]["random"]
    assert len(result["controls"]["tips"]["library_minus_control"]["ci95"]) == 2
    effects = result["experiences"]
    assert [effect["text"] for effect in effects] == [GOOD, BAD]
    assert effects[0]["delta_mean"] > 0 and effects[0]["ci95"][0] > 0
    assert effects[1]["delta_mean"] < 0 and effects[1]["ci95"][1] < 0
    assert set(effects[0]) >= {"experience_id", "text", "delta_mean", "ci95"}
    assert result["tokens"]["prompt_tokens"] > 0 and "cost_usd" in result and result["wall_seconds"] > 0
    assert result["temperature"] == 0.3 and result["top_p"] == 0.95
    assert "paired bootstrap" in result["method"]
    assert "per-experience effects: at most" in stderr
    rollouts = [
        body for body in fake.bodies if "What is" in body["messages"][-1]["content"] and not body.get("response_format")
    ]
    assert len(rollouts) >= 2 * 24
    assert all(body["temperature"] == 0.3 and body["top_p"] == 0.95 for body in rollouts)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_the_tables_say_whether_the_library_helps_and_which_controls_it_beats() -> None:
    library = InMemoryLibrary()
    library.add_text(GOOD)
    with anyio.fail_after(60):
        result = await evaluate_library(
            problems(20),
            library,
            backends=Backends(policy=FunctionBackend(evaluation_world.policy)),
            verifier=make_verifier("exact"),
            controls=["random"],
            per_experience=True,
        )
    lines = [item for item in evaluation_tables(result, "math") if isinstance(item, str)]
    assert any(line.startswith("The library helps: Mean@4") and "95% CI" in line for line in lines)
    assert any(line.startswith("It beats the random control") for line in lines)
    assert any(line.startswith("Per experience: 1 help") and "estimated before" in line for line in lines)


async def test_runs_plot_draws_a_learning_curve_from_a_command_line_run(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    run_id = "run-abc123"
    config = RunConfig(run_id=run_id, epochs=2, batch_size=4, group_size=3)
    backends = Backends(policy=FunctionBackend(policy), reflect=FunctionBackend(reflector()))
    with anyio.fail_after(60):
        await run_learning(
            config,
            backends=backends,
            library=InMemoryLibrary(),
            problems=addition_problems(4),
            verifier=make_verifier("exact"),
            checkpoint=DirectoryCheckpoint(data_dir / "runs" / run_id / "checkpoint"),
        )
    output = tmp_path / "curve.png"
    args = build_parser().parse_args(["runs", "plot", run_id, "--data-dir", str(data_dir), "-o", str(output)])
    assert await anyio.to_thread.run_sync(args.handler, args) == 0
    assert output.read_bytes()[:4] == b"\x89PNG"
