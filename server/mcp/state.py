"""What every MCP handler can reach, and the boundary where domain errors become ``ToolError``."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from mcp.server.mcpserver.exceptions import ToolError

from debrief.server.errors import DebriefError
from debrief.server.learning.evaluations import EvaluationManager
from debrief.server.learning.outcomes import OutcomeBook
from debrief.server.learning.runs import RunManager
from debrief.server.settings import Settings
from debrief.server.store.experience_store import ExperienceStore


@dataclass(frozen=True, kw_only=True)
class AppState:
    """What every request handler can reach: settings, the open store, runs and outcomes."""

    settings: Settings
    store: ExperienceStore
    runs: RunManager
    outcomes: OutcomeBook
    evaluations: EvaluationManager


@contextmanager
def tool_errors() -> Iterator[None]:
    """Turn domain errors into ToolError so their message reaches the client."""
    try:
        yield
    except DebriefError as error:
        raise ToolError(str(error)) from error
