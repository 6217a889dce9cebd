"""The daily cap holds across runs, processes and outcome reflections: a locked ledger of spend and holds."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult, TextContent

from debrief.learner.backend import ChatRequest
from debrief.server.embedding.embedder import Embedder
from debrief.server.errors import Conflict
from debrief.server.learning.spend_ledger import SpendLedger
from debrief.server.mcp.app import create_server
from debrief.server.settings import ModelSettings, OutcomeSettings, PriceSettings, RunSettings, Settings
from tests.learner.scripted import policy
from tests.support.mcp_calls import call
from tests.support.runs import ScriptedProvider, problems

pytestmark = pytest.mark.anyio

HOLD_IN_ANOTHER_PROCESS = """
import sys
from pathlib import Path
from debrief.server.learning.spend_ledger import SpendLedger
grant = SpendLedger(Path(sys.argv[1]), 1.0).reserve("other-process-run", 0.75)
print(grant.budget_usd)
"""


def test_holds_of_every_process_share_one_cap_and_spend_is_counted_today(tmp_path: Path) -> None:
    ledger = SpendLedger(tmp_path, cap_usd=1.0)
    first = ledger.reserve("run-a", None)
    assert first.budget_usd == pytest.approx(1.0)
    with pytest.raises(Conflict, match=r"\$1\.0000 held by runs in progress"):
        ledger.reserve("run-b", 0.1)
    ledger.release("run-a", 0.2)
    assert ledger.spent_on(datetime.now(UTC).date()) == pytest.approx(0.2)
    # A hold taken by a process that has since exited is dropped: its share returns.
    printed = subprocess.run(
        [sys.executable, "-c", HOLD_IN_ANOTHER_PROCESS, str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert float(printed.stdout) == pytest.approx(0.75)
    second = ledger.reserve("run-b", None)
    assert second.budget_usd == pytest.approx(0.8)
    ledger.count("run-b", 0.3)
    ledger.release("run-b", 0.5)
    assert ledger.spent_on(datetime.now(UTC).date()) == pytest.approx(0.7)


async def wait_all(client: Client, run_ids: list[str]) -> list[dict[str, Any]]:
    records = []
    with anyio.fail_after(120):
        for run_id in run_ids:
            while True:
                record = await call(client, "wait_learning_run", run_id=run_id, timeout_seconds=20)
                if record["status"] not in ("queued", "running"):
                    records.append(record)
                    break
    return records


def error_text(result: CallToolResult) -> str:
    return " ".join(block.text for block in result.content if isinstance(block, TextContent))


def verbose_policy(request: ChatRequest, choice: int) -> str:
    """The scripted policy with a long working-out, so a run spends real money at these prices."""
    return "Let me think this through carefully. " * 60 + policy(request, choice)


async def test_runs_started_together_share_the_daily_cap_instead_of_each_spending_it(
    tmp_path: Path, test_embedder: Embedder
) -> None:
    cap = 0.5
    settings = Settings(
        data_dir=tmp_path / "data",
        chroma_mode="in-process",
        runs=RunSettings(daily_budget_usd=cap, max_concurrent=5),
        prices=PriceSettings(input_per_million=20.0, output_per_million=20.0),
        models=ModelSettings(context_tokens=1200),
    )
    provider = ScriptedProvider(settings, verbose_policy)
    async with Client(create_server(settings, embedder=test_embedder, provider=provider)) as client:
        arguments = {"problems": problems(4), "verifier": "exact", "batch_size": 4, "epochs": 2, "budget_usd": 0.2}
        results = [
            await client.call_tool("start_learning_run", {"namespace": f"math{n}", **arguments}) for n in range(5)
        ]
        started = [result.structured_content for result in results if not result.is_error]
        refused = [error_text(result) for result in results if result.is_error]
        records = await wait_all(client, [run["run_id"] for run in started if run is not None])
    spent = sum(record["progress"]["cost_usd"] for record in records)
    refused += [record["error"] for record in records if "is used up" in (record["error"] or "")]
    # Each run alone would spend its whole $0.20; five of them would have spent twice the cap.
    assert refused and all("is used up" in message for message in refused), refused
    assert SpendLedger(settings.data_dir, cap).spent_on(datetime.now(UTC).date()) == pytest.approx(spent)
    assert 0 < spent <= cap


async def test_outcome_reflections_count_against_the_daily_cap(tmp_path: Path, test_embedder: Embedder) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        chroma_mode="in-process",
        runs=RunSettings(daily_budget_usd=5.0),
        prices=PriceSettings(input_per_million=5.0, output_per_million=5.0),
        outcomes=OutcomeSettings(reflection="server"),
    )
    async with Client(create_server(settings, embedder=test_embedder, provider=ScriptedProvider(settings))) as client:
        base = {"namespace": "math", "task": "Add 47 and 38.", "task_key": "sum"}
        await call(client, "record_outcome", **base, attempt="I said 75.", outcome="failure")
        result = await call(client, "record_outcome", **base, attempt="I said 85.", outcome="success", wait_seconds=30)
    assert result["reflection"] in ("applied", "no_change")
    assert SpendLedger(settings.data_dir, 5.0).spent_on(datetime.now(UTC).date()) > 0


async def test_runs_without_a_dollar_budget_hold_what_their_token_budget_can_cost_not_the_whole_cap(
    tmp_path: Path, test_embedder: Embedder
) -> None:
    cap = 0.5
    settings = Settings(
        data_dir=tmp_path / "data",
        chroma_mode="in-process",
        runs=RunSettings(daily_budget_usd=cap, max_concurrent=3),
        prices=PriceSettings(input_per_million=20.0, output_per_million=20.0),
        models=ModelSettings(context_tokens=1200),
    )
    provider = ScriptedProvider(settings, verbose_policy)
    async with Client(create_server(settings, embedder=test_embedder, provider=provider)) as client:
        # 10,000 tokens at $20 per million: each run holds $0.20 of the $0.50 cap.
        arguments = {"problems": problems(4), "verifier": "exact", "batch_size": 4, "budget_tokens": 10_000}
        results = [
            await client.call_tool("start_learning_run", {"namespace": f"math{n}", **arguments}) for n in range(3)
        ]
        assert not any(result.is_error for result in results), [error_text(result) for result in results]
        started = [result.structured_content for result in results]
        records = await wait_all(client, [run["run_id"] for run in started if run is not None])
    assert all(record["error"] is None or "is used up" not in record["error"] for record in records[:2])
    spent = sum(record["progress"]["cost_usd"] for record in records)
    assert 0 < spent <= cap
