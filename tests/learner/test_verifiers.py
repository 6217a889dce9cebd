from __future__ import annotations

import anyio
import pytest

from debrief.learner import ConfigError, Problem, make_verifier
from debrief.learner.verifiers import FunctionVerifier, final_answer, safe_score

pytestmark = pytest.mark.anyio


def problem(answer: str | None) -> Problem:
    return Problem(problem_id="p", question="q", answer=answer)


async def never_judge(judged: Problem, response: str) -> bool:
    raise AssertionError("no judge expected")


async def score(spec: str, response: str, answer: str | None) -> float:
    with anyio.fail_after(20):
        value, error = await safe_score(make_verifier(spec), problem(answer), response, judge=never_judge, timeout=15)
    assert error is None
    return value


@pytest.mark.parametrize(
    ("response", "answer", "expected"),
    [
        ("so the result is \\boxed{\\frac{1}{2}}", "0.5", 1.0),
        ("Answer: $\\boxed{1+x^2}$", "x^2+1", 1.0),
        ("I get \\boxed{41}", "42", 0.0),
        ("no answer here", "42", 0.0),
    ],
)
async def test_the_math_verifier_checks_symbolic_equivalence(response: str, answer: str, expected: float) -> None:
    assert await score("math", response, answer) == expected


async def test_exact_match_compares_the_normalized_final_answer() -> None:
    assert await score("exact", "Thinking...\nFinal answer: Paris.", "paris") == 1.0
    assert await score("exact", "\\boxed{\\text{Paris}}", "Paris") == 1.0
    assert await score("exact", "Answer: Lyon", "Paris") == 0.0


async def test_numeric_match_allows_the_given_tolerance() -> None:
    assert await score("numeric:0.01", "Answer: 3.14", "3.14159") == 1.0
    assert await score("numeric", "Answer: 3.14", "3.14159") == 0.0
    assert await score("numeric", "Answer: 1,000", "1000") == 1.0


async def test_regex_verifiers_match_a_pattern_answer_or_extract_with_a_pattern() -> None:
    assert await score("regex", "the code is AB-123 ok", r"[A-Z]{2}-\d+") == 1.0
    assert await score(r"regex:RESULT=(\w+)", "RESULT=no then RESULT=yes", "yes") == 1.0
    assert await score(r"regex:RESULT=(\w+)", "nothing", "yes") == 0.0


async def test_a_user_function_named_module_colon_function_is_a_verifier() -> None:
    assert await score("tests.learner.verifier_helpers:contains_answer", "it is 42", "42") == 1.0
    assert await score("tests.learner.verifier_helpers:async_contains_answer", "it is 41", "42") == 0.0


async def test_the_judge_verifier_asks_the_judge() -> None:
    async def judge(judged: Problem, response: str) -> bool:
        return response == "right"

    verifier = make_verifier("judge")
    assert not verifier.needs_answer
    with anyio.fail_after(5):
        assert await verifier.score(problem(None), "right", judge=judge) == 1.0
        assert await verifier.score(problem(None), "wrong", judge=judge) == 0.0


async def test_a_verifier_that_overruns_its_time_scores_zero_with_a_reason() -> None:
    blocked = anyio.Event()

    async def hang(response: str, answer: str | None) -> float:
        await blocked.wait()
        return 1.0

    verifier = FunctionVerifier(name="hang", function=hang)
    with anyio.fail_after(5):
        value, error = await safe_score(verifier, problem("1"), "1", judge=never_judge, timeout=0.05)
    assert value == 0.0
    assert error is not None and "timed out" in error


@pytest.mark.parametrize("spec", ["nope", "numeric:abc", "regex:(", "no_such_module_xyz:f", "math:extra:x"])
def test_unknown_or_broken_verifier_names_are_refused(spec: str) -> None:
    with pytest.raises(ConfigError):
        make_verifier(spec)


def test_final_answer_prefers_boxed_then_answer_line_then_last_line() -> None:
    assert final_answer("a \\boxed{x^{2}} b \\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert final_answer("work\nAnswer: 7\nthanks") == "7"
    assert final_answer("work\n\n12\n") == "12"


@pytest.mark.parametrize(
    ("spec", "answer"),
    [(r"regex:(a+)+$", "a"), (r"regex:^(\w+\s?)*$", "a"), ("regex", r"(a|aa)+$"), ("regex", r"(x+x+)+y")],
)
async def test_a_catastrophic_regex_scores_at_once_instead_of_backtracking(spec: str, answer: str) -> None:
    hostile = "a" * 40_000 + "!" if "x" not in answer else "x" * 40_000
    # Python's re needs longer than the age of the universe here; a linear-time engine answers in milliseconds.
    assert await score(spec, hostile, answer) == 0.0


@pytest.mark.parametrize("pattern", [r"(a)\1", r"(?=a)b", r"(?<!x)y"])
def test_patterns_a_linear_time_engine_cannot_run_are_refused_with_the_reason(pattern: str) -> None:
    with pytest.raises(ConfigError, match="RE2"):
        make_verifier(f"regex:{pattern}")


@pytest.mark.parametrize("tolerance", ["nan", "inf", "-inf", "-1", "-0.5"])
def test_a_numeric_tolerance_must_be_finite_and_not_negative(tolerance: str) -> None:
    with pytest.raises(ConfigError, match="finite"):
        make_verifier(f"numeric:{tolerance}")
