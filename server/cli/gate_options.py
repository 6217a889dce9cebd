"""The validation-gate flags of ``debrief learn`` and what they build."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from debrief.learner import LearnerError, Problem, Verifier, load_jsonl
from debrief.learner.validation import ValidationSettings
from debrief.server.errors import InvalidInput
from debrief.server.learning.gated import GatedProblems, gated_problems


def add_gate_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--val-data``, ``--val-fraction``, ``--val-samples``, ``--val-margin`` and ``--keep-best``."""
    group = parser.add_argument_group(
        "validation gate", "validate every edit on held-out problems (paired, same seeds) before it is kept"
    )
    source = group.add_mutually_exclusive_group()
    source.add_argument("--val-data", type=str, default=None, metavar="FILE", help="JSONL validation problems")
    source.add_argument(
        "--val-fraction", type=float, default=None, metavar="F", help="hold out this share of the problems (seeded)"
    )
    group.add_argument("--val-samples", type=int, default=2, metavar="K", help="attempts per validation problem")
    group.add_argument(
        "--val-margin", type=float, default=0.0, help="keep an edit if validation Mean@K drops by at most this"
    )
    group.add_argument(
        "--keep-best", action="store_true", help="end on the library version with the best validation score"
    )


def gate_from_args(args: argparse.Namespace, problems: Sequence[Problem], verifier: Verifier) -> GatedProblems:
    """Training problems and the gate the flags ask for (no gate without ``--val-data`` or ``--val-fraction``)."""
    validation = None
    if args.val_data is not None:
        try:
            validation = load_jsonl(args.val_data, require_answer=verifier.needs_answer)
        except LearnerError as error:
            raise InvalidInput(f"--val-data: {error}") from error
    if args.keep_best and validation is None and args.val_fraction is None:
        raise InvalidInput("--keep-best needs validation problems: give --val-data or --val-fraction")
    try:
        settings = ValidationSettings(samples=args.val_samples, margin=args.val_margin, keep_best=args.keep_best)
    except ValueError as error:
        raise InvalidInput(f"validation settings are not valid: {error}") from None
    return gated_problems(
        problems, verifier, validation=validation, fraction=args.val_fraction, settings=settings, seed=args.seed
    )
