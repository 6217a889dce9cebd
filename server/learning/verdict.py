"""When a finished run failed although it ran to the end: no problem's group got through."""

from __future__ import annotations

from debrief.learner import RunReport

DETAIL_LIMIT = 300


def every_group_failed(report: RunReport) -> str | None:
    """Why the run failed when the last group of every problem failed; ``None`` when any group got through.

    A failed group is retried in a later step (or on resume), so each problem is judged by its last group.
    """
    last = {group.problem_id: group for step in report.steps for group in step.groups}
    errors = [group.error for group in last.values() if group.error]
    if not last or len(errors) < len(last):
        return None
    message = f"the groups of all {len(last)} problems failed, nothing was learned; first error: {errors[0]}"
    message = " ".join(message.split())
    return message if len(message) <= DETAIL_LIMIT else message[:DETAIL_LIMIT] + "…"


def failed_problems(report: RunReport) -> tuple[int, int, str | None]:
    """Problems whose last group failed, problems seen, and the first error."""
    last = {group.problem_id: group for step in report.steps for group in step.groups}
    errors = [group.error for group in last.values() if group.error]
    return len(errors), len(last), errors[0] if errors else None
