from __future__ import annotations

import json

import anyio
import pytest

from debrief.learner import (
    Backends,
    ConfigError,
    FunctionBackend,
    InMemoryLibrary,
    Problem,
    ProgressEvent,
    RunReport,
    format_report,
    make_verifier,
    run_learning,
)
from debrief.learner.backend import ChatRequest
from debrief.learner.errors import BackendError
from debrief.learner.run import plan_steps
from tests.learner.scripted import (
    LESSON,
    addition_problems,
    default_summary,
    library_text,
    policy,
    proposals_of,
    reflector,
    reply,
)
from tests.support.learning import learn, small

pytestmark = pytest.mark.anyio


async def test_the_lesson_is_learned_in_the_first_step_and_later_steps_score_higher() -> None:
    report, library, _, _ = await learn(small())

    texts = [entry.text for entry in await library.entries()]
    assert texts == [LESSON]
    first, *later = report.steps
    assert [item.operation.op for item in first.applied] == ["add"]
    assert first.mean_reward is not None and first.mean_reward < 0.5
    assert all(step.mean_reward is not None and step.mean_reward > 0.75 for step in later)
    assert report.stop_reason == "finished"
    assert len(report.steps) == report.total_steps == 6


async def test_applied_changes_carry_learned_provenance_with_run_step_and_groups() -> None:
    _, library, _, _ = await learn(small(epochs=1))

    version, provenance, _, result = library.changes[0]
    assert version == 1
    assert provenance.kind == "learned"
    assert provenance.run_id == "test" and provenance.step == 0
    assert provenance.groups and result.applied[0].experience_ids == ("E1",)


async def test_only_mixed_groups_are_reflected_on_with_ground_truth() -> None:
    report, _, _, reflect = await learn(small(epochs=1, batch_size=16))

    step = report.steps[0]
    for group in step.groups:
        assert group.rewards is not None
        mean = sum(group.rewards) / len(group.rewards)
        assert group.kept == (0 < mean < 1)
    kept = sum(group.kept for group in step.groups)
    assert 0 < kept < 16
    assert len(reflect.calls_for("summary")) == 5 * kept
    assert len(reflect.calls_for("advantage")) == kept
    assert len(reflect.calls_for("consolidation")) == 1


async def test_without_ground_truth_every_group_is_reflected_on_with_grades_hidden() -> None:
    problems = [Problem(problem_id=p.problem_id, question=p.question) for p in addition_problems(6)]
    report, _, _, reflect = await learn(small(epochs=1, ground_truth=False), problems=problems, verifier="exact")

    assert report.steps[0].groups_kept == 6
    assert report.steps[0].mean_reward is None
    summaries = reflect.calls_for("summary")
    assert len(summaries) == 30
    assert all("not graded" in call.messages[-1].content for call in summaries)
    assert not any("Ground truth" in call.messages[-1].content for call in reflect.calls)
    assert all("(correct)" not in call.messages[-1].content for call in reflect.calls_for("advantage"))


async def test_with_group_size_one_each_attempt_is_reflected_on_alone() -> None:
    report, library, policy_backend, reflect = await learn(small(epochs=1, group_size=1))

    assert [step.groups_kept for step in report.steps] == [8, 8]
    assert len(policy_backend.calls) == 16
    assert all(call.n == 1 for call in policy_backend.calls)
    assert len(reflect.calls_for("advantage")) == 16
    assert "single attempt" in reflect.calls_for("advantage")[0].messages[-1].content
    assert [entry.text for entry in await library.entries()] == [LESSON]


