from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from debrief.learner import (
    AppliedLookup,
    Backends,
    Checkpoint,
    ConfigError,
    DirectoryCheckpoint,
    FunctionBackend,
    InMemoryLibrary,
    Library,
    LibraryEntry,
    MemoryCheckpoint,
    Provenance,
    RunConfig,
    RunReport,
    make_verifier,
    run_learning,
)
from debrief.learner.backend import ChatRequest
from debrief.learner.library import ApplyResult
from debrief.learner.operations import Operation
from tests.learner.scripted import addition_problems, policy, reflector, reply

pytestmark = pytest.mark.anyio

CONFIG = RunConfig(
    run_id="resume", epochs=2, batch_size=8, seed=3, concurrency=4, reflection_input="summaries", retry_backoff=0.0
)


class Crash(Exception):
    """Stands for the process dying."""


def crashing(stage: str, after: int, inner: FunctionBackend) -> FunctionBackend:
    seen = 0

    async def answer(request: ChatRequest, choice: int) -> str:
        nonlocal seen
        if request.stage == stage and choice == 0:
            seen += 1
            if seen > after:
                raise Crash
        text = inner.function(request, choice)
        assert isinstance(text, str)
        return text

    return FunctionBackend(answer)


async def run(
    library: InMemoryLibrary, checkpoint: Checkpoint | None, policy_backend: FunctionBackend, reflect: FunctionBackend
) -> RunReport:
    with anyio.fail_after(30):
        return await run_learning(
            CONFIG,
            backends=Backends(policy=policy_backend, reflect=reflect),
            library=library,
            problems=addition_problems(16),
            verifier=make_verifier("exact"),
            checkpoint=checkpoint,
        )


@pytest.mark.parametrize(
    ("stage", "after"),
    [("rollout", 11), ("summary", 40), ("consolidation", 0), ("advantage", 0)],
    ids=["mid-rollouts", "mid-summaries", "at-consolidation", "first-advantage"],
)
async def test_a_run_resumed_after_a_crash_ends_with_the_same_library_as_an_uninterrupted_run(
    stage: str, after: int, tmp_path: Path
) -> None:
    straight_library = InMemoryLibrary()
    straight = await run(straight_library, None, FunctionBackend(policy), FunctionBackend(reflector()))

    library = InMemoryLibrary()
    checkpoint = DirectoryCheckpoint(tmp_path / "run")
    policy_crash = crashing(stage, after, FunctionBackend(policy)) if stage == "rollout" else FunctionBackend(policy)
    reflect_crash = crashing(stage, after, FunctionBackend(reflector())) if stage != "rollout" else None
    crashed = False
    try:
        await run(library, checkpoint, policy_crash, reflect_crash or FunctionBackend(reflector()))
    except* Crash:
        crashed = True
    assert crashed
    saved = await checkpoint.load()
    assert saved is not None

    resumed_policy = FunctionBackend(policy)
    resumed = await run(library, checkpoint, resumed_policy, FunctionBackend(reflector()))

    assert await library.entries() == await straight_library.entries()
    assert [step.mean_reward for step in resumed.steps] == [step.mean_reward for step in straight.steps]
    assert [len(step.applied) for step in resumed.steps] == [len(step.applied) for step in straight.steps]
    assert resumed.stop_reason == "finished"
    interrupted = resumed.steps[saved.next_step]
    assert interrupted.reused_rollouts == len(saved.rollouts)
    assert len(resumed_policy.calls) == 8 * (4 - saved.next_step) - len(saved.rollouts)


