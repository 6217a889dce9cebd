"""The method as the paper runs it: dispositions, graded rewards, credit, whole attempts, settings, placement."""

from __future__ import annotations

import re

import pytest

from debrief.learner import (
    InMemoryLibrary,
    Problem,
    RunConfig,
    RunReport,
    format_report,
)
from debrief.learner.backend import ChatRequest
from debrief.learner.errors import BackendError
from tests.learner.scripted import (
    LESSON,
    addition_problems,
    default_advantage,
    library_text,
    policy,
    proposals_of,
    reflector,
    reply,
)
from tests.support.learning import ReplyFn, learn, small

pytestmark = pytest.mark.anyio

_NUMBERS = re.compile(r"What is (\d+) \+ (\d+)\?")


def auto(**overrides: object) -> RunConfig:
    """The default reflection input (auto): groups that fit are read whole."""
    return small(**{"reflection_input": "auto", **overrides})


def lesson_for(request: ChatRequest) -> str:
    match = _NUMBERS.search(request.messages[-1].content)
    assert match is not None
    return f"When adding numbers like {match[1]} and {match[2]}, write the carry digit above the tens column first."


async def test_every_proposal_ends_with_a_recorded_disposition_even_when_consolidation_names_none() -> None:
    linked = "When adding, look up the carry rule at https://example.com before answering."
    shown_labels: list[str] = []

    def advantage(request: ChatRequest) -> str:
        match = _NUMBERS.search(request.messages[-1].content)
        assert match is not None
        text = linked if int(match[1]) % 5 == 0 else lesson_for(request)
        return reply({"analysis": "The right ones carried.", "operations": [{"op": "add", "text": text}]})

    def consolidation(request: ChatRequest) -> str:
        shown = proposals_of(request)
        shown_labels.extend(shown)
        labels = [label for label, operation in shown.items() if "https" not in operation["text"]]
        decisions = [
            {"proposal": labels[0], "decision": "drop", "reason": "too specific to one number"},
            {"proposal": labels[1], "decision": "merge", "into": labels[2], "reason": "says the same as the other"},
        ]
        return reply({"reasoning": "Kept the rest.", "decisions": decisions, "operations": []})

    problems = addition_problems(16)
    report, library, _, _ = await learn(
        auto(epochs=1, batch_size=16),
        reflect_fn=reflector(advantage=advantage, consolidation=consolidation),
        problems=problems,
    )

    step = report.steps[0]
    fates = {fate.proposal_id: fate for fate in step.proposals}
    assert len(fates) == step.operations_proposed == step.groups_kept > 3
    repeats = [fate for fate in fates.values() if (fate.reason or "").startswith("the same edit as")]
    assert len(shown_labels) == len(fates) - len(repeats)  # exact repeats are merged before the model sees them
    by_kind = {kind: [fate for fate in fates.values() if fate.disposition == kind] for kind in step.disposition_counts}
    assert len(by_kind["dropped"]) == 1 and by_kind["dropped"][0].reason == "too specific to one number"
    merged = [fate for fate in by_kind["merged"] if fate not in repeats]
    assert len(merged) == 1 and merged[0].into is not None and merged[0].into.startswith("E")
    applied_ids = {fate.into for fate in by_kind["applied"]}
    assert applied_ids == {entry.experience_id for entry in await library.entries()}
    assert merged[0].into in applied_ids
    rejected = by_kind.get("rejected", [])
    assert all(fate.stage == "apply" and "link" in (fate.reason or "") for fate in rejected)
    assert sum(step.disposition_counts.values()) == len(fates)
    assert "fates" in format_report(report) and "/" in format_report(report).splitlines()[3]