async def test_a_group_is_summarized_while_another_groups_attempts_are_still_running() -> None:
    problems = addition_problems(2)
    fast, slow = problems
    fast_summarized = anyio.Event()

    async def gated_policy(request: ChatRequest, choice: int) -> str:
        if slow.question in request.messages[-1].content:
            await fast_summarized.wait()
        return policy(request, choice) if choice else "Answer: \\boxed{0}"

    def summary(request: ChatRequest) -> str:
        if fast.question in request.messages[-1].content:
            fast_summarized.set()
        return reply({"summary": "ok"})

    report, _, _, _ = await learn(
        small(epochs=1, batch_size=2), policy_fn=gated_policy, reflect_fn=reflector(summary=summary), problems=problems
    )
    assert fast_summarized.is_set()
    assert report.steps[0].groups_failed == 0


async def test_the_barrier_schedule_learns_the_same_library() -> None:
    _, pipelined, _, _ = await learn(small())
    _, barrier, _, _ = await learn(small(schedule="barrier"))

    assert await pipelined.entries() == await barrier.entries()


async def test_deletes_and_merges_from_consolidation_are_applied() -> None:
    library = InMemoryLibrary()
    first = library.add_text("When adding, carry.")
    second = library.add_text("When adding numbers, remember to carry.")
    wrong = library.add_text("When adding, always subtract ten.")

    def consolidation(request: ChatRequest) -> str:
        return reply(
            {
                "reasoning": "G0 and G1 say the same; G2 is wrong.",
                "decisions": [
                    {"proposal": label, "decision": "drop", "reason": "covered by the merge"}
                    for label in proposals_of(request)
                ],
                "operations": [
                    {"op": "merge", "experience_ids": ["G0", "G1"], "text": "When adding, carry into the next column."},
                    {"op": "delete", "experience_id": "G2"},
                ],
            }
        )

    report, library, _, _ = await learn(
        small(epochs=1, batch_size=16), library=library, reflect_fn=reflector(consolidation=consolidation)
    )

    assert [entry.text for entry in await library.entries()] == ["When adding, carry into the next column."]
    fates = {fate.proposal_id: fate for fate in report.steps[0].proposals}
    dropped = {key for key, fate in fates.items() if fate.disposition == "dropped"}
    assert len(dropped) == 1  # the groups proposed the same lesson: one shown, the repeats merged into it
    assert all(fate.into in dropped for fate in fates.values() if fate.disposition == "merged")
    applied = report.steps[0].applied
    assert [item.operation.op for item in applied] == ["merge", "delete"]
    assert applied[0].operation.model_dump()["experience_ids"] == [first, second]
    assert applied[1].experience_ids == [wrong]


async def test_prompts_show_aliases_and_proposals_map_back_to_stable_ids() -> None:
    library = InMemoryLibrary()
    library.add_text("When adding, look at the ones digit.")
    stable = library.add_text("When unsure, estimate first.")

    def advantage(request: ChatRequest) -> str:
        assert "[G1]. When unsure, estimate first." in library_text(request)
        return reply({"analysis": "", "operations": [{"op": "modify", "experience_id": "G1", "text": LESSON}]})

    def consolidation(request: ChatRequest) -> str:
        assert '"experience_id": "G1"' in request.messages[-1].content
        return reply({"reasoning": "", "operations": [{"op": "modify", "experience_id": "G1", "text": LESSON}]})

    report, library, _, _ = await learn(
        small(epochs=1, batch_size=16),
        library=library,
        reflect_fn=reflector(advantage=advantage, consolidation=consolidation),
    )

    assert report.steps[0].applied[0].experience_ids == [stable]
    assert {e.experience_id: e.text for e in await library.entries()}[stable] == LESSON


async def test_an_over_long_experience_is_sent_back_once_then_rejected_with_a_reason() -> None:
    long_text = " ".join(["word"] * 40)
    asked: list[ChatRequest] = []

    def advantage(request: ChatRequest) -> str:
        asked.append(request)
        return reply({"analysis": "", "operations": [{"op": "add", "text": long_text}]})

    report, library, _, _ = await learn(small(epochs=1, batch_size=16), reflect_fn=reflector(advantage=advantage))

    kept = report.steps[0].groups_kept
    assert len(asked) == 2 * kept
    assert any("longer than 32 words" in message.content for message in asked[-1].messages)
    assert report.steps[0].rejection_counts == {"over_word_cap": kept}
    assert report.steps[0].operations_proposed == 0
    assert await library.entries() == []


