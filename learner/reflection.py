"""Summary, group advantage and consolidation: the stages that turn graded attempts into library edits."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from debrief.learner.aliases import AliasMap, alias_operation, resolve_operation
from debrief.learner.backend import ChatRequest, estimate_tokens
from debrief.learner.calls import Caller
from debrief.learner.config import RunConfig
from debrief.learner.datasets import Problem
from debrief.learner.operations import AddOperation, DeleteOperation, ModifyOperation, Operation
from debrief.learner.prompts import (
    Grade,
    advantage_messages,
    consolidation_messages,
    judge_messages,
    shorten_objection,
    split_to_budget,
    summary_messages,
)
from debrief.learner.records import Proposal, ProposalRecord, RejectedRecord
from debrief.learner.structured import ask_structured
from debrief.learner.words import MAX_EXPERIENCE_WORDS, count_words, normalize_experience_text

_CITED = re.compile(r"\bG(\d+)\b")


class AttemptSummary(BaseModel):
    """The summary of one attempt (or of one part of a long attempt)."""

    summary: str = Field(
        description="The attempt step by step: what each step did, which experience (by id) it used, what came of "
        "it, and where it took a detour or went wrong."
    )
    experiences_used: list[str] = Field(
        default_factory=list, description="Ids of the experiences the attempt used (e.g. G3); empty if none."
    )


class GroupAdvantage(BaseModel):
    """What separated the better attempts from the worse, and the library edits that would teach it."""

    analysis: str = Field(
        description="Your reasoning in full, before any edit: the key decisions of the better attempts, where and why "
        "the worse ones went wrong, and which experiences were missing, too weak or misleading."
    )
    operations: list[Operation] = Field(
        default_factory=list, description="Proposed library operations (ids as shown, e.g. G3); may be empty."
    )


class ProposalDecision(BaseModel):
    """Consolidation's decision on one proposal it does not apply as proposed."""

    proposal: str = Field(description="The proposal, e.g. P2.")
    decision: Literal["drop", "merge"] = Field(
        description="drop: not applied; merge: folded into another proposal (P1) or an existing experience (G3)."
    )
    into: str | None = Field(default=None, description="For merge: the proposal or experience it goes into.")
    text: str | None = Field(
        default=None, description="For merge: the combined sentence replacing the target's text, if it should change."
    )
    reason: str = Field(description="Why.")


class ConsolidationPlan(BaseModel):
    """The final edits of one batch: proposals apply unless a decision drops or merges them."""

    reasoning: str = Field(description="Which proposals were merged or dropped, which experiences edited, and why.")
    decisions: list[ProposalDecision] = Field(
        default_factory=list, description="Only for proposals you drop or merge; the others are applied as proposed."
    )
    operations: list[Operation] = Field(
        default_factory=list,
        description="Further edits of existing experiences (merge, modify, delete by id, e.g. G3); may be empty.",
    )


class JudgeVerdict(BaseModel):
    """A judge's grade of one response."""

    reasoning: str = Field(description="Brief reasons for the verdict.")
    verdict: Literal["correct", "incorrect"] = Field(description="Whether the final answer is correct.")