async def test_group_rejections_are_dispositions_too() -> None:
    def advantage(request: ChatRequest) -> str:
        return reply({"analysis": "", "operations": [{"op": "modify", "experience_id": "G9", "text": LESSON}]})

    report, _, _, _ = await learn(auto(epochs=1, batch_size=16), reflect_fn=reflector(advantage=advantage))

    step = report.steps[0]
    assert step.proposals and all(fate.disposition == "rejected" for fate in step.proposals)
    assert all(fate.stage == "advantage" and "unknown_experience" in (fate.reason or "") for fate in step.proposals)


async def test_a_failed_consolidation_records_its_proposals_as_pending_then_decides_them() -> None:
    calls = 0

    def consolidation(request: ChatRequest) -> str:
        nonlocal calls
        calls += 1
        return "not json" if calls <= 3 else reply({"reasoning": "", "decisions": [], "operations": []})

    report, library, _, _ = await learn(auto(epochs=1), reflect_fn=reflector(consolidation=consolidation))

    first, second = report.steps
    assert {fate.disposition for fate in first.proposals} == {"pending"}
    pending_ids = {fate.proposal_id for fate in first.proposals}
    decided = {fate.proposal_id: fate.disposition for fate in second.proposals}
    assert pending_ids <= set(decided) and "pending" not in decided.values()
    assert [entry.text for entry in await library.entries()] == [LESSON]
    assert report.status == "succeeded" and report.failed_consolidations == 1


def fractional(response: str, answer: str | None) -> float:
    """0.9 for the right sum, 0.4 for one off by ten, as a partial-credit grader might."""
    boxed = re.search(r"\\boxed\{(-?\d+)\}", response)
    return 0.9 if boxed is not None and boxed[1] == answer else 0.4


async def test_fractional_rewards_keep_unequal_groups_and_show_attempts_best_first_with_scores() -> None:
    report, _, _, reflect = await learn(auto(epochs=1, batch_size=16), verifier="tests.learner.test_method:fractional")

    step = report.steps[0]
    for group in step.groups:
        assert group.rewards is not None
        assert group.kept == (len(set(group.rewards)) > 1)
    assert 0 < step.groups_kept < 16
    advantage = reflect.calls_for("advantage")[0].messages[-1].content
    scores = [float(value) for value in re.findall(r"Attempt \d+ \((?:in)?correct, score ([\d.]+)\)", advantage)]
    assert scores == sorted(scores, reverse=True) and set(scores) == {0.9, 0.4}


async def test_all_equal_fractional_rewards_teach_nothing() -> None:
    def half(request: ChatRequest, choice: int) -> str:
        return "Answer: \\boxed{0}"

    report, _, _, reflect = await learn(auto(epochs=1), policy_fn=half, verifier="tests.learner.test_method:fractional")
    assert report.steps[0].groups_kept == 0 and reflect.calls_for("advantage") == []


def citing_policy(misleading: str) -> ReplyFn:
    """Attempts that follow the misleading experience (citing G0) are wrong; the others are right."""

    def answer(request: ChatRequest, choice: int) -> str:
        match = _NUMBERS.search(request.messages[-1].content)
        assert match is not None
        a, b = int(match[1]), int(match[2])
        if misleading in library_text(request) and (choice + (request.seed or 0)) % 2 == 0:
            return f"Following G0 I subtract ten.\nAnswer: \\boxed{{{a + b - 10}}}"
        return f"I add {a} and {b}.\nAnswer: \\boxed{{{a + b}}}"

    return answer


async def test_credit_from_the_group_contrast_reaches_the_library_counters_and_consolidation() -> None:
    library = InMemoryLibrary()
    misleading = "When adding two-digit numbers, subtract ten at the end to correct for the carry."
    bad = library.add_text(misleading)
    seen: list[str] = []

    def consolidation(request: ChatRequest) -> str:
        seen.append(library_text(request))
        return reply({"reasoning": "", "decisions": [], "operations": []})

    report, library, _, _ = await learn(
        auto(epochs=1, batch_size=16),
        library=library,
        policy_fn=citing_policy(misleading),
        reflect_fn=reflector(consolidation=consolidation),
    )

    better, worse = report.steps[0].credit[bad]
    assert better == 0 and worse > 0
    assert library.counters[bad] == (0, worse)
    credit, provenance = library.credited[0]
    assert credit.experience_id == bad and credit.groups and provenance.run_id == "test" and provenance.step == 0
    assert f"[G0]. {misleading} (used in 0 better, {worse} worse attempts)" in seen[0]


