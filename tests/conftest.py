"""Fixtures shared by every test: anyio on asyncio, no requests to a real model endpoint, the slow tier."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests of the real embedded model belong to the slow tier (``pytest -m slow``) with the scale tests."""
    for item in items:
        if item.get_closest_marker("local_model") is not None:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def refuse_real_model_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Like pydantic-ai's ALLOW_MODEL_REQUESTS = False: a model endpoint off this machine fails the test.

    Loopback fakes stay allowed. Subprocesses started with the test's environment inherit the setting.
    """
    monkeypatch.setenv("DEBRIEF_ALLOW_MODEL_REQUESTS", "false")
