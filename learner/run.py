"""The learning loop: epochs of seeded-shuffled batches, one step each, checkpointed, within budget."""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import anyio

from debrief.learner.accounting import Ledger, TokenCount, budget_stop_reason, total
from debrief.learner.aliases import AliasMap
from debrief.learner.apply_recovery import entries_digest, finish_interrupted_apply
from debrief.learner.backend import STAGES, Backends, Role, Stage
from debrief.learner.budget import RequestBudget
from debrief.learner.calls import Caller, RetryPolicy, StructuredMode
from debrief.learner.checkpoint import ApplyingStep, Checkpoint, RolloutRecord, RunState
from debrief.learner.config import RunConfig
from debrief.learner.consolidation import (
    Applied,
    apply_plan,
    plan_batch,
    planned_dispositions,
    settle_dispositions,
)
from debrief.learner.credit import add_credit, as_credits, credit_lines
from debrief.learner.datasets import Problem
from debrief.learner.errors import ConfigError
from debrief.learner.events import EventKind, ProgressEvent
from debrief.learner.library import CreditSink, Library, Provenance
from debrief.learner.operations import Operation
from debrief.learner.records import ProposalRecord, RunReport, RunStatus, StepRecord, StopReason
from debrief.learner.step import GroupWork, StepContext, rejection_counts, run_groups
from debrief.learner.validation import ValidationGate, gate_plan
from debrief.learner.verifiers import Verifier

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class PlannedStep:
    """Which problems one step takes."""

    epoch: int
    batch: int
    indices: tuple[int, ...]


def plan_steps(count: int, *, epochs: int, batch_size: int, seed: int) -> list[PlannedStep]:
    """Every step of a run: each epoch shuffles the problems with its own seed, then cuts them into batches."""
    steps: list[PlannedStep] = []
    for epoch in range(epochs):
        order = list(range(count))
        random.Random(seed * 1_000_003 + epoch).shuffle(order)
        for batch, start in enumerate(range(0, count, batch_size)):
            steps.append(PlannedStep(epoch=epoch, batch=batch, indices=tuple(order[start : start + batch_size])))
    return steps


def _validate(config: RunConfig, problems: Sequence[Problem], verifier: Verifier) -> None:
    if not problems:
        raise ConfigError("a learning run needs at least one problem")
    ids = [problem.problem_id for problem in problems]
    if len(set(ids)) != len(ids):
        raise ConfigError("problem ids must be unique; give the problems ids or drop the duplicates")
    if config.ground_truth and verifier.needs_answer:
        missing = [problem.problem_id for problem in problems if problem.answer is None]
        if missing:
            raise ConfigError(
                f"{len(missing)} problems have no ground truth (first: {missing[:5]!r}); give answers, use the "
                "'judge' verifier, or set ground_truth=False"
            )


class _Progress:
    """Run-wide counters behind the progress events."""

    def __init__(
        self, run_id: str, total_steps: int, attempts_total: int, on_event: Callable[[ProgressEvent], None] | None
    ) -> None:
        self.run_id, self.total_steps, self.attempts_total = run_id, total_steps, attempts_total
        self.on_event = on_event
        self.step = 0
        self.attempts_done = self.groups_done = self.groups_kept = self.operations_applied = 0
        self.spent = TokenCount()

    def emit(self, kind: EventKind, message: str = "") -> None:
        if self.on_event is None:
            return
        self.on_event(
            ProgressEvent(
                kind=kind,
                run_id=self.run_id,
                step=self.step,
                total_steps=self.total_steps,
                attempts_done=self.attempts_done,
                attempts_total=self.attempts_total,
                groups_done=self.groups_done,
                groups_kept=self.groups_kept,
                operations_applied=self.operations_applied,
                prompt_tokens=self.spent.prompt_tokens,
                completion_tokens=self.spent.completion_tokens,
                cost_usd=self.spent.cost_usd,
                message=message,
            )
        )


