"""Domain errors. Each message says what was wrong and how to fix it; the MCP layer turns them into ToolError."""

from __future__ import annotations


class DebriefError(Exception):
    """Base of every error Debrief reports to a user or client."""


class InvalidInput(DebriefError):
    """A request was malformed or out of bounds; nothing was written."""


class NotFound(DebriefError):
    """A named experience, namespace, version or run does not exist."""


class Conflict(DebriefError):
    """The request clashes with the current state (for example a stale version)."""


class StoreUnavailable(DebriefError):
    """The experience store cannot be reached or opened."""


class MissingComponent(DebriefError):
    """An optional part (a model file, an extra) is not installed; the message says what to install."""


class ModelRequestsRefused(DebriefError):
    """A model endpoint off this machine was configured while DEBRIEF_ALLOW_MODEL_REQUESTS is false (tests)."""

    def __init__(self, base_url: str, purpose: str) -> None:
        super().__init__(
            f"the {purpose} endpoint {base_url!r} is off this machine and DEBRIEF_ALLOW_MODEL_REQUESTS is false "
            "(the test suite sets it so no test reaches a real model): use a loopback fake, or allow model requests"
        )
