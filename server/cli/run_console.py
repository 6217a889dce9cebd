"""What a command-line run shows: log lines through the progress bar's console, and a truthful verdict."""

from __future__ import annotations

import logging
import shlex
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console

from debrief.learner import RunReport
from debrief.server.learning.verdict import every_group_failed, failed_problems

EXIT_FAILED = 1
LINE_LIMIT = 300


class _OneLine(logging.Filter):
    """Without -v: a record is one line (first line of its message, no traceback), so the bar stays readable."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            message = f"{message}: {type(error).__name__}: {error}"
        first = " ".join(message.split("\n", 1)[0].split())
        record.msg = first if len(first) <= LINE_LIMIT else first[:LINE_LIMIT] + "…"
        record.args = None
        record.exc_info = None
        record.exc_text = None
        return True


class _ConsoleHandler(logging.Handler):
    """Prints records with ``console``, so a live progress bar redraws below them instead of being torn."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self._console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._console.print(self.format(record), markup=False, highlight=False)
        except Exception:  # noqa: BLE001 - logging.Handler convention: a failing handler must not raise
            self.handleError(record)


@contextmanager
def console_logging(console: Console, *, verbose: bool) -> Iterator[None]:
    """Route every log record through ``console`` (above a live progress bar) while the block runs.

    Without ``verbose`` each record is one line; with it, records keep their tracebacks.
    """
    root = logging.getLogger()
    saved = root.handlers[:]
    handler = _ConsoleHandler(console)
    handler.setFormatter(
        logging.Formatter("%(levelname)s %(name)s: %(message)s" if verbose else "%(levelname)s: %(message)s")
    )
    if not verbose:
        handler.addFilter(_OneLine())
    root.handlers = [handler]
    try:
        yield
    finally:
        root.handlers = saved


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """How a finished run ends on the command line."""

    status: str
    exit_code: int
    message: str


def run_verdict(report: RunReport) -> Verdict:
    """``failed`` (non-zero exit) when no group of the run got through; otherwise the learner's own status."""
    failure = every_group_failed(report)
    if failure is not None:
        return Verdict(status="failed", exit_code=EXIT_FAILED, message=f"run {report.run_id} failed: {failure}")
    failed, seen, first_error = failed_problems(report)
    # ``status`` is the learner's truthful summary where it gives one (succeeded / incomplete / budget / cancelled).
    status = str(getattr(report, "status", report.stop_reason))
    if status == "finished":
        status = "succeeded"
    detail: list[str] = []
    if failed:
        error = f" (first error: {first_error})" if first_error else ""
        detail.append(f"the groups of {failed} of {seen} problems failed{error}")
    if report.stop_detail:
        detail.append(report.stop_detail)
    message = f"run {report.run_id} {status}" + (": " + "; ".join(detail) if detail else "")
    return Verdict(status=status, exit_code=0, message=_short(message))


def resume_command(argv: Sequence[str], run_id: str) -> str:
    """The command that resumes ``run_id``: the same arguments plus ``--resume`` (an ``--api-key`` value left out)."""
    kept: list[str] = []
    skip = False
    for argument in argv:
        if skip:
            skip = False
            continue
        if argument in ("--resume", "--api-key"):
            skip = True
            continue
        if argument.startswith(("--resume=", "--api-key=")):
            continue
        kept.append(argument)
    return shlex.join(["debrief", *kept, "--resume", run_id])


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= LINE_LIMIT else text[:LINE_LIMIT] + "…"


def nothing_learned(report: RunReport) -> str:
    """Why a run left the library empty, in the facts the run recorded (groups mixed, edits proposed, rejected)."""
    seen = sum(step.groups_seen for step in report.steps)
    kept = sum(step.groups_kept for step in report.steps)
    failed = sum(step.groups_failed for step in report.steps)
    proposed = sum(step.operations_proposed for step in report.steps)
    applied = sum(len(step.applied) for step in report.steps)
    rejections: dict[str, int] = {}
    for step in report.steps:
        for kind, count in step.rejection_counts.items():
            rejections[kind] = rejections.get(kind, 0) + count
    facts = [f"{kept} of {seen} groups had mixed results (the only ones the method learns from)"]
    if failed:
        facts.append(f"{failed} groups failed")
    facts.append(f"reflection proposed {proposed} edit{'' if proposed == 1 else 's'}")
    if rejections:
        listed = ", ".join(f"{count} {kind.replace('_', ' ')}" for kind, count in sorted(rejections.items()))
        facts.append(f"rejected: {listed}")
    facts.append(f"{applied} applied")
    return "(nothing learned: " + "; ".join(facts) + ")"
