"""`debrief prune`: the harmful lesson is retired with its evidence, the helpful one stays, rollback restores."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from debrief.learner import Backends, FunctionBackend, RunConfig, make_verifier
from debrief.learner.backend import ChatRequest, Message
from debrief.server.cli.prune import prune_namespace, prune_table, summary
from debrief.server.embedding.hashed import HashEmbedder
from debrief.server.settings import Settings
from debrief.server.store.experience_store import ExperienceStore
from tests.learner.fake_openai import FakeOpenAI, serve
from tests.learner.scripted import addition_problems
from tests.learner.two_lessons import BAD, GOOD, policy

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).parents[2]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[ExperienceStore]:
    opened = await ExperienceStore.open(Settings(data_dir=tmp_path / "data", chroma_mode="in-process"), HashEmbedder())
    try:
        yield opened
    finally:
        await opened.aclose()


async def prune(store: ExperienceStore, *, dry_run: bool = False) -> Any:
    with anyio.fail_after(60):
        return await prune_namespace(
            store,
            "math",
            addition_problems(16, seed=4),
            backends=Backends(policy=FunctionBackend(policy)),
            verifier=make_verifier("exact"),
            samples=4,
            config=RunConfig(concurrency=8),
            dry_run=dry_run,
        )


async def test_prune_retires_the_harmful_lesson_with_its_evidence_and_rollback_brings_it_back(
    store: ExperienceStore,
) -> None:
    bad = (await store.add("math", BAD)).experience.experience_id
    good = (await store.add("math", GOOD)).experience.experience_id

    report = await prune(store)

    assert [(item.experience_id, item.action) for item in report.experiences] == [(bad, "retired"), (good, "kept")]
    harmful, helpful = report.experiences
    assert harmful.delta_mean < 0 and harmful.ci95[1] < 0
    assert helpful.delta_mean > 0
    assert [item.text for item in await store.active("math")] == [GOOD]
    [change] = await store.history("math", since_version=report.version_before)
    assert change.kind == "retire" and change.source.kind == "evaluation"
    assert change.reason.startswith("pruned: leave-one-out effect -") and "95% CI" in change.reason
    assert f"version={report.version_before}" in summary(report)

    await store.rollback("math", report.version_before, reason="undo the prune")
    assert sorted(item.text for item in await store.active("math")) == sorted([BAD, GOOD])


async def test_a_dry_run_reports_what_it_would_retire_and_changes_nothing(store: ExperienceStore) -> None:
    await store.add("math", BAD)
    await store.add("math", GOOD)
    version = await store.version("math")

    report = await prune(store, dry_run=True)

    assert [item.action for item in report.experiences] == ["would_retire", "kept"]
    assert report.version_after == version == await store.version("math")
    assert len(await store.active("math")) == 2
    assert "would be retired; nothing changed" in summary(report)
    assert prune_table(report).row_count == 2


def scripted(body: dict[str, Any], choice: int) -> str:
    if "What is" not in body["messages"][-1]["content"]:
        return "OK"  # the provider's endpoint check
    messages = tuple(Message(role=item["role"], content=item["content"]) for item in body["messages"])
    request = ChatRequest(role="policy", stage="rollout", messages=messages, temperature=0.3, seed=body.get("seed"))
    return policy(request, choice)


async def test_debrief_prune_from_the_command_line_retires_the_harmful_lesson(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DEBRIEF_DATA_DIR": str(tmp_path / "data"),
        "DEBRIEF_CHROMA_MODE": "in-process",
        "OPENAI_API_KEY": "test-key",
    }
    library = tmp_path / "library.json"
    library.write_text(
        json.dumps(
            {
                "namespace": "math",
                "version": 1,
                "exported_at": datetime.now(UTC).isoformat(),
                "experiences": [{"experience_id": "e0", "text": GOOD}, {"experience_id": "e1", "text": BAD}],
            }
        ),
        encoding="utf-8",
    )
    command = [sys.executable, "-m", "debrief.server"]
    with anyio.fail_after(240):
        imported = await anyio.run_process([*command, "experiences", "import", str(library)], env=env, check=False)
        assert imported.returncode == 0, imported.stderr.decode()
        async with serve(FakeOpenAI(reply=scripted)) as base_url:
            done = await anyio.run_process(
                [
                    *command,
                    "prune",
                    "--generator",
                    "tests.learner.scripted:addition",
                    "--count",
                    "16",
                    "--verifier",
                    "exact",
                    "--namespace",
                    "math",
                    "--json",
                    "--base-url",
                    base_url,
                    "--model",
                    "fake-model",
                ],
                env=env,
                check=False,
                cwd=ROOT,
            )
        listed = await anyio.run_process([*command, "experiences", "list", "-n", "math"], env=env, check=False)
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads(done.stdout)
    assert [(item["text"], item["action"]) for item in report["experiences"]] == [(BAD, "retired"), (GOOD, "kept")]
    assert report["version_after"] == report["version_before"] + 1
    assert "retired 1 experience(s)" in done.stderr.decode()
    assert [line.split("\t")[1] for line in listed.stdout.decode().splitlines()] == [GOOD]
