"""Online utility: experiences that recorded outcomes show do not help are retired (or flagged) automatically.

The rule follows ReMe's (a memory retrieved at least 5 times that helped less than half the time is deleted),
counted on outcomes: a *use* is a recorded outcome that named the experience in ``experience_ids_used``, helpful
when the outcome succeeded. Plain retrievals without a reported outcome say nothing about help, so they do not
count. The retirement is an ordinary recorded change with the evidence as its reason and the outcome that
tipped it in its provenance, so ``explain_experience`` shows why and a rollback brings the experience back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from debrief.learner.library import Provenance
from debrief.server.errors import Conflict, NotFound
from debrief.server.settings import Settings
from debrief.server.store.experience_store import ExperienceStore
from debrief.server.store.models import Counters

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class RetireRule:
    """When an experience has earned retirement: ``min_uses`` uses, of which less than ``min_helpful_share`` helped."""

    min_uses: int = 5
    min_helpful_share: float = 0.5
    flag_only: bool = False
    """Only report (log and return) experiences that meet the rule; retire nothing."""


class UtilityDecision(BaseModel):
    """An experience the rule caught, with the evidence."""

    experience_id: str = Field(description="The experience.")
    action: Literal["retired", "flagged"] = Field(description="Retired, or only flagged (the rule's switch).")
    helpful: int = Field(description="Recorded outcomes that used it and succeeded.")
    harmful: int = Field(description="Recorded outcomes that used it and failed.")
    retrieved: int = Field(description="Times retrieval returned it.")
    reason: str = Field(description="The evidence, as written into its history.")
    version: int | None = Field(default=None, description="Library version of the retirement, if retired.")


def unhelpful(counters: Counters, rule: RetireRule) -> bool:
    """Whether ``counters`` meet ``rule``: enough uses, and too small a share of them helpful."""
    uses = counters.helpful + counters.harmful
    return uses >= rule.min_uses and counters.helpful / uses < rule.min_helpful_share


def evidence(counters: Counters, rule: RetireRule) -> str:
    """The reason text: the figures and the rule they broke."""
    uses = counters.helpful + counters.harmful
    return (
        f"helpful in {counters.helpful} of {uses} recorded outcomes ({counters.helpful / uses:.0%}), below "
        f"{rule.min_helpful_share:.0%} after at least {rule.min_uses} uses; retrieved {counters.retrieved} times"
    )


async def retire_unhelpful(
    store: ExperienceStore, experience_ids: Sequence[str], rule: RetireRule, *, outcome_id: str
) -> list[UtilityDecision]:
    """Check the experiences an outcome used against ``rule``; retire (or flag) those that meet it."""
    decisions: list[UtilityDecision] = []
    for experience_id in dict.fromkeys(experience_ids):
        try:
            experience = await store.get(experience_id)
        except NotFound:
            continue
        counters = experience.counters
        if experience.status != "active" or not unhelpful(counters, rule):
            continue
        figures = evidence(counters, rule)
        decision = UtilityDecision(
            experience_id=experience_id,
            action="flagged" if rule.flag_only else "retired",
            helpful=counters.helpful,
            harmful=counters.harmful,
            retrieved=counters.retrieved,
            reason=f"flagged by outcomes: {figures}" if rule.flag_only else f"auto-retired by outcomes: {figures}",
        )
        if rule.flag_only:
            logger.warning("experience %s is flagged for review: %s", experience_id, figures)
            decisions.append(decision)
            continue
        try:
            change = await store.retire(
                experience_id, decision.reason, source=Provenance(kind="outcome", outcome_ids=[outcome_id])
            )
        except Conflict:
            continue  # another outcome retired it first
        logger.info("experience %s retired: %s", experience_id, figures)
        decision.version = change.version
        decisions.append(decision)
    return decisions


def rule_of(settings: Settings) -> RetireRule | None:
    """The server's rule (the ``outcomes`` settings group); ``None`` when auto-retire is off (a share of 0)."""
    outcomes = settings.outcomes
    if outcomes.retire_helpful_share <= 0:
        return None
    return RetireRule(
        min_uses=outcomes.retire_min_uses,
        min_helpful_share=outcomes.retire_helpful_share,
        flag_only=outcomes.retire_flag_only,
    )


async def retire_after_outcome(
    store: ExperienceStore, settings: Settings, experience_ids: Sequence[str], *, outcome_id: str
) -> list[UtilityDecision]:
    """After an outcome's counters were raised: apply the server's rule to the experiences it used."""
    rule = rule_of(settings)
    if rule is None or not experience_ids:
        return []
    return await retire_unhelpful(store, experience_ids, rule, outcome_id=outcome_id)
