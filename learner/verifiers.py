"""Verifiers: score an attempt against the ground truth with 1.0 (right) or 0.0 (wrong)."""

from __future__ import annotations

import importlib
import inspect
import logging
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
import re2

from debrief.learner.datasets import Problem
from debrief.learner.errors import ConfigError

Judge = Callable[[Problem, str], Awaitable[bool]]
"""Asks the judge model whether a response answers a problem correctly."""

ScoreFunction = Callable[[str, str | None], float | bool | Awaitable[float | bool]]
"""A user verifier: ``(response, answer) -> score`` (a bool, or a float in [0, 1]); may be async."""


class Verifier(Protocol):
    """Scores one response. ``needs_answer`` says whether it compares against a ground truth."""

    @property
    def name(self) -> str:
        """Name of the verifier, for messages."""
        ...

    @property
    def needs_answer(self) -> bool:
        """Whether it compares against a ground truth."""
        ...

    async def score(self, problem: Problem, response: str, *, judge: Judge) -> float:
        """The reward of ``response`` to ``problem``, in [0, 1]."""
        ...


_BOXED = re.compile(r"\\boxed\s*\{")
_ANSWER_LINE = re.compile(r"(?im)^\W*(?:final\s+)?answer\s*[:=]\s*(.+?)\s*$")
_NUMBER = re.compile(r"[-+]?(?:\d+(?:,\d{3})*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


def _last_boxed(text: str) -> str | None:
    matches = list(_BOXED.finditer(text))
    if not matches:
        return None
    start = matches[-1].end()
    depth = 1
    for index in range(start, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return text[start:index]
    return None


def final_answer(response: str) -> str:
    r"""The answer a response gives: the last ``\boxed{}``, else the last ``Answer:`` line, else its last line."""
    boxed = _last_boxed(response)
    if boxed is not None:
        return boxed
    lines = _ANSWER_LINE.findall(response)
    if lines:
        return str(lines[-1])
    rest = [line for line in response.strip().splitlines() if line.strip()]
    return rest[-1] if rest else ""


def normalize_answer(text: str) -> str:
    """Lower case, no surrounding ``$``/quotes/punctuation, single spaces."""
    text = text.strip().strip("$").strip()
    text = re.sub(r"\\text\{([^}]*)\}", r"\1", text)
    text = " ".join(text.lower().split())
    return text.strip(" .,;:!?\"'`")


def _exact(response: str, answer: str | None) -> float:
    return float(answer is not None and normalize_answer(final_answer(response)) == normalize_answer(answer))


def _number(text: str) -> float | None:
    found = _NUMBER.findall(text)
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def _math(response: str, answer: str | None) -> float:
    from math_verify import parse, verify

    if answer is None:
        return 0.0
    # Signal-based timeouts work only on the main thread; the caller bounds the time instead.
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    gold_text = answer if ("$" in answer or "\\boxed" in answer) else f"${answer}$"
    gold = parse(gold_text, parsing_timeout=None) or parse(answer, parsing_timeout=None)
    attempt = parse(response, parsing_timeout=None)
    return float(bool(gold) and bool(attempt) and verify(gold, attempt, timeout_seconds=None))


@dataclass(frozen=True, kw_only=True)
class FunctionVerifier:
    """A verifier from a function of ``(response, answer)``; sync functions run in a worker thread."""

    name: str
    function: ScoreFunction
    needs_answer: bool = True

    async def score(self, problem: Problem, response: str, *, judge: Judge) -> float:
        """Call the function and clamp its result to [0, 1]."""
        if inspect.iscoroutinefunction(self.function):
            result = await self.function(response, problem.answer)
        else:
            result = await anyio.to_thread.run_sync(self.function, response, problem.answer, abandon_on_cancel=True)
            if inspect.isawaitable(result):
                result = await result
        return min(1.0, max(0.0, float(result)))


@dataclass(frozen=True, kw_only=True)
class JudgeVerifier:
    """Asks the judge model for a structured correct/incorrect verdict."""

    name: str = "judge"
    needs_answer: bool = False

    async def score(self, problem: Problem, response: str, *, judge: Judge) -> float:
        """1.0 when the judge says correct."""
        return float(await judge(problem, response))


def _numeric(tolerance: float) -> ScoreFunction:
    def score(response: str, answer: str | None) -> float:
        if answer is None:
            return 0.0
        got, want = _number(final_answer(response)), _number(answer)
        if got is None or want is None:
            return 0.0
        return float(math.isclose(got, want, rel_tol=tolerance, abs_tol=tolerance))

    return score


def compile_safe_pattern(pattern: str) -> Any:
    """Compile a user-supplied pattern with RE2, which matches in linear time (no catastrophic backtracking).

    Python's ``re`` holds the GIL while it backtracks, so one hostile pattern would stall every other request in
    the process; RE2 cannot backtrack. It has no backreferences or lookaround.

    Raises:
        ConfigError: the pattern is not valid RE2 syntax.
    """
    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error as error:
        reason = error.args[0].decode("utf-8", "replace") if error.args and isinstance(error.args[0], bytes) else error
        raise ConfigError(
            f"bad regex {pattern!r}: {reason} (patterns use RE2 syntax: no backreferences or lookaround)"
        ) from None


def _regex(pattern: str | None) -> ScoreFunction:
    compiled = compile_safe_pattern(pattern) if pattern else None

    def score(response: str, answer: str | None) -> float:
        if compiled is None:
            return float(answer is not None and compile_safe_pattern(answer).search(response) is not None)
        matches = list(compiled.finditer(response))
        if not matches or answer is None:
            return 0.0
        last = matches[-1]
        found = last.group(1) if compiled.groups else last.group(0)
        return float(normalize_answer(found or "") == normalize_answer(answer))

    return score


def make_verifier(spec: str) -> Verifier:
    """Build a verifier from its name.

    ``math`` (math-verify symbolic equivalence), ``exact`` (normalized exact match of the final answer),
    ``numeric`` or ``numeric:<tolerance>`` (relative/absolute, default 1e-6), ``regex`` (the ground truth is a
    pattern searched in the response), ``regex:<pattern>`` (the pattern's last match, group 1 if any, must equal
    the ground truth), ``judge`` (the judge model decides), or ``module:function`` (a user function of
    ``(response, answer)``).

    Raises:
        ConfigError: the name is unknown, the pattern or tolerance is bad, or the function cannot be imported.
    """
    kind, _, argument = spec.partition(":")
    if spec == "math":
        return FunctionVerifier(name="math", function=_math)
    if spec == "exact":
        return FunctionVerifier(name="exact", function=_exact)
    if spec == "judge":
        return JudgeVerifier()
    if kind == "numeric":
        try:
            tolerance = float(argument) if argument else 1e-6
        except ValueError as error:
            raise ConfigError(f"numeric tolerance must be a number, not {argument!r}") from error
        if not math.isfinite(tolerance) or tolerance < 0:
            raise ConfigError(f"numeric tolerance must be a finite number ≥ 0, not {argument!r}")
        return FunctionVerifier(name=spec, function=_numeric(tolerance))
    if kind == "regex":
        return FunctionVerifier(name=spec, function=_regex(argument or None))
    if kind and argument and ":" not in argument:
        try:
            function = getattr(importlib.import_module(kind), argument)
        except (ImportError, AttributeError) as error:
            raise ConfigError(f"cannot import verifier {spec!r}: {error}") from error
        if not callable(function):
            raise ConfigError(f"verifier {spec!r} is not callable")
        return FunctionVerifier(name=spec, function=function)
    raise ConfigError(
        f"unknown verifier {spec!r}: use math, exact, numeric[:tol], regex[:pattern], judge or module:function"
    )


async def safe_score(
    verifier: Verifier, problem: Problem, response: str, *, judge: Judge, timeout: float
) -> tuple[float, str | None]:
    """Score with a time limit. A verifier that fails or overruns scores 0, and the reason is returned."""
    try:
        with anyio.fail_after(timeout):
            return await verifier.score(problem, response, judge=judge), None
    except TimeoutError:
        return 0.0, f"verifier {verifier.name!r} timed out after {timeout}s"
    except Exception as error:  # noqa: BLE001 - user code and parsers may raise anything; scored 0 and counted
        return 0.0, f"verifier {verifier.name!r} failed: {type(error).__name__}: {error}"
