"""Credit per experience from the group contrast: used in better vs worse attempts of the same problem.

GRPO's advantage is a reward minus its group's mean. The same baseline credits experiences: an experience used
by an attempt above its group's mean reward counts once as *better*, below the mean once as *worse*. Ungraded
groups and groups of one give no credit (there is no contrast).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from debrief.learner.library import ExperienceCredit


def group_credit(rewards: Sequence[float] | None, used: Sequence[Iterable[str]]) -> dict[str, tuple[int, int]]:
    """``{experience_id: (better, worse)}`` for one group: its attempts' rewards and the ids each one used."""
    if rewards is None or len(rewards) < 2 or len(rewards) != len(used):
        return {}
    mean = sum(rewards) / len(rewards)
    counts: dict[str, tuple[int, int]] = {}
    for reward, ids in zip(rewards, used, strict=True):
        if reward == mean:
            continue
        for experience_id in set(ids):
            better, worse = counts.get(experience_id, (0, 0))
            counts[experience_id] = (better + 1, worse) if reward > mean else (better, worse + 1)
    return counts


def worse_used(rewards: Sequence[float] | None, used: Sequence[Iterable[str]]) -> set[str]:
    """Experiences some below-mean attempt of the group used: the evidence a group needs to propose a delete."""
    return {key for key, (_, worse) in group_credit(rewards, used).items() if worse}


def add_credit(total: dict[str, tuple[int, int]], more: Mapping[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """``total`` with ``more`` added in (in place; returned for convenience)."""
    for key, (better, worse) in more.items():
        was_better, was_worse = total.get(key, (0, 0))
        total[key] = (was_better + better, was_worse + worse)
    return total


def credit_lines(total: Mapping[str, tuple[int, int]]) -> dict[str, str]:
    """What consolidation is shown per experience: "used in 2 better, 6 worse attempts"."""
    return {key: f"used in {better} better, {worse} worse attempts" for key, (better, worse) in total.items()}


def as_credits(counts: Mapping[str, tuple[int, int]], *, groups: Mapping[str, list[str]]) -> list[ExperienceCredit]:
    """The step's counts as :class:`ExperienceCredit` items, each with the problems whose groups gave it."""
    return [
        ExperienceCredit(experience_id=key, helpful=better, harmful=worse, groups=tuple(groups.get(key, ())))
        for key, (better, worse) in sorted(counts.items())
        if better or worse
    ]
