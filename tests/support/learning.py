"""A learning run over the scripted world, for tests of the learner's loop."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import anyio

from debrief.learner import (
    Backends,
    FunctionBackend,
    InMemoryLibrary,
    Problem,
    ProgressEvent,
    RunConfig,
    RunReport,
    make_verifier,
    run_learning,
)
from debrief.learner.backend import ChatRequest
from tests.learner.scripted import addition_problems, policy, reflector

ReplyFn = Callable[[ChatRequest, int], str | Awaitable[str]]


async def learn(
    config: RunConfig,
    *,
    policy_fn: ReplyFn = policy,
    reflect_fn: ReplyFn | None = None,
    problems: Sequence[Problem] | None = None,
    library: InMemoryLibrary | None = None,
    events: list[ProgressEvent] | None = None,
    verifier: str = "exact",
) -> tuple[RunReport, InMemoryLibrary, FunctionBackend, FunctionBackend]:
    policy_backend = FunctionBackend(policy_fn, model="policy-model")
    reflect_backend = FunctionBackend(reflect_fn or reflector(), model="reflect-model")
    library = library if library is not None else InMemoryLibrary()
    with anyio.fail_after(30):
        report = await run_learning(
            config,
            backends=Backends(policy=policy_backend, reflect=reflect_backend, judge=reflect_backend),
            library=library,
            problems=problems if problems is not None else addition_problems(16),
            verifier=make_verifier(verifier),
            on_event=events.append if events is not None else None,
        )
    return report, library, policy_backend, reflect_backend


def small(**overrides: object) -> RunConfig:
    settings: dict[str, object] = {
        "run_id": "test",
        "epochs": 3,
        "batch_size": 8,
        "seed": 7,
        "reflection_input": "summaries",
        "retry_backoff": 0.0,
    }
    settings.update(overrides)
    return RunConfig.model_validate(settings)