async def run_learning(  # noqa: C901 - the epoch loop: resume, budgets, cancel and events in one place
    config: RunConfig,
    *,
    backends: Backends,
    library: Library,
    problems: Sequence[Problem],
    verifier: Verifier,
    checkpoint: Checkpoint | None = None,
    on_event: Callable[[ProgressEvent], None] | None = None,
    cancel: anyio.Event | None = None,
    gate: ValidationGate | None = None,
) -> RunReport:
    """Learn experiences into ``library`` from ``problems``; continue from ``checkpoint`` if it holds a run.

    Stops cleanly between steps when ``cancel`` is set or the budget would be exceeded. A crash or cancellation
    inside a step loses nothing paid for: the step's finished rollouts are in the checkpoint and are reused.

    Raises:
        ConfigError: the problems or verifier do not fit the config, or the checkpoint holds a different run.
    """
    started = time.monotonic()
    _validate(config, problems, verifier)
    plan = plan_steps(len(problems), epochs=config.epochs, batch_size=config.batch_size, seed=config.seed)
    state = await checkpoint.load() if checkpoint is not None else None
    if state is None:
        state = RunState(run_id=config.run_id, config=config.resume_key())
    elif not _same_run(state.config, config):
        raise ConfigError(f"the checkpoint holds run {state.run_id!r} with other settings; use a fresh checkpoint")
    run_id = state.run_id
    progress = _Progress(run_id, len(plan), sum(len(step.indices) for step in plan) * config.group_size, on_event)
    progress.step = state.next_step
    progress.spent = total([step.total for step in state.steps] + list(state.step_tokens.values()))
    for record in state.steps:
        progress.attempts_done += record.groups_seen * config.group_size
        progress.groups_done += record.groups_seen
        progress.groups_kept += record.groups_kept
        progress.operations_applied += len(record.applied)

    def on_usage(count: TokenCount) -> None:
        progress.spent = progress.spent.plus(count)

    caller = Caller(
        backends,
        concurrency=config.concurrency,
        prices=config.prices,
        on_usage=on_usage,
        adaptive=config.adaptive_concurrency,
        reflect_concurrency=config.reflect_concurrency,
        retry=RetryPolicy.of(config),
        budget=RequestBudget(tokens=config.budget_tokens, usd=config.budget_usd, spent=progress.spent),
    )
    caller.honours_n.update({_role(key): value for key, value in state.honours_n.items()})
    caller.structured_modes.update({_role(key): _mode(value) for key, value in state.structured_modes.items()})
    lock = anyio.Lock()

    async def save() -> None:
        if checkpoint is None:
            return
        async with lock:
            state.honours_n = {str(role): value for role, value in caller.honours_n.items()}
            state.structured_modes = {str(role): mode for role, mode in caller.structured_modes.items()}
            state.step_tokens = {str(stage): count for stage, count in caller.ledger.by_stage.items()}
            await checkpoint.save(state)

    progress.emit("run_started")
    stop: tuple[StopReason, str | None] = ("finished", None)
    index = state.next_step
    recoveries = 0
    while True:
        marker = state.applying
        recovery = index >= len(plan)
        if recovery and not (marker is not None and marker.step == index):
            # After the planned steps: one recovery step per invocation retries failed groups, settles pending.
            if not (state.failed or state.pending) or recoveries >= 1:
                break
            recoveries += 1
        if marker is not None and marker.step == index:
            # The last run stopped between this step's apply and its checkpoint: finish it, apply at most once.
            done, landed = await finish_interrupted_apply(library, marker, run_id)
            record = await _with_apply(
                marker.record, done, library, recovered=landed, operations=marker.operations, origins=marker.origins
            )
            progress.attempts_done += record.groups_seen * config.group_size
            progress.groups_done += record.groups_seen
            progress.groups_kept += record.groups_kept
        else:
            if cancel is not None and cancel.is_set():
                stop = ("cancelled", f"cancelled before step {index}")
                break
            spent = total(step.total for step in state.steps)
            reason = budget_stop_reason(
                spent,
                [step.total for step in state.steps],
                budget_tokens=config.budget_tokens,
                budget_usd=config.budget_usd,
            )
            if reason is None and caller.budget is not None and caller.budget.exhausted is not None:
                reason = f"budget exhausted: {caller.budget.exhausted}"
            if reason is not None:
                stop = ("budget", reason)
                break
            record = await _run_step(
                config,
                plan[index] if not recovery else PlannedStep(epoch=plan[-1].epoch, batch=-1, indices=()),
                index,
                run_id,
                state,
                caller,
                library,
                problems,
                verifier,
                progress,
                save,
                gate=gate,
            )
        progress.operations_applied += len(record.applied)
        state.steps.append(record)
        state.applying = None
        state.next_step = index + 1
        _carry_failures(state, record)
        add_credit(state.credit, record.credit)
        state.rollouts = {}
        caller.ledger = Ledger(config.prices)
        caller.retried = 0
        state.finished = state.next_step >= len(plan)
        await save()
        progress.step = state.next_step
        progress.emit("step_finished", f"step {index} applied {len(record.applied)} operation(s)")
        index += 1
        if caller.budget is not None and caller.budget.exhausted is not None:
            stop = ("budget", f"budget exhausted: {caller.budget.exhausted}")
            break
    report = _report(state, len(plan), stop, time.monotonic() - started)
    progress.emit("run_finished", report.stop_reason)
    return report


