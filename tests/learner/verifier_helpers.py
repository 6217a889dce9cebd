"""User verifiers importable as ``module:function`` in tests."""

from __future__ import annotations


def explode(response: str, answer: str | None) -> float:
    raise ValueError("this verifier always fails")


def contains_answer(response: str, answer: str | None) -> bool:
    return answer is not None and answer in response


async def async_contains_answer(response: str, answer: str | None) -> bool:
    return answer is not None and answer in response