async def test_a_shortened_experience_is_accepted() -> None:
    def advantage(request: ChatRequest) -> str:
        shortened = any("longer than 32 words" in message.content for message in request.messages)
        text = LESSON if shortened else " ".join(["word"] * 40)
        return reply({"analysis": "", "operations": [{"op": "add", "text": text}]})

    report, library, _, _ = await learn(small(epochs=1), reflect_fn=reflector(advantage=advantage))

    assert [entry.text for entry in await library.entries()] == [LESSON]
    assert report.steps[0].rejection_counts == {}


async def test_operations_beyond_max_operations_are_rejected() -> None:
    def advantage(request: ChatRequest) -> str:
        return reply({"analysis": "", "operations": [{"op": "add", "text": LESSON}, {"op": "add", "text": "Also x."}]})

    report, _, _, _ = await learn(small(epochs=1), reflect_fn=reflector(advantage=advantage))

    step = report.steps[0]
    assert step.rejection_counts == {"beyond_max_operations": step.groups_kept}


async def test_a_failed_consolidation_leaves_its_proposals_pending_for_the_next_step() -> None:
    calls = 0

    def consolidation(request: ChatRequest) -> str:
        nonlocal calls
        calls += 1
        if calls <= 3:  # the first consolidation and both of its re-asks
            return "not json at all"
        return reply({"reasoning": "", "operations": [{"op": "add", "text": LESSON}]})

    report, library, _, _ = await learn(
        small(epochs=1, batch_size=8), reflect_fn=reflector(consolidation=consolidation)
    )

    first, second = report.steps
    assert first.consolidation_error is not None and "invalid" in first.consolidation_error
    assert first.pending_operations == first.operations_proposed > 0
    assert first.applied == []
    assert second.operations_proposed >= first.pending_operations
    assert second.pending_operations == 0
    assert [entry.text for entry in await library.entries()] == [LESSON]
    assert "consolidation failed" in format_report(report)


async def test_a_failed_group_is_recorded_with_its_error_and_the_step_goes_on() -> None:
    problems = addition_problems(4)

    def flaky(request: ChatRequest, choice: int) -> str:
        if problems[0].question in request.messages[-1].content:
            raise BackendError("upstream said no", status=503)
        return policy(request, choice)

    report, _, _, _ = await learn(small(epochs=1), policy_fn=flaky, problems=problems)

    step = report.steps[0]
    failed = [group for group in step.groups if group.error is not None]
    assert [group.problem_id for group in failed] == [problems[0].problem_id]
    assert failed[0].error is not None and "upstream said no" in failed[0].error
    assert step.groups_failed == 1 and step.groups_seen == 4


async def test_a_failed_summary_is_recorded_on_its_group_and_the_step_goes_on() -> None:
    problems = addition_problems(8)
    doomed: list[str] = []

    def summary(request: ChatRequest) -> str:
        question = next(p.question for p in problems if p.question in request.messages[-1].content)
        if not doomed:
            doomed.append(question)
        if question == doomed[0]:
            raise BackendError("summary endpoint is down", status=503)
        return default_summary(request)

    report, library, _, _ = await learn(small(epochs=1), problems=problems, reflect_fn=reflector(summary=summary))

    step = report.steps[0]
    failed = {group.problem_id: group.error for group in step.groups if group.error is not None}
    doomed_id = next(p.problem_id for p in problems if p.question == doomed[0])
    assert failed == {doomed_id: "summaries: summary endpoint is down"}
    assert step.groups_failed == 1 and step.groups_kept > 1
    assert [entry.text for entry in await library.entries()] == [LESSON]


