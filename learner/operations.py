"""Edits to an experience library: what reflection proposes and what a library applies."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class AddOperation(BaseModel):
    """Add a new experience."""

    model_config = ConfigDict(frozen=True)
    op: Literal["add"] = "add"
    text: str = Field(description="The new experience: one sentence, at most 32 words.")


class ModifyOperation(BaseModel):
    """Rewrite one existing experience, keeping its identity."""

    model_config = ConfigDict(frozen=True)
    op: Literal["modify"] = "modify"
    experience_id: str = Field(description="Id of the experience to rewrite.")
    text: str = Field(description="Its new text: one sentence, at most 32 words.")


class MergeOperation(BaseModel):
    """Replace several experiences by one that says what they said together."""

    model_config = ConfigDict(frozen=True)
    op: Literal["merge"] = "merge"
    experience_ids: list[str] = Field(min_length=2, description="Ids of the experiences to merge (two or more).")
    text: str = Field(description="The merged experience: one sentence, at most 32 words.")


class DeleteOperation(BaseModel):
    """Retire an experience that is wrong, harmful or redundant."""

    model_config = ConfigDict(frozen=True)
    op: Literal["delete"] = "delete"
    experience_id: str = Field(description="Id of the experience to retire.")


Operation = Annotated[
    AddOperation | ModifyOperation | MergeOperation | DeleteOperation,
    Field(discriminator="op"),
]
"""One library edit. ``keep`` is not an operation: keeping is doing nothing."""

OperationKind = Literal["add", "modify", "merge", "delete"]
