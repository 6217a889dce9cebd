"""A plain-text table of a run, one line per step."""

from __future__ import annotations

from debrief.learner.records import RunReport, StepRecord


def fates(step: StepRecord) -> str:
    """The step's proposals by disposition: applied/merged/dropped/rejected/pending."""
    counts = step.disposition_counts
    return "/".join(str(counts.get(kind, 0)) for kind in ("applied", "merged", "dropped", "rejected", "pending"))


def format_report(report: RunReport) -> str:
    """The run as a fixed-width table: groups, reward, operations, tokens, cost and time per step."""
    header = (
        f"{'step':>4} {'epoch':>5} {'groups':>6} {'kept':>4} {'failed':>6} {'reward':>6} {'proposed':>8} "
        f"{'applied':>7} {'rejected':>8} {'fates a/m/d/r/p':>15} {'retried':>7} {'prompt tok':>10} {'compl tok':>9} "
        f"{'cost $':>8} {'secs':>6}  note"
    )
    lines = [f"run {report.run_id}: {report.status}" + (f" ({report.stop_detail})" if report.stop_detail else "")]
    if report.failed_groups or report.pending_operations or report.failed_consolidations:
        lines.append(
            f"  {len(report.failed_groups)} group(s) still failed, {len(report.pending_operations)} proposal(s) "
            f"pending, {report.failed_consolidations} failed consolidation(s), {report.retried_requests} "
            "retried request(s); resume the run to retry them"
        )
    lines += [header, "-" * len(header)]
    for step in report.steps:
        reward = "-" if step.mean_reward is None else f"{step.mean_reward:.3f}"
        note = f"consolidation failed, {step.pending_operations} pending" if step.consolidation_error else ""
        if step.recovery:
            note = f"recovery step{'; ' + note if note else ''}"
        lines.append(
            f"{step.step:>4} {step.epoch:>5} {step.groups_seen:>6} {step.groups_kept:>4} {step.groups_failed:>6} "
            f"{reward:>6} {step.operations_proposed:>8} {len(step.applied):>7} {len(step.rejected):>8} "
            f"{fates(step):>15} {step.retried_requests:>7} "
            f"{step.total.prompt_tokens:>10} {step.total.completion_tokens:>9} {step.total.cost_usd:>8.4f} "
            f"{step.wall_seconds:>6.1f}  {note}".rstrip()
        )
    lines.append(
        f"total: {report.total.prompt_tokens} prompt + {report.total.completion_tokens} completion tokens, "
        f"{report.total.requests} requests, ${report.total.cost_usd:.4f}, {report.wall_seconds:.1f}s"
    )
    return "\n".join(lines)
