"""What a client may hand a learning run or an evaluation: inline problems or an allowed dataset file, a verifier."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import anyio.to_thread

from debrief.learner import LearnerError, Problem, load_jsonl, make_verifier
from debrief.learner.datasets import problem_key
from debrief.server.errors import InvalidInput
from debrief.server.learning.run_models import ProblemIn
from debrief.server.settings import Settings

CLIENT_VERIFIERS = ("math", "exact", "numeric", "regex", "judge")
MAX_PROBLEMS = 10_000


def check_client_verifier(spec: str, *, command: str) -> None:
    """Refuse a verifier a client may not name (``module:function`` runs only from ``command``) or cannot use."""
    if spec.split(":", 1)[0] not in CLIENT_VERIFIERS:
        raise InvalidInput(
            f"verifier {spec!r} is not available to clients: use math, exact, numeric[:tol], regex[:pattern] "
            f"or judge (custom module:function verifiers run only from the `{command}` command line)"
        )
    try:
        make_verifier(spec)
    except LearnerError as error:
        raise InvalidInput(f"verifier {spec!r} is not usable: {error}") from error


def inline_problems(items: Sequence[ProblemIn]) -> list[Problem]:
    """Problems given inline; an item without an id gets the stable hash of its question."""
    return [
        Problem(problem_id=item.problem_id or problem_key(item.question), question=item.question, answer=item.answer)
        for item in items
    ]


async def client_problems(
    settings: Settings, problems: Sequence[ProblemIn] | None, data_path: str | None
) -> list[Problem]:
    """The problems a request names: inline, or a JSONL file under one of the allowed dataset directories."""
    if problems is not None:
        return inline_problems(problems)
    assert data_path is not None
    path = Path(data_path).expanduser().resolve()
    roots = [root.expanduser().resolve() for root in settings.dataset_roots()]
    if not any(path.is_relative_to(root) for root in roots):
        listed = ", ".join(repr(str(root)) for root in roots)
        raise InvalidInput(
            f"data_path {data_path!r} is outside the allowed dataset directories ({listed}); "
            "put the file there or add its directory to DEBRIEF_DATASET_DIRS"
        )
    if not path.is_file():
        raise InvalidInput(f"data_path {data_path!r} is not a file")
    try:
        loaded = await anyio.to_thread.run_sync(load_jsonl, path)
    except LearnerError as error:
        raise InvalidInput(f"data_path {data_path!r}: {error}") from error
    except (UnicodeDecodeError, OSError) as error:
        raise InvalidInput(
            f"data_path {data_path!r} cannot be read as UTF-8 JSON lines: {type(error).__name__}: {error}"
        ) from error
    if len(loaded) > MAX_PROBLEMS:
        raise InvalidInput(f"data_path {data_path!r} has {len(loaded)} problems; at most {MAX_PROBLEMS}")
    return loaded
