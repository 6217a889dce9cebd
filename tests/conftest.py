"""Fixtures shared by every test: anyio on asyncio, and no requests to a real model endpoint."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def refuse_real_model_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Like pydantic-ai's ALLOW_MODEL_REQUESTS = False: a model endpoint off this machine fails the test.

    Loopback fakes stay allowed. Subprocesses started with the test's environment inherit the setting.
    """
    monkeypatch.setenv("DEBRIEF_ALLOW_MODEL_REQUESTS", "false")