def _same_run(saved: dict[str, object], config: RunConfig) -> bool:
    """Whether ``config`` continues the run whose settings were saved.

    A setting added to ``RunConfig`` after the run was saved is missing from it: it matches when ``config`` keeps
    that setting's default, so runs checkpointed by an older version still resume.
    """
    current = config.resume_key()
    defaults = RunConfig.model_construct().model_dump(mode="json")
    for name, value in current.items():
        if name in saved:
            if saved[name] != value:
                return False
        elif value != defaults.get(name):
            return False
    return set(saved) <= set(current)


def _role(name: str) -> Role:
    roles: dict[str, Role] = {"policy": "policy", "reflect": "reflect", "judge": "judge"}
    return roles[name]


def _mode(name: str) -> StructuredMode:
    modes: dict[str, StructuredMode] = {"json_schema": "json_schema", "json_object": "json_object", "plain": "plain"}
    return modes[name]


async def _run_step(
    config: RunConfig,
    planned_step: PlannedStep,
    index: int,
    run_id: str,
    state: RunState,
    caller: Caller,
    library: Library,
    problems: Sequence[Problem],
    verifier: Verifier,
    progress: _Progress,
    save: Callable[[], Awaitable[None]],
    *,
    gate: ValidationGate | None = None,
) -> StepRecord:
    started = time.monotonic()
    batch = [problems[position] for position in planned_step.indices]
    batch_ids = {problem.problem_id for problem in batch}
    # groups that failed earlier are retried in this step, with the attempts already paid for
    by_id = {problem.problem_id: problem for problem in problems}
    retried = [by_id[key] for key in state.failed if key in by_id and key not in batch_ids]
    batch += retried
    batch_ids |= {problem.problem_id for problem in retried}
    caller.ledger = Ledger(config.prices)
    caller.ledger.add({_stage(stage): count for stage, count in state.step_tokens.items()})
    reused = {key: value for key, value in state.failed_rollouts.items() if key in batch_ids}
    reused |= {key: value for key, value in state.rollouts.items() if key in batch_ids}
    progress.attempts_done += sum(len(record.responses) for record in reused.values())
    progress.emit("step_started", f"step {index}: epoch {planned_step.epoch}, batch {planned_step.batch}")

    async def on_rollout(work: GroupWork, record: RolloutRecord) -> None:
        state.rollouts[work.problem.problem_id] = record
        progress.attempts_done += len(record.responses)
        progress.emit("attempts")
        await save()

    def on_group_done(work: GroupWork) -> None:
        progress.groups_done += 1
        progress.groups_kept += int(work.kept)
        progress.emit("group_done")

    ctx = StepContext(
        config=config,
        step=index,
        caller=caller,
        library=library,
        verifier=verifier,
        aliases=AliasMap.of(await library.entries()),
        reused=reused,
        on_rollout=on_rollout,
        on_group_done=on_group_done,
    )
    works = await run_groups(ctx, batch)
    proposals = list(state.pending) + [proposal for work in works for proposal in work.proposals]
    step_credit: dict[str, tuple[int, int]] = {}
    credit_groups: dict[str, list[str]] = {}
    for work in works:
        add_credit(step_credit, work.credit)
        for key in work.credit:
            credit_groups.setdefault(key, []).append(work.problem.problem_id)
    run_credit = add_credit(dict(state.credit), step_credit)
    planned = await plan_batch(caller, ctx.reflect, library, proposals, credit_lines=credit_lines(run_credit))
    # Validation gate (issue 11, learner/validation.py): planned edits that hurt held-out problems are refused.
    planned, validation = await gate_plan(gate, planned, caller=caller, config=config, library=library)
    if planned.error is not None:
        logger.warning(
            "consolidation of step %d failed; %d proposals stay pending: %s", index, len(proposals), planned.error
        )
    state.pending = list(proposals) if planned.error is not None else []
    rejected = [item for work in works for item in work.rejected] + planned.rejected
    fates, origins = planned_dispositions(planned)
    fates = _group_rejections(works, index) + fates
    if step_credit and isinstance(library, CreditSink):
        await library.credit(
            as_credits(step_credit, groups=credit_groups),
            provenance=Provenance(kind="learned", run_id=run_id, step=index, groups=sorted(batch_ids)),
        )
    rewards = [reward for work in works if work.rewards is not None for reward in work.rewards]
    by_stage = dict(caller.ledger.by_stage)
    entries = await library.entries()
    draft = StepRecord(
        run_id=run_id,
        step=index,
        epoch=planned_step.epoch,
        batch=planned_step.batch,
        problem_ids=[problem.problem_id for problem in batch],
        groups=[work.record() for work in works],
        groups_seen=len(works),
        groups_kept=sum(work.kept for work in works),
        groups_failed=sum(work.error is not None for work in works),
        mean_reward=sum(rewards) / len(rewards) if rewards else None,
        operations_proposed=len(proposals),
        applied=[],
        rejected=rejected,
        rejection_counts=rejection_counts(rejected),
        consolidation_error=planned.error,
        pending_operations=len(state.pending),
        library_version=None,
        library_size=len(entries),
        tokens={stage: by_stage[stage] for stage in STAGES if stage in by_stage},
        total=total(by_stage.values()),
        verifier_errors=sum(work.verifier_errors for work in works),
        reused_rollouts=sum(work.reused for work in works),
        wall_seconds=time.monotonic() - started,
        proposals=fates,
        disposition_counts=dict(Counter(fate.disposition for fate in fates)),
        retried_requests=caller.retried,
        credit=step_credit,
        groups_recovered=sum(work.error is None and work.problem.problem_id in state.failed for work in works),
        recovery=planned_step.batch == -1,
        validation=validation,
    )
    if not planned.operations:
        return await _with_apply(draft, None, library, recovered=False, operations=[], origins=origins)
    marker = ApplyingStep(
        step=index,
        operations=planned.operations,
        provenance=Provenance(
            kind="learned", run_id=run_id, step=index, groups=list(dict.fromkeys(p.problem_id for p in proposals))
        ),
        reason=f"learning run {run_id} step {index}",
        entries_digest=entries_digest(entries),
        record=draft,
        origins=origins,
    )
    state.applying = marker
    await save()
    done = await apply_plan(library, marker.operations, provenance=marker.provenance, reason=marker.reason)
    record = await _with_apply(
        draft, done, library, recovered=False, operations=marker.operations, origins=marker.origins
    )
    return record.model_copy(update={"wall_seconds": time.monotonic() - started})


