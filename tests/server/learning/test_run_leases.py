"""Two processes never run the same learning run: a cross-process lease is taken before a run starts or resumes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.streams.text import TextReceiveStream
from mcp import Client

from debrief.server.embedding.embedder import Embedder
from debrief.server.errors import Conflict
from debrief.server.learning.leases import RunLease
from debrief.server.mcp.app import create_server
from debrief.server.settings import Settings
from tests.support.mcp_calls import call, call_error
from tests.support.runs import ScriptedProvider, problems

pytestmark = pytest.mark.anyio

HOLD = """
import sys
from pathlib import Path
from debrief.server.errors import Conflict
from debrief.server.learning.leases import RunLease
lease = RunLease(Path(sys.argv[1])).take()
print("held", flush=True)
sys.stdin.read()
"""


async def finish(client: Client, run_id: str) -> dict[str, Any]:
    with anyio.fail_after(60):
        while True:
            record = await call(client, "wait_learning_run", run_id=run_id, timeout_seconds=20)
            if record["status"] not in ("queued", "running"):
                return record


async def test_a_run_another_process_is_running_is_refused_here_and_left_untouched(
    tmp_path: Path, test_embedder: Embedder
) -> None:
    settings = Settings(data_dir=tmp_path / "data", chroma_mode="in-process")
    async with Client(create_server(settings, embedder=test_embedder, provider=ScriptedProvider(settings))) as client:
        started = await call(
            client,
            "start_learning_run",
            namespace="math",
            problems=problems(8),
            verifier="exact",
            batch_size=4,
            epochs=3,
            budget_tokens=2_000,
        )
        stopped = await finish(client, started["run_id"])
        assert stopped["stop_reason"] == "budget"
        run_dir = settings.data_dir / "runs" / started["run_id"]
        with anyio.fail_after(30):
            async with await anyio.open_process([sys.executable, "-c", HOLD, str(run_dir)]) as holder:
                assert holder.stdout is not None
                async for line in TextReceiveStream(holder.stdout):
                    if "held" in line:
                        break
                message = await call_error(client, "resume_learning_run", run_id=started["run_id"], budget_tokens=10**6)
                unchanged = await call(client, "get_learning_run", run_id=started["run_id"])
                assert holder.stdin is not None
                await holder.stdin.aclose()
                await holder.wait()
        assert f"being run by another process (pid {holder.pid})" in message
        assert (unchanged["resumed"], unchanged["stop_reason"]) == (0, "budget")
        resumed = await call(client, "resume_learning_run", run_id=started["run_id"], budget_tokens=10**6)
        assert resumed["resumed"] == 1
        finished = await finish(client, started["run_id"])
    assert finished["status"] == "succeeded" and finished["stop_reason"] == "finished"


def test_a_lease_is_exclusive_until_released_and_names_its_holder(tmp_path: Path) -> None:
    run_dir = tmp_path / "run-0123456789ab"
    first = RunLease(run_dir).take()
    with pytest.raises(Conflict, match=r"run 'run-0123456789ab' is being run by another process \(pid \d+\)"):
        RunLease(run_dir).take()
    first.release()
    second = RunLease(run_dir).take()
    assert second.held
    second.release()