async def test_a_group_may_delete_only_an_experience_its_worse_attempts_used() -> None:
    library = InMemoryLibrary()
    misleading = "When adding two-digit numbers, subtract ten at the end to correct for the carry."
    bad = library.add_text(misleading)
    library.add_text("When a problem has units, keep them in the answer.")

    def advantage(request: ChatRequest) -> str:
        operations = [{"op": "delete", "experience_id": "G0"}, {"op": "delete", "experience_id": "G1"}]
        return reply({"analysis": "G0 misled the wrong attempts.", "operations": operations})

    report, library, _, _ = await learn(
        auto(epochs=1, batch_size=16, max_operations=2),
        library=library,
        policy_fn=citing_policy(misleading),
        reflect_fn=reflector(advantage=advantage),
    )

    step = report.steps[0]
    assert step.rejection_counts.get("delete_without_evidence") == step.groups_kept
    assert [item.experience_ids for item in step.applied] == [[bad]]
    assert [entry.text for entry in await library.entries()] == ["When a problem has units, keep them in the answer."]


async def test_auto_reads_a_group_whole_when_it_fits_and_summarizes_it_when_it_does_not() -> None:
    _, _, _, whole = await learn(auto(epochs=1, batch_size=16))
    assert whole.calls_for("summary") == []
    advantage = whole.calls_for("advantage")[0].messages[-1].content
    assert "Attempt 1 (correct)" in advantage and "\\boxed{" in advantage

    def verbose(request: ChatRequest, choice: int) -> str:
        return "thinking " * 400 + policy(request, choice)

    _, _, _, summarized = await learn(auto(epochs=1, batch_size=16, trajectory_token_budget=1000), policy_fn=verbose)
    kept = len(summarized.calls_for("advantage"))
    assert kept > 0 and len(summarized.calls_for("summary")) == 5 * kept
    assert "Summary of attempt 1" in summarized.calls_for("advantage")[0].messages[-1].content


async def test_generation_settings_reach_every_request() -> None:
    config = auto(
        epochs=1,
        reflection_input="summaries",
        max_completion_tokens=777,
        reflect_max_tokens=555,
        top_p=0.9,
        rollout_temperature=0.6,
        extraction_temperature=0.1,
    )
    _, _, policy_backend, reflect = await learn(config)

    assert {(call.max_tokens, call.top_p, call.temperature) for call in policy_backend.calls} == {(777, 0.9, 0.6)}
    assert {(call.max_tokens, call.temperature) for call in reflect.calls} == {(555, 0.1)}


async def test_the_context_window_caps_max_tokens() -> None:
    _, _, policy_backend, _ = await learn(auto(epochs=1, context_tokens=300))
    caps = {call.max_tokens for call in policy_backend.calls}
    assert all(cap is not None and 200 < cap < 300 for cap in caps)


async def test_experiences_go_in_the_system_prompt_or_after_the_problem_in_the_user_turn() -> None:
    library = InMemoryLibrary()
    library.add_text(LESSON)
    _, _, system_backend, _ = await learn(auto(epochs=1), library=library)
    library = InMemoryLibrary()
    library.add_text(LESSON)
    _, _, user_backend, _ = await learn(auto(epochs=1, placement="user"), library=library)

    system_call, user_call = system_backend.calls[0], user_backend.calls[0]
    assert LESSON in system_call.messages[0].content and LESSON not in system_call.messages[1].content
    question = user_call.messages[1].content
    assert LESSON not in user_call.messages[0].content and LESSON in question
    assert question.index("What is") < question.index("read the experiences below") < question.index(LESSON)


