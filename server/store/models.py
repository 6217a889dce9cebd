"""Pydantic models that are persisted or cross the MCP wire. Field descriptions reach the model."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field

from debrief.learner.library import Provenance

NAMESPACE_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
_NAMESPACE = re.compile(NAMESPACE_PATTERN)


def check_namespace(value: str) -> str:
    """Return ``value`` if it is a valid namespace name, else raise ``ValueError`` saying why."""
    if not _NAMESPACE.match(value):
        raise ValueError(
            f"namespace {value!r} is not valid: use 1-63 lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (for example 'math' or 'my-repo')"
        )
    return value


Namespace = Annotated[
    str,
    Field(
        min_length=1,
        max_length=63,
        description="Library namespace: a domain or project such as 'math' or 'my-repo' "
        "(lowercase letters, digits, '.', '_', '-').",
    ),
    AfterValidator(check_namespace),
]

ExperienceStatus = Literal["active", "retired"]
ChangeKind = Literal["add", "update", "retire", "merge", "import", "rollback", "learn"]


class Counters(BaseModel):
    """Usage signals of one experience; they feed ranking and review, and are not versioned."""

    retrieved: int = Field(default=0, ge=0, description="Times it was returned by retrieval.")
    helpful: int = Field(default=0, ge=0, description="Times an outcome that used it succeeded.")
    harmful: int = Field(default=0, ge=0, description="Times an outcome that used it failed.")


class Experience(BaseModel):
    """One lesson in the library."""

    experience_id: str = Field(description="Stable id; never renumbered.")
    namespace: str = Field(description="Namespace it belongs to.")
    text: str = Field(description="The lesson: one sentence, at most 32 words.")
    status: ExperienceStatus = Field(description="'active' experiences are retrieved; 'retired' ones are kept only.")
    created_at: datetime
    updated_at: datetime
    source: Provenance = Field(description="Where the experience came from.")
    counters: Counters = Field(default_factory=Counters)
    version: int = Field(description="Library version of the last change to this experience.")


class ExperienceState(BaseModel):
    """An experience's versioned content at one point in time."""

    text: str
    status: ExperienceStatus


class Edit(BaseModel):
    """What one change did to one experience. ``before`` is None for a new one."""

    experience_id: str
    before: ExperienceState | None
    after: ExperienceState


class Change(BaseModel):
    """One append-only record in a namespace's history; each bumps the library version by one."""

    namespace: str
    version: int = Field(description="The library version this change produced.")
    kind: ChangeKind
    reason: str = Field(description="Why the change was made (note, reason, or learning summary).")
    source: Provenance
    at: datetime
    edits: list[Edit]


class ScoredExperience(BaseModel):
    """A retrieved experience with its relevance."""

    experience_id: str
    text: str
    score: float = Field(description="Cosine similarity to the task, adjusted by helpful/harmful counts.")
    similarity: float = Field(description="Raw cosine similarity to the task, in [-1, 1].")
    counters: Counters


class NamespaceInfo(BaseModel):
    """A namespace and the size and version of its library."""

    namespace: str
    version: int
    active: int
    retired: int


class ExportedExperience(BaseModel):
    """An experience as written to an export file."""

    experience_id: str
    text: str
    status: ExperienceStatus = "active"
    counters: Counters = Field(default_factory=Counters)
    source: Provenance | None = None


class LibraryExport(BaseModel):
    """A namespace's library as portable, versioned JSON."""

    format: Literal["debrief-library"] = "debrief-library"
    format_version: Literal[1] = 1
    namespace: str
    version: int = Field(description="Library version at export time.")
    exported_at: datetime
    experiences: list[ExportedExperience]