async def test_rollouts_finished_before_a_crash_are_not_requested_again() -> None:
    library = InMemoryLibrary()
    checkpoint = MemoryCheckpoint()
    try:
        await run(library, checkpoint, crashing("rollout", 5, FunctionBackend(policy)), FunctionBackend(reflector()))
    except* Crash:
        pass
    assert checkpoint.state is not None
    finished = dict(checkpoint.state.rollouts)
    assert checkpoint.state.next_step == 0 and len(finished) == 5
    assert checkpoint.state.step_tokens["rollout"].requests == 5

    resumed_policy = FunctionBackend(policy)
    report = await run(library, checkpoint, resumed_policy, FunctionBackend(reflector()))

    asked = {call.messages[-1].content for call in resumed_policy.calls[:3]}
    first_step = set(report.steps[0].problem_ids)
    questions = {p.problem_id: p.question for p in addition_problems(16)}
    assert not asked & {questions[key] for key in finished}
    assert report.steps[0].reused_rollouts == 5
    assert sum(call.stage == "rollout" for call in resumed_policy.calls) == 32 - 5
    assert set(finished) <= first_step
    assert report.steps[0].tokens["rollout"].requests == 8


async def test_resuming_a_finished_run_makes_no_calls_and_returns_its_report() -> None:
    library = InMemoryLibrary()
    checkpoint = MemoryCheckpoint()
    first = await run(library, checkpoint, FunctionBackend(policy), FunctionBackend(reflector()))
    again_policy = FunctionBackend(policy)
    again = await run(library, checkpoint, again_policy, FunctionBackend(reflector()))

    assert again_policy.calls == []
    assert again.steps == first.steps
    assert again.stop_reason == "finished"


async def test_a_checkpoint_of_a_run_with_other_settings_is_refused() -> None:
    checkpoint = MemoryCheckpoint()
    await run(InMemoryLibrary(), checkpoint, FunctionBackend(policy), FunctionBackend(reflector()))
    with pytest.raises(ConfigError, match="other settings"):
        await run_learning(
            CONFIG.model_copy(update={"group_size": 3}),
            backends=Backends(policy=FunctionBackend(policy)),
            library=InMemoryLibrary(),
            problems=addition_problems(16),
            verifier=make_verifier("exact"),
            checkpoint=checkpoint,
        )


async def test_a_budget_stop_can_be_resumed_with_a_larger_budget() -> None:
    library = InMemoryLibrary()
    checkpoint = MemoryCheckpoint()
    with anyio.fail_after(30):
        stopped = await run_learning(
            CONFIG.model_copy(update={"budget_tokens": 1}),
            backends=Backends(policy=FunctionBackend(policy), reflect=FunctionBackend(reflector())),
            library=library,
            problems=addition_problems(16),
            verifier=make_verifier("exact"),
            checkpoint=checkpoint,
        )
    assert stopped.stop_reason == "budget" and len(stopped.steps) == 1
    resumed = await run(library, checkpoint, FunctionBackend(policy), FunctionBackend(reflector()))
    assert resumed.stop_reason == "finished" and len(resumed.steps) == 4
    assert resumed.steps[0] == stopped.steps[0]


@dataclass
class CrashingLibrary(InMemoryLibrary):
    """Dies once around the apply of ``crash_step``: just before it, or just after it landed."""

    crash_step: int | None = None
    after: bool = True

    async def apply(self, operations: Sequence[Operation], *, provenance: Provenance, reason: str) -> ApplyResult:
        crash = provenance.step == self.crash_step
        if crash and not self.after:
            self.crash_step = None
            raise Crash
        result = await super().apply(operations, provenance=provenance, reason=reason)
        if crash:
            self.crash_step = None
            raise Crash
        return result


@dataclass
class EntriesOnly:
    """A library without :class:`AppliedLookup`: the run must judge an interrupted apply from its entries."""

    inner: CrashingLibrary

    async def entries(self) -> Sequence[LibraryEntry]:
        return await self.inner.entries()

    async def relevant(self, task: str, k: int) -> Sequence[LibraryEntry]:
        return await self.inner.relevant(task, k)

    async def apply(self, operations: Sequence[Operation], *, provenance: Provenance, reason: str) -> ApplyResult:
        return await self.inner.apply(operations, provenance=provenance, reason=reason)


