"""What the validation gate records per step: each planned edit's figures and whether it was kept."""

from __future__ import annotations

from pydantic import BaseModel, Field

from debrief.learner.accounting import TokenCount
from debrief.learner.operations import Operation
from debrief.learner.stats import BOOTSTRAP_METHOD


class EditValidation(BaseModel):
    """How one planned edit did on the validation problems."""

    operation: Operation = Field(description="The edit, as consolidation planned it.")
    kept: bool = Field(description="Whether the edit went on to the library.")
    mean_without: float = Field(description="Validation Mean@K of the library without the edit.")
    mean_with: float = Field(description="Validation Mean@K with the edit.")
    delta: float = Field(description="mean_with - mean_without (paired over problems and seeds).")
    ci95: list[float] = Field(description="95% interval of delta, paired bootstrap over problems: [low, high].")
    reason: str = Field(description="Why it was kept or rejected, with the figures.")


class ValidationRecord(BaseModel):
    """What the gate did in one step."""

    problems: int = Field(description="Validation problems.")
    samples: int = Field(description="Attempts per problem and library (K).")
    margin: float = Field(description="Noise margin the edits were held to.")
    interval: str = Field(default=BOOTSTRAP_METHOD, description="How the intervals were computed.")
    mean_before: float = Field(description="Validation Mean@K of the library before the step's edits.")
    mean_after: float = Field(description="Validation Mean@K of the library with the kept edits.")
    edits: list[EditValidation] = Field(description="Per planned edit, in plan order.")
    tokens: TokenCount = Field(description="Tokens and cost of the validation attempts of this step.")
