"""Problems from reasoning-gym's offline task generators, scored by reasoning-gym's own checks.

A source is named ``reasoning-gym:NAME[?size=N&seed=S&OPTION=VALUE...]`` (e.g. ``reasoning-gym:basic_arithmetic?
size=50&seed=1``); other options go to the generator as its config (numbers are read as numbers). The package is
an optional extra (``pip install 'debrief[datasets]'``). The same name, size, seed and options make the same
problems, so a problem carries only its position: the verifier makes the dataset again and asks it to score.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from debrief.learner.datasets import Problem
from debrief.learner.errors import ConfigError
from debrief.learner.verifiers import Judge, final_answer

GYM_PREFIX = "reasoning-gym:"
INSTALL_HINT = "install the optional extra: pip install 'debrief[datasets]' (the reasoning-gym package)"
MAX_SIZE = 10_000


@dataclass(frozen=True, kw_only=True)
class GymSpec:
    """Which reasoning-gym dataset, how many problems, which seed, and the generator's options."""

    name: str
    size: int = 50
    seed: int = 0
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> str:
        """The source name this spec was read from (normalized)."""
        query = "&".join(
            f"{key}={value}" for key, value in {"size": self.size, "seed": self.seed, **self.options}.items()
        )
        return f"{GYM_PREFIX}{self.name}?{query}"


def is_gym_source(source: str) -> bool:
    """Whether ``source`` names reasoning-gym problems rather than a file."""
    return source.startswith(GYM_PREFIX)


def _value(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_gym_source(source: str) -> GymSpec:
    """Read ``reasoning-gym:NAME?size=&seed=&...``.

    Raises:
        ConfigError: not a reasoning-gym source, no name, or a size or seed that is not a whole number in range.
    """
    if not is_gym_source(source):
        raise ConfigError(f"{source!r} is not a reasoning-gym source; write {GYM_PREFIX}NAME?size=50&seed=0")
    name, _, query = source[len(GYM_PREFIX) :].partition("?")
    if not name.strip():
        raise ConfigError(f"{source!r} names no dataset; write e.g. {GYM_PREFIX}basic_arithmetic?size=50")
    options = {key: _value(value) for key, value in parse_qsl(query, keep_blank_values=True)}
    size, seed = options.pop("size", 50), options.pop("seed", 0)
    if not isinstance(size, int) or not 1 <= size <= MAX_SIZE:
        raise ConfigError(f"size must be a whole number from 1 to {MAX_SIZE}, not {size!r}")
    if not isinstance(seed, int):
        raise ConfigError(f"seed must be a whole number, not {seed!r}")
    return GymSpec(name=name.strip(), size=size, seed=seed, options=options)


def _package() -> Any:
    try:
        return importlib.import_module("reasoning_gym")
    except ImportError as error:
        raise ConfigError(f"reasoning-gym sources need the reasoning-gym package: {INSTALL_HINT}") from error


def _dataset(spec: GymSpec) -> Any:
    package = _package()
    known = sorted(package.factory.DATASETS)
    if spec.name not in known:
        close = [name for name in known if spec.name.split("_")[0] in name][:8] or known[:8]
        raise ConfigError(f"reasoning-gym has no dataset {spec.name!r}; for example {', '.join(close)}")
    try:
        return package.create_dataset(spec.name, size=spec.size, seed=spec.seed, **dict(spec.options))
    except (TypeError, ValueError, AssertionError) as error:
        raise ConfigError(f"reasoning-gym could not make {spec.spec!r}: {error}") from error


def gym_problems(source: str) -> tuple[list[Problem], GymVerifier]:
    """The problems a reasoning-gym source names, and the verifier that scores answers to them."""
    spec = parse_gym_source(source)
    dataset = _dataset(spec)
    problems = [
        Problem(
            problem_id=f"rg-{spec.name}-{spec.seed}-{index}",
            question=str(entry["question"]),
            answer=str(entry["answer"]),
            metadata={"reasoning_gym": {"dataset": spec.name, "index": index}},
        )
        for index, entry in enumerate(dataset)
    ]
    return problems, GymVerifier(spec=spec, dataset=dataset)


@dataclass
class GymVerifier:
    """Scores a response with the dataset's own ``score_answer`` (rewards in [0, 1])."""

    spec: GymSpec
    dataset: Any = None

    @property
    def name(self) -> str:
        """Name of the verifier, for messages."""
        return self.spec.spec

    @property
    def needs_answer(self) -> bool:
        """Scoring uses the dataset's own entry, which always has its answer."""
        return True

    async def score(self, problem: Problem, response: str, *, judge: Judge) -> float:
        r"""The dataset's score of the response's final answer (``<answer>`` tags, ``\boxed{}`` or last line)."""
        if self.dataset is None:
            self.dataset = _dataset(self.spec)
        where = problem.metadata.get("reasoning_gym") or {}
        index = where.get("index")
        if where.get("dataset") != self.spec.name or not isinstance(index, int):
            raise ConfigError(f"problem {problem.problem_id!r} is not from {self.spec.spec!r}")
        entry = self.dataset[index]
        answer = _tagged(response)
        return float(self.dataset.score_answer(answer if answer is not None else final_answer(response), entry))


def _tagged(response: str) -> str | None:
    start, end = response.rfind("<answer>"), response.rfind("</answer>")
    if start == -1 or end < start:
        return None
    return response[start + len("<answer>") : end].strip()