def insistent(request: ChatRequest, choice: int) -> str:
    """Proposes a new lesson per group in every step, all kept: a redone apply would show as copies."""
    if request.stage == "advantage":
        numbers = re.search(r"What is (\d+) \+ (\d+)\?", request.messages[-1].content)
        assert numbers is not None
        text = f"When adding numbers like {numbers[1]} and {numbers[2]}, write the carry above the next column first."
        return reply({"analysis": "", "operations": [{"op": "add", "text": text}]})
    if request.stage == "consolidation":
        return reply({"reasoning": "", "decisions": [], "operations": []})
    return reflector()(request, choice)


async def run_on(library: Library, checkpoint: Checkpoint | None, policy_backend: FunctionBackend) -> RunReport:
    with anyio.fail_after(30):
        return await run_learning(
            CONFIG,
            backends=Backends(policy=policy_backend, reflect=FunctionBackend(insistent)),
            library=library,
            problems=addition_problems(16),
            verifier=make_verifier("exact"),
            checkpoint=checkpoint,
        )


@pytest.mark.parametrize("lookup", [True, False], ids=["applied-lookup", "entries-only"])
@pytest.mark.parametrize("after", [True, False], ids=["right-after-apply", "right-before-apply"])
async def test_a_crash_around_a_steps_apply_is_resumed_with_the_step_applied_once(after: bool, lookup: bool) -> None:
    straight_library = InMemoryLibrary()
    straight = await run_on(straight_library, None, FunctionBackend(policy))
    steps_applied = [change[1].step for change in straight_library.changes]
    assert steps_applied == [0, 1, 2, 3]

    crashing_library = CrashingLibrary(crash_step=0, after=after)
    library: Library = crashing_library if lookup else EntriesOnly(crashing_library)
    assert isinstance(library, AppliedLookup) == lookup
    checkpoint = MemoryCheckpoint()
    crashed = False
    try:
        await run_on(library, checkpoint, FunctionBackend(policy))
    except* Crash:
        crashed = True
    assert crashed
    assert checkpoint.state is not None and checkpoint.state.applying is not None
    assert len(crashing_library.changes) == (1 if after else 0)

    resumed_policy = FunctionBackend(policy)
    resumed = await run_on(library, checkpoint, resumed_policy)

    assert [change[1].step for change in crashing_library.changes] == steps_applied
    assert await crashing_library.entries() == await straight_library.entries()
    first = resumed.steps[0]
    assert first.apply_recovered == after
    assert first.applied == straight.steps[0].applied
    assert first.library_version == (None if after and not lookup else straight.steps[0].library_version)
    assert first.tokens == straight.steps[0].tokens
    assert len(resumed_policy.calls) == 8 * 3, "the interrupted step's calls were not redone"
    assert resumed.stop_reason == "finished" and len(resumed.steps) == 4
    assert checkpoint.state is not None and checkpoint.state.applying is None


async def test_a_run_checkpointed_before_a_setting_existed_resumes_when_that_setting_keeps_its_default() -> None:
    checkpoint = MemoryCheckpoint()
    crashed = False
    try:
        await run(
            InMemoryLibrary(), checkpoint, crashing("rollout", 3, FunctionBackend(policy)), FunctionBackend(reflector())
        )
    except* Crash:
        crashed = True
    assert crashed and checkpoint.state is not None
    older = dict(checkpoint.state.config)
    del older["placement"], older["top_p"]  # as saved by a version without these settings
    checkpoint.state = checkpoint.state.model_copy(update={"config": older})

    resumed = await run(InMemoryLibrary(), checkpoint, FunctionBackend(policy), FunctionBackend(reflector()))
    assert resumed.stop_reason == "finished"

    checkpoint.state = checkpoint.state.model_copy(update={"config": {**older, "group_size": 3}})
    with pytest.raises(ConfigError, match="other settings"):
        await run(InMemoryLibrary(), checkpoint, FunctionBackend(policy), FunctionBackend(reflector()))
