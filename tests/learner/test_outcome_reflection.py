from __future__ import annotations

import anyio
import pytest

from debrief.learner import (
    Backends,
    ConfigError,
    FunctionBackend,
    InMemoryLibrary,
    ModelPrice,
    PriceTable,
    Provenance,
    RecordedAttempt,
    ReflectionReport,
    RunConfig,
    reflect_on_attempts,
)
from debrief.learner.backend import ChatRequest, estimate_tokens
from debrief.learner.errors import BackendError
from tests.learner.scripted import LESSON, Handler, default_advantage, default_consolidation, reflector, reply

pytestmark = pytest.mark.anyio

TASK = "Add the two-digit numbers in the customer's invoice and report the total."
PROVENANCE = Provenance(kind="outcome", groups=["invoice-task"], outcome_ids=["o-1", "o-2"])
REASON = "outcomes o-1 and o-2 disagree"
EXISTING = "When a checker disagrees with an answer, re-read the question before defending the answer."


def attempts(*rewards: float, feedback: str | None = None) -> list[RecordedAttempt]:
    return [
        RecordedAttempt(
            attempt_id=f"o-{number}",
            account=f"Attempt {number}: added the columns {'with' if reward >= 0.5 else 'without'} carrying.",
            reward=reward,
            feedback=feedback if reward < 0.5 else None,
        )
        for number, reward in enumerate(rewards, start=1)
    ]


async def reflect(
    recorded: list[RecordedAttempt],
    *,
    backend: FunctionBackend | None = None,
    library: InMemoryLibrary | None = None,
    config: RunConfig | None = None,
) -> tuple[ReflectionReport, InMemoryLibrary, FunctionBackend]:
    backend = backend or FunctionBackend(reflector(), model="reflect-model")
    library = library if library is not None else InMemoryLibrary()
    with anyio.fail_after(10):
        report = await reflect_on_attempts(
            task=TASK,
            attempts=recorded,
            backends=Backends(policy=backend),
            library=library,
            provenance=PROVENANCE,
            reason=REASON,
            config=config or RunConfig(retry_backoff=0.0),
        )
    return report, library, backend


def failing(stage: str) -> FunctionBackend:
    inner = reflector()

    def answer(request: ChatRequest, choice: int) -> str:
        if request.stage == stage:
            raise BackendError(f"{stage} endpoint is down", status=503)
        return inner(request, choice)

    return FunctionBackend(answer)


async def test_a_mixed_group_becomes_one_library_change_with_the_callers_provenance() -> None:
    library = InMemoryLibrary()
    library.add_text(EXISTING)

    report, library, backend = await reflect(attempts(1.0, 0.0), library=library)

    assert report.error is None
    assert [record.operation.model_dump() for record in report.applied] == [{"op": "add", "text": LESSON}]
    assert [entry.text for entry in await library.entries()] == [EXISTING, LESSON]
    assert len(library.changes) == 1
    version, provenance, reason, _ = library.changes[0]
    assert (version, provenance, reason) == (1, PROVENANCE, REASON)
    assert report.version == 1
    assert [call.stage for call in backend.calls].count("summary") == 2
    assert [call.stage for call in backend.calls][2:] == ["advantage", "consolidation"]
    assert "[G0]. " + EXISTING in backend.calls_for("advantage")[0].messages[0].content
    assert ReflectionReport.model_validate_json(report.model_dump_json()) == report


@pytest.mark.parametrize(
    "rewards",
    [(1.0,), (1.0, 1.0, 0.5), (0.0, 0.2), (0.0,)],
    ids=["one-attempt", "all-successes", "all-failures", "one-failure"],
)
async def test_attempts_that_are_not_a_mixed_group_are_refused_before_any_call(rewards: tuple[float, ...]) -> None:
    backend = FunctionBackend(reflector())
    with pytest.raises(ConfigError, match="need at least 2|not mixed"):
        await reflect(attempts(*rewards), backend=backend)
    assert backend.calls == []


async def test_a_reward_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"reward 1\.5"):
        await reflect(attempts(1.5, 0.0))


async def test_duplicate_attempt_ids_are_refused() -> None:
    first = attempts(1.0)[0]
    with pytest.raises(ConfigError, match="unique"):
        await reflect([first, RecordedAttempt(attempt_id=first.attempt_id, account="again", reward=0.0)])


async def test_grades_scores_and_feedback_reach_the_prompts_without_a_ground_truth() -> None:
    feedback = "The total was off by ten: the tens column ignored the carry."
    _, _, backend = await reflect(attempts(0.8, 0.0, feedback=feedback))

    summaries = [call.messages[-1].content for call in backend.calls_for("summary")]
    succeeded = next(text for text in summaries if "Attempt 1:" in text)
    failed = next(text for text in summaries if "Attempt 2:" in text)
    assert "graded CORRECT (score 0.8 on a scale from 0 to 1)" in succeeded
    assert "graded INCORRECT." in failed and feedback in failed
    assert feedback not in succeeded
    advantage = backend.calls_for("advantage")[0].messages[-1].content
    assert "(correct, score 0.8)" in advantage and "(incorrect)" in advantage
    assert "Feedback on it:" in advantage and feedback in advantage.split("Feedback on it:", 1)[1]
    assert TASK in advantage
    assert all("Ground truth" not in call.messages[-1].content for call in backend.calls)


