"""Run records of runs this process drives itself (`debrief learn`): begun, resumed, finished, seen by the server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from debrief.server.embedding.embedder import Embedder
from debrief.server.errors import Conflict, InvalidInput
from debrief.server.learning.run_records import CommandRun, RunBook, capped_budget_usd, check_daily_cap
from tests.support.mcp_calls import call, call_error
from tests.support.runs import ScriptedProvider, connect, settings_for

pytestmark = pytest.mark.anyio


def begin(book: RunBook, run_id: str = "run-cli1", namespace: str = "math") -> CommandRun:
    return CommandRun.begin(
        book,
        run_id=run_id,
        namespace=namespace,
        command="debrief learn --namespace math --data train.jsonl",
        model="m",
        budget_tokens=None,
        budget_usd=None,
        version_before=0,
    )


def test_an_interrupted_command_run_is_recorded_and_resumed_under_the_same_id(tmp_path: Path) -> None:
    book = RunBook(tmp_path / "runs")
    run = begin(book)
    assert book.load("run-cli1").status == "running"
    assert book.load("run-cli1").owner_pid == os.getpid()
    run.finish(report=None, error=KeyboardInterrupt(), version_after=0)
    stopped = book.load("run-cli1")
    assert (stopped.status, stopped.owner_pid, stopped.resumed) == ("interrupted", None, 0)
    again = begin(book)
    assert (again.record.status, again.record.resumed, again.record.created_at) == ("running", 1, stopped.created_at)


def test_a_command_run_that_fails_records_the_error(tmp_path: Path) -> None:
    book = RunBook(tmp_path / "runs")
    begin(book).finish(report=None, error=RuntimeError("endpoint went away"), version_after=0)
    record = book.load("run-cli1")
    assert (record.status, record.error) == ("failed", "RuntimeError: endpoint went away")


def test_a_running_command_run_cannot_be_taken_over_or_moved_to_another_namespace(tmp_path: Path) -> None:
    book = RunBook(tmp_path / "runs")
    begin(book)
    with pytest.raises(Conflict, match="still going"):
        begin(book)
    book.load("run-cli1")
    begin(book, run_id="run-cli2").finish(report=None, error=None, version_after=0)
    with pytest.raises(InvalidInput, match="learns into 'math'"):
        begin(book, run_id="run-cli2", namespace="other")


def test_the_daily_cap_refuses_when_spent_and_lowers_a_runs_budget_to_what_is_left() -> None:
    check_daily_cap(None, 100.0)
    check_daily_cap(1.0, 0.5)
    with pytest.raises(Conflict, match="DEBRIEF_DAILY_BUDGET_USD"):
        check_daily_cap(1.0, 1.0)
    assert capped_budget_usd(None, 0.5, 0.2) == 0.2
    assert capped_budget_usd(1.0, 0.5, None) == 0.5
    assert capped_budget_usd(1.0, 0.5, 0.2) == 0.2


async def test_the_server_lists_a_command_run_and_leaves_its_resumption_to_the_command_line(
    tmp_path: Path, test_embedder: Embedder
) -> None:
    settings = settings_for(tmp_path)
    begin(RunBook(settings.data_dir / "runs")).finish(report=None, error=KeyboardInterrupt(), version_after=0)
    async with connect(settings, test_embedder, ScriptedProvider(settings)) as client:
        listed = (await call(client, "list_learning_runs"))["runs"]
        assert [(run["run_id"], run["status"]) for run in listed] == [("run-cli1", "interrupted")]
        message = await call_error(client, "resume_learning_run", run_id="run-cli1")
        assert "debrief learn … --resume run-cli1" in message