@dataclass(frozen=True, kw_only=True)
class ReflectSettings:
    """The run settings reflection needs."""

    temperature: float
    max_operations: int
    trajectory_token_budget: int
    max_reasks: int
    max_tokens: int | None = None

    @classmethod
    def of(cls, config: RunConfig) -> ReflectSettings:
        """The reflection settings of ``config``."""
        budget = config.trajectory_token_budget
        if config.context_tokens is not None:
            # leave room for the instructions, the library and the reply
            budget = min(budget, max(50, config.context_tokens // 2))
        return cls(
            temperature=config.extraction_temperature,
            max_operations=config.max_operations,
            trajectory_token_budget=budget,
            max_reasks=config.max_reasks,
            max_tokens=config.reflect_max_tokens,
        )


def _texts(value: GroupAdvantage | ConsolidationPlan) -> list[str]:
    texts = [operation.text for operation in value.operations if not isinstance(operation, DeleteOperation)]
    if isinstance(value, ConsolidationPlan):
        texts += [decision.text for decision in value.decisions if decision.text]
    return texts


def _cap_check(value: GroupAdvantage | ConsolidationPlan) -> str | None:
    over = [text for text in _texts(value) if count_words(text) > MAX_EXPERIENCE_WORDS]
    return shorten_objection(over) if over else None


def _cap_problem(text: str | None) -> str | None:
    if text is None:
        return None
    words = count_words(text)
    if words > MAX_EXPERIENCE_WORDS:
        return f"{words} words, over the {MAX_EXPERIENCE_WORDS}-word cap after one request to shorten"
    return None


def _resolve_checked(
    operation: Operation,
    aliases: AliasMap,
    *,
    stage: Literal["advantage", "consolidation"],
    problem_id: str | None,
) -> Operation | RejectedRecord:
    """The operation with stable ids, or why it is rejected: over the word cap, or naming an unknown alias."""
    cap = _cap_problem(None if isinstance(operation, DeleteOperation) else operation.text)
    resolved = resolve_operation(operation, aliases)
    if cap is None and not isinstance(resolved, str):
        return resolved
    return RejectedRecord(
        operation=operation,
        kind="over_word_cap" if cap is not None else "unknown_experience",
        reason=cap if cap is not None else str(resolved),
        stage=stage,
        problem_id=problem_id,
    )


def cited_ids(text: str, aliases: AliasMap) -> set[str]:
    """Stable ids of the experiences ``text`` cites by alias (``G3``)."""
    found: set[str] = set()
    for match in _CITED.finditer(text):
        key = aliases.resolve(f"G{match.group(1)}")
        if key is not None:
            found.add(key)
    return found


@dataclass(frozen=True, kw_only=True)
class Summary:
    """One attempt's summary and the experiences (stable ids) it used."""

    text: str
    used: frozenset[str]
    parts: int = 1


async def summarize(
    caller: Caller,
    settings: ReflectSettings,
    *,
    aliases: AliasMap,
    problem: Problem,
    attempt: str,
    grade: Grade | None,
    show_answer: bool,
) -> Summary:
    """Summarize one attempt step by step; an attempt over the trajectory budget is read in consecutive parts.

    Each part is shown the summaries of the parts before it; the summary is every part's summary in order, so
    nothing of the attempt is cut.
    """
    chunks = split_to_budget(attempt, settings.trajectory_token_budget)
    parts: list[str] = []
    used: set[str] = cited_ids(attempt, aliases)
    for number, chunk in enumerate(chunks, start=1):
        request = ChatRequest(
            role="reflect",
            stage="summary",
            temperature=settings.temperature,
            max_tokens=settings.max_tokens,
            messages=summary_messages(
                experiences=aliases.render(),
                question=problem.question,
                answer=problem.answer if show_answer else None,
                attempt=chunk,
                grade=grade,
                part=(number, len(chunks)),
                earlier=parts,
            ),
        )
        reply = await ask_structured(caller, request, AttemptSummary, max_reasks=settings.max_reasks)
        parts.append(reply.summary if len(chunks) == 1 else f"Part {number} of {len(chunks)}: {reply.summary}")
        used |= {key for name in reply.experiences_used if (key := aliases.resolve(name)) is not None}
        used |= cited_ids(reply.summary, aliases)
    return Summary(text="\n".join(parts), used=frozenset(used), parts=len(chunks))


def fits_whole(attempts: Sequence[str], settings: ReflectSettings) -> bool:
    """Whether a group's attempts together fit the text one reflection call reads."""
    return sum(estimate_tokens(text) for text in attempts) <= settings.trajectory_token_budget


async def group_advantage(
    caller: Caller,
    settings: ReflectSettings,
    *,
    aliases: AliasMap,
    problem: Problem,
    summaries: Sequence[tuple[str, Grade | None]],
    show_answer: bool,
    whole: bool = False,
    evidence: Collection[str] | None = None,
    step: int | None = None,
) -> tuple[list[Proposal], list[RejectedRecord]]:
    """Ask one group for at most ``max_operations`` proposals; return them with stable ids, and the rejects.

    ``summaries`` come best first (summaries, or the attempts themselves when ``whole``). A delete is kept only
    when ``evidence`` (stable ids used by the group's worse attempts) names its experience; ``None`` means the
    group cannot tell (no grades), and then no delete is kept either: deletes come from consolidation.
    """
    request = ChatRequest(
        role="reflect",
        stage="advantage",
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
        messages=advantage_messages(
            experiences=aliases.render(),
            question=problem.question,
            answer=problem.answer if show_answer else None,
            summaries=summaries,
            max_operations=settings.max_operations,
            whole=whole,
        ),
    )
    reply = await ask_structured(caller, request, GroupAdvantage, max_reasks=settings.max_reasks, check=_cap_check)
    proposals: list[Proposal] = []
    rejected: list[RejectedRecord] = []
    for number, operation in enumerate(reply.operations):
        if number >= settings.max_operations:
            rejected.append(
                RejectedRecord(
                    operation=operation,
                    kind="beyond_max_operations",
                    reason=f"a group may propose at most {settings.max_operations} operation(s)",
                    stage="advantage",
                    problem_id=problem.problem_id,
                )
            )
            continue
        checked = _resolve_checked(operation, aliases, stage="advantage", problem_id=problem.problem_id)
        if isinstance(checked, RejectedRecord):
            rejected.append(checked)
            continue
        if isinstance(checked, DeleteOperation) and checked.experience_id not in (evidence or ()):
            rejected.append(
                RejectedRecord(
                    operation=operation,
                    kind="delete_without_evidence",
                    reason="no worse attempt of this group used the experience; deletes need evidence in the group "
                    "(consolidation or validation may still retire it)",
                    stage="advantage",
                    problem_id=problem.problem_id,
                )
            )
            continue
        prefix = "" if step is None else f"{step}."
        proposals.append(
            Proposal(
                operation=checked,
                problem_id=problem.problem_id,
                proposal_id=f"{prefix}{problem.problem_id}.{len(proposals) + 1}",
            )
        )
    return proposals, rejected


@dataclass(frozen=True, kw_only=True)
class SettledPlan:
    """A batch's plan with the origin of each operation, and the proposals already decided."""

    operations: list[Operation]
    origins: list[str | None]
    """Per operation, the proposal it carries (``None``: consolidation's own edit)."""
    decided: list[ProposalRecord]
    """Proposals merged, dropped or rejected before apply."""
    merged_into: dict[str, str]
    """Proposal id -> proposal id it was merged into (resolved to an experience after apply)."""
    rejected: list[RejectedRecord]


def _record(
    proposal: Proposal,
    disposition: Literal["merged", "rejected", "dropped", "pending"],
    reason: str,
    *,
    into: str | None = None,
    stage: Literal["advantage", "consolidation", "apply"] = "consolidation",
) -> ProposalRecord:
    return ProposalRecord(
        proposal_id=proposal.proposal_id,
        problem_id=proposal.problem_id,
        operation=proposal.operation,
        disposition=disposition,
        into=into,
        reason=reason,
        stage=stage,
    )


def _same_edit(operation: Operation) -> tuple[object, ...]:
    if isinstance(operation, DeleteOperation):
        return ("delete", operation.experience_id)
    target = getattr(operation, "experience_id", None) or tuple(getattr(operation, "experience_ids", ()))
    return (operation.op, target, normalize_experience_text(operation.text).lower())


def _with_text(operation: Operation, text: str) -> Operation:
    if isinstance(operation, DeleteOperation):
        return operation
    return operation.model_copy(update={"text": text})


async def consolidate(
    caller: Caller,
    settings: ReflectSettings,
    *,
    aliases: AliasMap,
    proposals: Sequence[Proposal],
    credit_lines: dict[str, str] | None = None,
) -> SettledPlan:
    """Turn a batch's proposals into the final plan (stable ids) for the library in ``aliases``.

    Default-keep, as the paper's pipeline: every proposal is applied unless consolidation drops or merges it
    with a reason, so a proposal is never lost by being left out of a reply. Exact repeats of an earlier
    proposal are merged into it here, without the model. ``credit_lines`` annotate library entries (by stable
    id) with their evidence so far.
    """
    decided: list[ProposalRecord] = []
    rejected: list[RejectedRecord] = []
    shown: list[tuple[str, Proposal, Operation]] = []
    first_of: dict[tuple[object, ...], str] = {}
    merged_into: dict[str, str] = {}
    holders = {normalize_experience_text(entry.text).lower(): entry.experience_id for entry in aliases.entries}
    for proposal in proposals:
        if isinstance(proposal.operation, AddOperation):
            holder = holders.get(normalize_experience_text(proposal.operation.text).lower())
            if holder is not None:
                decided.append(_record(proposal, "merged", "the library already holds this text", into=holder))
                continue
        aliased = alias_operation(proposal.operation, aliases)
        if isinstance(aliased, str):
            rejected.append(
                RejectedRecord(
                    operation=proposal.operation,
                    kind="stale",
                    reason=aliased,
                    stage="consolidation",
                    problem_id=proposal.problem_id,
                )
            )
            decided.append(_record(proposal, "rejected", aliased))
            continue
        key = _same_edit(proposal.operation)
        if key in first_of:
            merged_into[proposal.proposal_id] = first_of[key]
            decided.append(_record(proposal, "merged", f"the same edit as {first_of[key]}", into=first_of[key]))
            continue
        first_of[key] = proposal.proposal_id
        shown.append((f"P{len(shown) + 1}", proposal, aliased))
    if not shown:
        return SettledPlan(operations=[], origins=[], decided=decided, merged_into=merged_into, rejected=rejected)
    library = _annotated(aliases, credit_lines or {})
    request = ChatRequest(
        role="reflect",
        stage="consolidation",
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
        messages=consolidation_messages(
            experiences=library, proposals=[(label, aliased) for label, _, aliased in shown]
        ),
    )
    plan = await ask_structured(caller, request, ConsolidationPlan, max_reasks=settings.max_reasks, check=_cap_check)
    return _settle(plan, shown, aliases, decided, merged_into, rejected)


def _annotated(aliases: AliasMap, credit_lines: dict[str, str]) -> str:
    lines = []
    for line, entry in zip(aliases.render().splitlines(), aliases.entries, strict=True):
        note = credit_lines.get(entry.experience_id)
        lines.append(f"{line} ({note})" if note else line)
    return "\n".join(lines)


def _settle(  # noqa: C901 - one branch per consolidation decision (drop, merge, keep, edit), in order
    plan: ConsolidationPlan,
    shown: list[tuple[str, Proposal, Operation]],
    aliases: AliasMap,
    decided: list[ProposalRecord],
    merged_into: dict[str, str],
    rejected: list[RejectedRecord],
) -> SettledPlan:
    by_label = {label: proposal for label, proposal, _ in shown}
    texts: dict[str, str] = {}
    extra: list[tuple[Operation, str]] = []
    out: set[str] = set()
    for decision in plan.decisions:
        label = decision.proposal.strip().strip("[]").upper()
        proposal = by_label.get(label)
        if proposal is None or label in out:
            continue
        if decision.decision == "drop":
            out.add(label)
            decided.append(_record(proposal, "dropped", decision.reason))
            continue
        target = (decision.into or "").strip().strip("[]")
        if target.upper() in by_label and target.upper() != label and target.upper() not in out:
            out.add(label)
            target_proposal = by_label[target.upper()]
            merged_into[proposal.proposal_id] = target_proposal.proposal_id
            if decision.text and _cap_problem(decision.text) is None:
                texts[target.upper()] = decision.text
            decided.append(_record(proposal, "merged", decision.reason, into=target_proposal.proposal_id))
            continue
        experience = aliases.resolve(target) if target else None
        if experience is not None:
            out.add(label)
            if decision.text and _cap_problem(decision.text) is None:
                modify = resolve_operation(ModifyOperation(experience_id=target, text=decision.text), aliases)
                if not isinstance(modify, str):
                    extra.append((modify, proposal.proposal_id))
            decided.append(_record(proposal, "merged", decision.reason, into=experience))
    operations: list[Operation] = []
    origins: list[str | None] = []
    for label, proposal, _ in shown:
        if label in out:
            continue
        operation = proposal.operation
        if label in texts:
            operation = _with_text(operation, texts[label])
        operations.append(operation)
        origins.append(proposal.proposal_id)
    for operation, origin in extra:
        operations.append(operation)
        origins.append(origin)
    planned = {_same_edit(operation) for operation in operations}
    for operation in plan.operations:
        checked = _resolve_checked(operation, aliases, stage="consolidation", problem_id=None)
        if isinstance(checked, RejectedRecord):
            rejected.append(checked)
            continue
        if _same_edit(checked) in planned:
            continue  # a restated proposal: it is applied once, as the proposal
        planned.add(_same_edit(checked))
        operations.append(checked)
        origins.append(None)
    return SettledPlan(
        operations=operations, origins=origins, decided=decided, merged_into=merged_into, rejected=rejected
    )


async def judge_response(caller: Caller, settings: ReflectSettings, problem: Problem, response: str) -> bool:
    """Ask the judge model whether ``response`` is correct."""
    request = ChatRequest(
        role="judge",
        stage="judge",
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
        messages=judge_messages(question=problem.question, answer=problem.answer, response=response),
    )
    verdict = await ask_structured(caller, request, JudgeVerdict, max_reasks=settings.max_reasks)
    return verdict.verdict == "correct"