async def test_a_long_account_is_summarized_in_parts_and_nothing_is_cut() -> None:
    long_one = RecordedAttempt(attempt_id="long", account="step " * 5000, reward=0.0)
    recorded = [attempts(1.0)[0], long_one]

    _, _, backend = await reflect(recorded, config=RunConfig(trajectory_token_budget=1000))

    parts = [
        call.messages[-1].content for call in backend.calls_for("summary") if "step step" in call.messages[-1].content
    ]
    assert len(parts) == 7  # 25,000 characters in parts of at most 4,000
    assert all(f"part {number} of 7" in prompt for number, prompt in enumerate(parts, start=1))
    assert sum(prompt.count("step") for prompt in parts) >= 5000
    assert not any("characters cut" in prompt for prompt in parts)


async def test_an_over_long_experience_is_sent_back_once_then_rejected() -> None:
    long_text = " ".join(["word"] * 40)

    def advantage(request: ChatRequest) -> str:
        return reply({"analysis": "", "operations": [{"op": "add", "text": long_text}]})

    report, library, backend = await reflect(
        attempts(1.0, 0.0), backend=FunctionBackend(reflector(advantage=advantage))
    )

    asked = backend.calls_for("advantage")
    assert len(asked) == 2
    assert "longer than 32 words" in asked[1].messages[-1].content
    assert [(item.kind, item.stage) for item in report.rejected] == [("over_word_cap", "advantage")]
    assert report.proposals == [] and report.applied == [] and report.version is None
    assert report.error is None
    assert backend.calls_for("consolidation") == []
    assert library.changes == []


@pytest.mark.parametrize("stage", ["summary", "advantage", "consolidation"])
async def test_a_backend_failure_is_reported_and_the_library_is_left_unchanged(stage: str) -> None:
    library = InMemoryLibrary()
    library.add_text(EXISTING)
    before = list(await library.entries())

    report, library, _ = await reflect(attempts(1.0, 0.0), backend=failing(stage), library=library)

    assert report.error is not None
    assert report.error.startswith(f"{stage}: ") and f"{stage} endpoint is down" in report.error
    assert report.applied == [] and report.version is None
    assert library.changes == [] and list(await library.entries()) == before


async def test_replies_still_invalid_after_the_reasks_are_reported_with_the_proposals() -> None:
    report, library, backend = await reflect(
        attempts(1.0, 0.0), backend=FunctionBackend(reflector(consolidation=lambda request: "not json"))
    )

    assert report.error is not None and "invalid after 2 re-asks" in report.error
    assert len(backend.calls_for("consolidation")) == 3
    assert [proposal.operation.model_dump() for proposal in report.proposals] == [{"op": "add", "text": LESSON}]
    assert library.changes == []


async def test_nothing_is_applied_when_the_group_proposes_nothing() -> None:
    def advantage(request: ChatRequest) -> str:
        return reply({"analysis": "Nothing general to learn.", "operations": []})

    report, library, backend = await reflect(
        attempts(1.0, 0.0), backend=FunctionBackend(reflector(advantage=advantage))
    )

    assert report.error is None and report.version is None and report.applied == []
    assert backend.calls_for("consolidation") == []
    assert library.changes == []


async def test_tokens_and_cost_of_every_call_are_counted() -> None:
    price = ModelPrice(input_per_million=1.0, output_per_million=2.0)
    config = RunConfig(prices=PriceTable(models={"reflect-model": price}))
    replies: list[str] = []
    script: dict[str, Handler] = {"advantage": default_advantage, "consolidation": default_consolidation}
    inner = reflector(**script)

    def recording(request: ChatRequest, choice: int) -> str:
        text = inner(request, choice)
        replies.append(text)
        return text

    backend = FunctionBackend(recording, model="reflect-model")
    report, _, _ = await reflect(attempts(1.0, 0.0, 0.0), backend=backend, config=config)

    prompt = sum(estimate_tokens(m.content) for call in backend.calls for m in call.messages)
    completion = sum(estimate_tokens(text) for text in replies)
    assert report.tokens.requests == len(backend.calls) == 5
    assert (report.tokens.prompt_tokens, report.tokens.completion_tokens) == (prompt, completion)
    assert report.tokens.cost_usd == pytest.approx((prompt * 1.0 + completion * 2.0) / 1_000_000)
    assert {stage: count.requests for stage, count in report.tokens_by_stage.items()} == {
        "summary": 3,
        "advantage": 1,
        "consolidation": 1,
    }