async def test_a_verifier_that_raises_scores_zero_and_is_counted() -> None:
    report, _, _, _ = await learn(small(epochs=1), verifier="tests.learner.verifier_helpers:explode")

    step = report.steps[0]
    assert step.verifier_errors == 8 * 5
    assert step.mean_reward == 0.0
    assert step.groups_kept == 0


async def test_a_request_that_would_overrun_the_token_budget_is_not_sent() -> None:
    report, _, policy_backend, _ = await learn(small(budget_tokens=1))

    assert report.stop_reason == "budget" and report.status == "budget"
    assert policy_backend.calls == []
    assert report.total.total_tokens == 0
    assert report.stop_detail is not None and "budget" in report.stop_detail
    assert len(report.failed_groups) == 8  # retried when the run is resumed with a larger budget


async def test_a_budget_running_out_mid_step_is_never_overspent() -> None:
    # each rollout reserves its prompt plus 5 x 200 completion tokens; real replies are far shorter
    budget = 9_000
    report, _, policy_backend, _ = await learn(small(epochs=1, budget_tokens=budget, max_completion_tokens=200))

    assert report.stop_reason == "budget"
    assert 0 < len(policy_backend.calls) < 16
    assert 0 < report.total.total_tokens <= budget


async def test_cost_is_computed_from_the_price_table() -> None:
    prices = {"models": {"policy-model": {"input_per_million": 1.0, "output_per_million": 2.0}}}
    report, _, _, _ = await learn(small(epochs=1, prices=prices))

    rollout = report.tokens["rollout"]
    assert rollout.cost_usd == pytest.approx((rollout.prompt_tokens + 2 * rollout.completion_tokens) / 1e6)
    assert report.tokens["summary"].cost_usd == 0.0
    assert report.total.requests == sum(step.total.requests for step in report.steps)


async def test_setting_cancel_stops_the_run_between_steps() -> None:
    cancel = anyio.Event()
    events: list[ProgressEvent] = []

    def on_event(event: ProgressEvent) -> None:
        events.append(event)
        if event.kind == "step_finished":
            cancel.set()

    with anyio.fail_after(30):
        report = await run_learning(
            small(),
            backends=Backends(policy=FunctionBackend(policy), reflect=FunctionBackend(reflector())),
            library=InMemoryLibrary(),
            problems=addition_problems(16),
            verifier=make_verifier("exact"),
            on_event=on_event,
            cancel=cancel,
        )
    assert report.stop_reason == "cancelled"
    assert len(report.steps) == 1


async def test_progress_events_count_attempts_groups_operations_and_tokens() -> None:
    events: list[ProgressEvent] = []
    await learn(small(epochs=1), events=events)

    kinds = [event.kind for event in events]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert kinds.count("attempts") == 16 and kinds.count("group_done") == 16
    last = events[-1]
    assert last.attempts_done == last.attempts_total == 16 * 5
    assert last.groups_done == 16 and last.operations_applied == 1
    assert last.prompt_tokens > 0 and last.completion_tokens > 0
    done = [event.attempts_done for event in events]
    assert done == sorted(done)


async def test_group_sampling_uses_one_request_with_n_when_the_server_honours_it() -> None:
    _, _, policy_backend, _ = await learn(small(epochs=1))
    assert len(policy_backend.calls) == 16
    assert {call.n for call in policy_backend.calls} == {5}


async def test_a_backend_ignoring_n_gets_single_requests_and_the_same_attempts() -> None:
    report_n, library_n, _, _ = await learn(small(epochs=1))
    policy_single = FunctionBackend(policy, honours_n=False)
    with anyio.fail_after(30):
        report_single = await run_learning(
            small(epochs=1),
            backends=Backends(policy=policy_single, reflect=FunctionBackend(reflector())),
            library=(library_single := InMemoryLibrary()),
            problems=addition_problems(16),
            verifier=make_verifier("exact"),
        )
    # step 0's groups run together, each asks n = 5, gets 1 and asks 4 singles; step 1 sends singles only
    assert len(policy_single.calls) == 8 * (1 + 4) + 8 * 5
    assert all(call.n == 1 for call in policy_single.calls[-40:])
    assert [g.rewards for g in report_single.steps[0].groups] == [g.rewards for g in report_n.steps[0].groups]
    assert await library_single.entries() == await library_n.entries()


