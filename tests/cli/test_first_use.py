"""The first hour with `debrief learn`, as a user meets it: real subprocesses, a local fake model endpoint."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from debrief.learner import Backends, FunctionBackend, InMemoryLibrary, RunConfig, make_verifier, run_learning
from debrief.server.cli.run_console import nothing_learned
from tests.learner.scripted import addition_problems, policy, reflector
from tests.support.http import serving_app

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).parents[2]
WAIT = 120


@dataclass
class Endpoint:
    """Lists model 'm'; its chat either fails every request with 400 or holds every request until released."""

    hold: bool = False
    chat_started: anyio.Event = field(default_factory=anyio.Event)
    release: anyio.Event = field(default_factory=anyio.Event)
    chats: int = 0

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "m", "object": "model"}]})

    async def chat(self, request: Request) -> Response:
        self.chats += 1
        self.chat_started.set()
        if self.hold:
            await self.release.wait()
        return JSONResponse({"error": {"message": "scripted refusal: context length exceeded"}}, status_code=400)


@asynccontextmanager
async def serve(endpoint: Endpoint) -> AsyncIterator[str]:
    app = Starlette(
        routes=[
            Route("/v1/models", endpoint.models, methods=["GET"]),
            Route("/v1/chat/completions", endpoint.chat, methods=["POST"]),
        ]
    )
    async with serving_app(app) as root:
        try:
            yield f"{root}/v1"
        finally:
            endpoint.release.set()


def environment(tmp_path: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DEBRIEF_", "OPENAI_"))}
    return {**env, "DEBRIEF_DATA_DIR": str(tmp_path / "data"), "DEBRIEF_CHROMA_MODE": "in-process"}


def dataset(tmp_path: Path, questions: list[str]) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"question": q, "answer": "2"}) + "\n" for q in questions), encoding="utf-8")
    return path


def learn(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "debrief.server", "learn", "--verifier", "exact", *arguments]


async def run(command: list[str], env: dict[str, str]) -> tuple[int, str]:
    with anyio.fail_after(WAIT):
        done = await anyio.run_process(command, env=env, check=False, cwd=ROOT)
    return done.returncode, done.stderr.decode()


def closed_port_url() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


async def test_a_wrong_base_url_stops_before_any_work_with_one_line_naming_the_url(tmp_path: Path) -> None:
    url = closed_port_url()
    data = dataset(tmp_path, ["1+1?"])
    code, stderr = await run(
        learn("--data", str(data), "-n", "math", "--base-url", url, "--model", "m"), environment(tmp_path)
    )
    assert code == 1
    assert f"debrief: cannot reach {url}: " in stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "data" / "runs").exists()


async def test_bad_input_is_refused_before_the_model_is_asked_with_one_line_each(tmp_path: Path) -> None:
    url = closed_port_url()  # would fail if anything got as far as the model
    env = environment(tmp_path)
    repeated = dataset(tmp_path, ["1+1?", "2+0?", "1+1?"])
    cases = [
        (learn("--data", str(repeated), "-n", "Bad Name!", "--base-url", url, "--model", "m"), "namespace 'Bad Name!'"),
        (learn("--data", str(tmp_path / "nope.jsonl"), "-n", "math", "--base-url", url), "no such file"),
        (learn("--data", str(repeated), "-n", "math", "--base-url", url, "--model", "m"), "line 3 repeats line 1"),
    ]
    for command, expected in cases:
        code, stderr = await run(command, env)
        assert code == 1, stderr
        assert expected in stderr
        assert stderr.strip().count("\n") == 0, stderr
        assert "cannot reach" not in stderr
    code, stderr = await run(learn("--data", str(repeated), "-n", "math", "--epochs", "0"), env)
    assert code == 2
    assert "argument --epochs: must be at least 1, got 0" in stderr


async def test_a_run_in_which_every_group_failed_is_reported_failed_and_exits_non_zero(tmp_path: Path) -> None:
    endpoint = Endpoint()
    data = dataset(tmp_path, ["1+1?", "0+2?"])
    async with serve(endpoint) as url:
        command = learn("--data", str(data), "-n", "math", "--epochs", "1", "--group-size", "2", "--base-url", url)
        code, stderr = await run([*command, "--model", "m"], environment(tmp_path))
    assert code == 1, stderr
    assert "failed: the groups of all 2 problems failed, nothing was learned" in stderr
    assert "scripted refusal" in stderr
    assert "run run-" in stderr and "started" in stderr
    assert "Traceback" not in stderr
    assert "resume with: debrief learn" in stderr


async def test_ctrl_c_during_a_run_prints_the_exact_resume_command(tmp_path: Path) -> None:
    endpoint = Endpoint(hold=True)
    data = dataset(tmp_path, ["1+1?"])
    async with serve(endpoint) as url:
        command = learn("--data", str(data), "-n", "math", "--epochs", "1", "--base-url", url, "--model", "m")
        with anyio.fail_after(WAIT):
            async with await anyio.open_process(
                command, env=environment(tmp_path), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            ) as process:
                await endpoint.chat_started.wait()
                process.send_signal(signal.SIGINT)
                code = await process.wait()
                assert process.stderr is not None
                stderr = b"".join([chunk async for chunk in process.stderr]).decode()
    assert code == 130, stderr
    started = [line for line in stderr.splitlines() if line.startswith("run run-")]
    assert started, stderr
    run_id = started[0].split()[1]
    expected = f"debrief learn --verifier exact --data {data} -n math --epochs 1 --base-url {url} --model m"
    assert f"interrupted; resume with: {expected} --resume {run_id}" in stderr


async def test_debrief_version_prints_the_installed_version() -> None:
    with anyio.fail_after(WAIT):
        done = await anyio.run_process([sys.executable, "-m", "debrief.server", "--version"], cwd=ROOT, check=False)
    assert done.returncode == 0
    assert re.fullmatch(r"debrief \d+\.\d+\.\d+\S*\n", done.stdout.decode())


async def test_serve_on_a_terminal_says_in_one_line_what_it_is_and_how_to_connect(tmp_path: Path) -> None:
    main_fd, terminal_fd = pty.openpty()
    try:
        with anyio.fail_after(WAIT):
            async with await anyio.open_process(
                [sys.executable, "-m", "debrief.server", "serve"],
                env=environment(tmp_path),
                cwd=ROOT,
                stdin=terminal_fd,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            ) as process:
                assert process.stderr is not None and process.stdout is not None
                first = b""
                async for chunk in process.stderr:
                    first += chunk
                    if b"\n" in first:
                        break
                process.send_signal(signal.SIGINT)
                await process.wait()
                rest = b"".join([chunk async for chunk in process.stderr]).decode()
                stdout = b"".join([chunk async for chunk in process.stdout]).decode()
    finally:
        os.close(main_fd)
        os.close(terminal_fd)
    line = first.decode()
    assert line.count("\n") == 1 and line.startswith("debrief serve speaks MCP on stdio")
    assert "debrief config claude-desktop|cursor|vscode|claude-code" in line
    assert rest == ""
    assert stdout == ""


async def test_the_nothing_learned_line_states_the_facts_the_run_saw() -> None:
    silent = reflector(advantage=lambda request: json.dumps({"analysis": "No clear difference.", "operations": []}))
    config = RunConfig(run_id="quiet", epochs=1, batch_size=8, seed=7, retry_backoff=0.0)
    with anyio.fail_after(WAIT):
        report = await run_learning(
            config,
            backends=Backends(policy=FunctionBackend(policy), reflect=FunctionBackend(silent)),
            library=InMemoryLibrary(),
            problems=addition_problems(8),
            verifier=make_verifier("exact"),
        )
    kept = sum(step.groups_kept for step in report.steps)
    assert kept > 0  # the scripted policy is right 3 times in 10: mixed groups happen
    assert nothing_learned(report) == (
        f"(nothing learned: {kept} of 8 groups had mixed results (the only ones the method learns from); "
        "reflection proposed 0 edits; 0 applied)"
    )
