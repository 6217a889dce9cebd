"""Results of MCP tools that are not store records themselves."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from debrief.server.store.models import Change, NamespaceInfo, ScoredExperience


class RetrieveResult(BaseModel):
    """Experiences relevant to a task, ranked, with a block ready to paste into a prompt."""

    namespace: str
    experiences: list[ScoredExperience] = Field(description="Most relevant first.")
    prompt_block: str = Field(description="The experiences formatted for a system prompt; empty when none matched.")


class NamespaceList(BaseModel):
    """Every namespace with its library size and version."""

    namespaces: list[NamespaceInfo]


class HistoryPage(BaseModel):
    """Changes to a namespace's library, oldest first."""

    namespace: str
    current_version: int
    changes: list[Change]
    next_since_version: int | None = Field(
        description="Pass as since_version to read the next page; null when this page reaches the current version."
    )


class ImportResult(BaseModel):
    """What an import did."""

    namespace: str
    mode: Literal["merge", "replace"]
    version: int = Field(description="Library version after the import.")
    change: Change | None = Field(description="The recorded change; null when the import changed nothing.")
