"""Plots a person would rather look at than read: an evaluation, and a learning run's curve per step.

matplotlib is the optional extra ``plot`` (``pip install 'debrief-mcp[plot]'``); it draws off-screen (Agg).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio

from debrief.learner.checkpoint import DirectoryCheckpoint
from debrief.learner.controls import LibraryEvaluation
from debrief.learner.records import StepRecord
from debrief.learner.stats import problem_mean
from debrief.server.cli.flags import settings_from_flags
from debrief.server.errors import Conflict, InvalidInput, MissingComponent, NotFound
from debrief.server.learning.run_models import RunRecord


def _pyplot() -> Any:
    try:
        import matplotlib  # an optional extra, loaded only to draw
    except ImportError as error:
        raise MissingComponent(
            "plots need matplotlib: install the extra with `pip install 'debrief-mcp[plot]'` (or `pip install "
            "matplotlib`)"
        ) from error
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _short(text: str, width: int = 60) -> str:
    return textwrap.shorten(text, width=width, placeholder="…")


def plot_evaluation(result: LibraryEvaluation, namespace: str, path: Path) -> None:
    """Per problem without vs with, the differences with their intervals, and per-experience effects if measured."""
    plt = _pyplot()
    effects = result.effects.effects if result.effects is not None else []
    panels = 3 if effects else 2
    figure, axes = plt.subplots(panels, 1, figsize=(10, 3.6 * panels), constrained_layout=True)
    problems = result.report.problems
    pairs = sorted(
        ((problem_mean(item.rewards["without"]), problem_mean(item.rewards["with"])) for item in problems),
        key=lambda pair: (pair[1] - pair[0], pair[0]),
    )
    positions = list(range(len(pairs)))
    top = axes[0]
    for position, (without, with_library) in zip(positions, pairs, strict=True):
        colour = "tab:green" if with_library > without else "tab:red" if with_library < without else "0.7"
        top.plot([position, position], [without, with_library], color=colour, linewidth=1.5, zorder=1)
    top.scatter(positions, [pair[0] for pair in pairs], color="0.45", label="without", zorder=2, s=18)
    top.scatter(positions, [pair[1] for pair in pairs], color="tab:blue", label="with", zorder=3, s=18)
    top.set_ylim(-0.05, 1.05)
    top.set_xlabel("problem (sorted by the library's effect)")
    top.set_ylabel(f"mean reward of {result.samples} samples")
    delta = result.delta
    top.set_title(
        f"{namespace}: Mean@{result.samples} {result.without.mean_at_k:.3f} → {result.with_library.mean_at_k:.3f} "
        f"(Δ {delta.mean_at_k:+.3f}, 95% CI [{delta.ci95[0]:+.3f}, {delta.ci95[1]:+.3f}])"
    )
    top.legend(loc="lower right")
    _forest(
        axes[1],
        [f"{item.arm} − {item.baseline}" for item in result.report.comparisons],
        [item.mean_at_k for item in result.report.comparisons],
        [item.ci95 for item in result.report.comparisons],
        f"differences of Mean@{result.samples} with 95% intervals",
    )
    if effects:
        _forest(
            axes[2],
            [f"{effect.experience_id[:10]} {_short(effect.text)}" for effect in effects],
            [effect.delta_mean for effect in effects],
            [effect.ci95 for effect in effects],
            "each experience's effect (leave-one-out where shown), 95% intervals",
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _forest(
    axis: Any, labels: Sequence[str], values: Sequence[float], intervals: Sequence[Sequence[float]], title: str
) -> None:
    rows = list(range(len(labels)))[::-1]
    colours = ["tab:green" if low > 0 else "tab:red" if high < 0 else "0.5" for low, high in intervals]
    for row, value, (low, high), colour in zip(rows, values, intervals, colours, strict=True):
        axis.plot([low, high], [row, row], color=colour, linewidth=2)
        axis.scatter([value], [row], color=colour, zorder=3)
    axis.axvline(0.0, color="0.3", linewidth=0.8, linestyle="--")
    axis.set_yticks(rows)
    axis.set_yticklabels(labels, fontsize=8)
    axis.set_title(title)


def nan_if_none(value: float | None) -> float:
    """``value``, or NaN (a gap in a plotted line) when there is none."""
    return float("nan") if value is None else value


def plot_learning_curve(steps: Sequence[StepRecord], run_id: str, path: Path) -> None:
    """Mean reward per step, the library's size, the edits applied and rejected, and tokens per step."""
    plt = _pyplot()
    figure, (reward_axis, edit_axis) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True, constrained_layout=True)
    numbers = [step.step for step in steps]
    rewards = [step.mean_reward if step.mean_reward is not None else float("nan") for step in steps]
    reward_axis.plot(numbers, rewards, marker="o", color="tab:blue", label="mean reward of the step's attempts")
    reward_axis.set_ylim(-0.05, 1.05)
    reward_axis.set_ylabel("mean reward")
    kept = [step.groups_kept / step.groups_seen if step.groups_seen else float("nan") for step in steps]
    reward_axis.plot(numbers, kept, marker=".", linestyle=":", color="0.4", label="share of groups kept (mixed)")
    reward_axis.legend(loc="lower right")
    reward_axis.set_title(f"learning run {run_id}: {len(steps)} steps")
    size_axis = reward_axis.twinx()
    size_axis.step(numbers, [step.library_size for step in steps], where="post", color="tab:purple", alpha=0.6)
    size_axis.set_ylabel("library size", color="tab:purple")
    width = 0.4
    edit_axis.bar([n - width / 2 for n in numbers], [len(s.applied) for s in steps], width, label="applied")
    edit_axis.bar([n + width / 2 for n in numbers], [len(s.rejected) for s in steps], width, label="rejected")
    edit_axis.set_ylabel("edits")
    # Agent mode (issue 13): tool calls per attempt, which the paper reports falling as the library improves.
    if any(step.tool_calls_per_attempt is not None for step in steps):
        calls = [nan_if_none(step.tool_calls_per_attempt) for step in steps]
        edit_axis.plot(numbers, calls, marker="s", color="tab:green", label="tool calls per attempt")
        edit_axis.set_ylabel("edits / tool calls per attempt")
    edit_axis.set_xlabel("step")
    edit_axis.legend(loc="upper left")
    token_axis = edit_axis.twinx()
    token_axis.plot(numbers, [s.total.prompt_tokens + s.total.completion_tokens for s in steps], color="tab:orange")
    token_axis.set_ylabel("tokens", color="tab:orange")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _load_steps(data_dir: Path, run_id: str) -> list[StepRecord]:
    if not run_id.startswith("run-") or not run_id[4:].isalnum() or len(run_id) > 40:
        raise InvalidInput(f"run id {run_id!r} is not valid: ids look like 'run-1a2b3c4d5e6f'")
    directory = data_dir / "runs" / run_id
    record = directory / "record.json"
    if record.is_file():
        return list(RunRecord.model_validate_json(record.read_text(encoding="utf-8")).steps)
    state = anyio.run(DirectoryCheckpoint(directory / "checkpoint").load)
    if state is None:
        raise NotFound(f"there is no learning run {run_id!r} under {str(data_dir)!r} (looked in {str(directory)!r})")
    return list(state.steps)


def _runs(args: argparse.Namespace) -> int:
    steps = _load_steps(settings_from_flags(args).data_dir, args.run_id)
    if not steps:
        raise Conflict(f"run {args.run_id!r} has no finished step yet: nothing to plot")
    output = args.output or Path(f"{args.run_id}.png")
    plot_learning_curve(steps, args.run_id, output)
    print(f"learning curve of {args.run_id} ({len(steps)} steps) written to {output}", file=sys.stderr)
    return 0


def register(commands: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``debrief runs plot RUN_ID``."""
    runs = commands.add_parser("runs", help="learning runs recorded in the data dir")
    actions = runs.add_subparsers(dest="action", required=True)
    plot = actions.add_parser("plot", help="draw a run's learning curve per step (needs the [plot] extra)")
    common(plot)
    plot.add_argument("run_id", metavar="RUN_ID")
    plot.add_argument("--output", "-o", type=Path, default=None, help="PNG file (default RUN_ID.png)")
    runs.set_defaults(handler=_runs)