async def test_epochs_are_reshuffled_with_the_seed() -> None:
    plan = plan_steps(20, epochs=3, batch_size=20, seed=1)
    orders = [step.indices for step in plan]
    assert len({tuple(order) for order in orders}) == 3
    assert all(sorted(order) == list(range(20)) for order in orders)
    assert plan_steps(20, epochs=3, batch_size=20, seed=1) == plan
    assert plan_steps(20, epochs=3, batch_size=20, seed=2) != plan


async def test_problems_without_ground_truth_are_refused_before_anything_runs() -> None:
    problems = [Problem(problem_id="a", question="What is 1 + 1?")]
    backend = FunctionBackend(policy)
    with pytest.raises(ConfigError, match="no ground truth"):
        await run_learning(
            small(),
            backends=Backends(policy=backend),
            library=InMemoryLibrary(),
            problems=problems,
            verifier=make_verifier("exact"),
        )
    assert backend.calls == []


async def test_the_judge_verifier_grades_with_the_judge_backend() -> None:
    report, _, _, reflect = await learn(small(epochs=1), verifier="judge")

    judged = reflect.calls_for("judge")
    assert len(judged) == 16 * 5
    assert all(call.role == "judge" for call in judged)
    assert report.steps[0].verifier_errors == 0
    exact, _, _, _ = await learn(small(epochs=1))
    assert [g.rewards for g in report.steps[0].groups] == [g.rewards for g in exact.steps[0].groups]


async def test_long_attempts_are_summarized_in_parts_and_nothing_is_cut() -> None:
    def verbose(request: ChatRequest, choice: int) -> str:
        return "thinking " * 2000 + policy(request, choice)

    def summary(request: ChatRequest) -> str:
        return reply({"summary": "thought, then added", "experiences_used": []})

    _, _, _, reflect = await learn(
        small(epochs=1, batch_size=16, trajectory_token_budget=1000),
        policy_fn=verbose,
        reflect_fn=reflector(summary=summary),
    )

    calls = reflect.calls_for("summary")
    first_attempt = [call for call in calls if "part 1 of 5" in call.messages[-1].content]
    assert first_attempt and len(calls) == 5 * len(first_attempt)  # 18,000+ characters in 5 parts each
    last_parts = [call.messages[-1].content for call in calls if "part 5 of 5" in call.messages[-1].content]
    assert all("\\boxed{" in text for text in last_parts)  # the answer at the end was not cut
    assert all("Summary of the attempt's earlier parts" in text for text in last_parts)
    assert not any("characters cut" in call.messages[-1].content for call in calls)


async def test_retrieval_injects_only_relevant_experiences_into_a_large_library() -> None:
    library = InMemoryLibrary()
    for number in range(60):
        library.add_text(f"Unrelated experience number {number} about geography.")
    library.add_text("When adding numbers, what is the carry?")

    policy_backend = FunctionBackend(policy)
    with anyio.fail_after(30):
        await run_learning(
            small(epochs=1, retrieve_k=3),
            backends=Backends(policy=policy_backend, reflect=FunctionBackend(reflector())),
            library=library,
            problems=addition_problems(4),
            verifier=make_verifier("exact"),
        )
    system = policy_backend.calls[0].messages[0].content
    assert "[G60]. When adding numbers, what is the carry?" in system
    assert system.count("[G") == 3


async def test_the_step_record_serializes_to_json() -> None:
    report, _, _, _ = await learn(small(epochs=1))
    again = RunReport.model_validate_json(report.model_dump_json())
    assert again == report
    assert json.loads(report.model_dump_json())["steps"][0]["tokens"]["rollout"]["requests"] == 8