async def _with_apply(
    draft: StepRecord,
    done: Applied | None,
    library: Library,
    *,
    recovered: bool,
    operations: Sequence[Operation],
    origins: Sequence[str | None],
) -> StepRecord:
    fates = settle_dispositions(draft.proposals, operations, origins, done)
    update: dict[str, object] = {
        "proposals": fates,
        "disposition_counts": dict(Counter(fate.disposition for fate in fates)),
    }
    if done is None:
        return draft.model_copy(update=update)
    rejected = draft.rejected + done.rejected
    return draft.model_copy(
        update={
            **update,
            "applied": done.applied,
            "rejected": rejected,
            "rejection_counts": rejection_counts(rejected),
            "library_version": done.version,
            "library_size": len(await library.entries()),
            "apply_recovered": recovered,
        }
    )


def _group_rejections(works: Sequence[GroupWork], step: int) -> list[ProposalRecord]:
    """Proposals a group made that its own checks rejected (word cap, unknown id, no evidence, beyond max)."""
    return [
        ProposalRecord(
            proposal_id=f"{step}.{work.problem.problem_id}.r{number}",
            problem_id=work.problem.problem_id,
            operation=item.operation,
            disposition="rejected",
            reason=f"{item.kind}: {item.reason}",
            stage="advantage",
        )
        for work in works
        for number, item in enumerate(work.rejected, start=1)
    ]


def _carry_failures(state: RunState, record: StepRecord) -> None:
    """Failed groups of ``record`` wait for the next step (or a resume), keeping the attempts already paid for."""
    failed = [group.problem_id for group in record.groups if group.error is not None]
    kept: dict[str, RolloutRecord] = {}
    for key in failed:
        paid = state.rollouts.get(key) or state.failed_rollouts.get(key)
        if paid is not None:
            kept[key] = paid
    state.failed = failed
    state.failed_rollouts = kept


def _stage(name: str) -> Stage:
    for stage in STAGES:
        if stage == name:
            return stage
    raise ConfigError(f"unknown stage {name!r} in checkpoint")


def _report(state: RunState, total_steps: int, stop: tuple[StopReason, str | None], wall: float) -> RunReport:
    by_stage: dict[str, TokenCount] = {}
    for step in state.steps:
        for stage, count in step.tokens.items():
            by_stage[stage] = by_stage.get(stage, TokenCount()).plus(count)
    status: RunStatus = "succeeded"
    if stop[0] != "finished":
        status = stop[0]
    elif state.failed or state.pending:
        status = "incomplete"
    return RunReport(
        run_id=state.run_id,
        stop_reason=stop[0],
        stop_detail=stop[1],
        steps=list(state.steps),
        total_steps=total_steps,
        tokens=by_stage,
        total=total(step.total for step in state.steps),
        pending_operations=list(state.pending),
        wall_seconds=wall,
        status=status,
        failed_groups=list(state.failed),
        failed_consolidations=sum(step.consolidation_error is not None for step in state.steps),
        retried_requests=sum(step.retried_requests for step in state.steps),
    )