async def test_group_size_one_learns_with_attempts_read_whole() -> None:
    report, library, _, reflect = await learn(auto(epochs=1, group_size=1))
    assert [step.groups_kept for step in report.steps] == [8, 8]
    assert reflect.calls_for("summary") == []
    assert "single attempt" in reflect.calls_for("advantage")[0].messages[-1].content
    assert [entry.text for entry in await library.entries()] == [LESSON]


async def test_without_ground_truth_every_group_is_reflected_on_ungraded_and_gives_no_credit() -> None:
    problems = [Problem(problem_id=p.problem_id, question=p.question) for p in addition_problems(6)]
    report, _, _, reflect = await learn(auto(epochs=1, ground_truth=False), problems=problems)

    assert report.steps[0].groups_kept == 6 and report.steps[0].credit == {}
    advantage = reflect.calls_for("advantage")[0].messages[-1].content
    assert "not graded" in advantage and "Ground truth" not in advantage and "(correct" not in advantage


async def test_a_group_that_fails_is_retried_in_the_next_step_with_its_paid_attempts() -> None:
    problems = addition_problems(16)
    doomed = problems[0]
    failures = 0

    def summary_once(request: ChatRequest) -> str:
        raise AssertionError("auto mode reads these groups whole")

    def advantage(request: ChatRequest) -> str:
        nonlocal failures
        if doomed.question in request.messages[-1].content and failures == 0:
            failures += 1
            raise BackendError("bad request", status=400)
        return default_advantage(request)

    def one_wrong(request: ChatRequest, choice: int) -> str:
        return "Answer: \\boxed{0}" if choice == 0 else policy(request, choice)

    report, _, policy_backend, _ = await learn(
        auto(epochs=1),
        policy_fn=one_wrong,
        problems=problems,
        reflect_fn=reflector(summary=summary_once, advantage=advantage),
    )

    failed_step = next(step for step in report.steps if step.groups_failed)
    later = report.steps[report.steps.index(failed_step) + 1]
    assert doomed.problem_id in later.problem_ids and later.groups_recovered == 1
    rollouts_of_doomed = [call for call in policy_backend.calls if doomed.question in call.messages[-1].content]
    assert len(rollouts_of_doomed) == 1  # the retry reused the paid attempts
    assert report.status == "succeeded" and report.failed_groups == []


async def test_a_group_that_keeps_failing_leaves_the_run_incomplete_not_succeeded() -> None:
    problems = addition_problems(8)
    doomed = problems[3]

    def flaky(request: ChatRequest, choice: int) -> str:
        if doomed.question in request.messages[-1].content:
            raise BackendError("this problem is refused", status=400)
        return policy(request, choice)

    report, _, _, _ = await learn(auto(epochs=1), policy_fn=flaky, problems=problems)

    assert report.status == "incomplete" and report.failed_groups == [doomed.problem_id]
    assert report.steps[-1].recovery and report.stop_reason == "finished"
    assert "incomplete" in format_report(report)


async def test_proposals_pending_after_the_last_step_are_consolidated_in_a_recovery_step() -> None:
    calls = 0

    def consolidation(request: ChatRequest) -> str:
        nonlocal calls
        calls += 1
        return "not json" if calls <= 3 else reply({"reasoning": "", "decisions": [], "operations": []})

    report, library, _, _ = await learn(
        auto(epochs=1, batch_size=16), reflect_fn=reflector(consolidation=consolidation)
    )

    first, recovery = report.steps
    assert first.pending_operations > 0 and recovery.recovery and recovery.groups_seen == 0
    assert report.pending_operations == [] and report.status == "succeeded"
    assert [entry.text for entry in await library.entries()] == [LESSON]


async def test_the_report_serializes_with_dispositions_credit_and_status() -> None:
    report, _, _, _ = await learn(auto(epochs=1))
    assert RunReport.model_validate_json(report.model_dump_json()) == report
