"""Token and cost accounting per call, stage, step and run; the price table and the run budget."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pydantic import BaseModel, Field

from debrief.learner.backend import Stage, Usage


class TokenCount(BaseModel):
    """Tokens, requests and cost of some calls."""

    prompt_tokens: int = Field(default=0, description="Prompt tokens billed.")
    completion_tokens: int = Field(default=0, description="Completion tokens billed.")
    cached_tokens: int = Field(default=0, description="Prompt tokens the server reported as cached.")
    requests: int = Field(default=0, description="HTTP requests made (a request with n = G counts once).")
    cost_usd: float = Field(default=0.0, description="Cost from the price table, in US dollars.")

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def plus(self, other: TokenCount) -> TokenCount:
        """The sum of two counts."""
        return TokenCount(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            requests=self.requests + other.requests,
            cost_usd=self.cost_usd + other.cost_usd,
        )


def total(counts: Iterable[TokenCount]) -> TokenCount:
    """The sum of several counts."""
    result = TokenCount()
    for count in counts:
        result = result.plus(count)
    return result


class ModelPrice(BaseModel):
    """What one model costs, in US dollars per million tokens."""

    input_per_million: float = Field(default=0.0, ge=0, description="Uncached prompt tokens.")
    cached_input_per_million: float | None = Field(
        default=None, ge=0, description="Cached prompt tokens (default: the uncached price)."
    )
    output_per_million: float = Field(default=0.0, ge=0, description="Completion tokens.")


class PriceTable(BaseModel):
    """Prices per model name; models not listed cost ``default`` (free unless set)."""

    models: dict[str, ModelPrice] = Field(default_factory=dict, description="Price per model name.")
    default: ModelPrice = Field(default_factory=ModelPrice, description="Price of models not listed.")

    def cost(self, model: str, usage: Usage) -> float:
        """The cost of ``usage`` on ``model``."""
        price = self.models.get(model, self.default)
        cached_price = (
            price.input_per_million if price.cached_input_per_million is None else price.cached_input_per_million
        )
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        return (
            (usage.prompt_tokens - cached) * price.input_per_million
            + cached * cached_price
            + usage.completion_tokens * price.output_per_million
        ) / 1_000_000


class Ledger:
    """Running totals per stage for one step (or any other span of calls)."""

    def __init__(self, prices: PriceTable) -> None:
        self._prices = prices
        self.by_stage: dict[Stage, TokenCount] = {}

    def record(self, stage: Stage, model: str, usage: Usage) -> TokenCount:
        """Add one call's usage; return its count with cost."""
        count = TokenCount(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cached_tokens=usage.cached_tokens,
            requests=usage.requests,
            cost_usd=self._prices.cost(model, usage),
        )
        self.by_stage[stage] = self.by_stage.get(stage, TokenCount()).plus(count)
        return count

    def add(self, by_stage: Mapping[Stage, TokenCount]) -> None:
        """Add totals carried over from elsewhere (a resumed step's finished rollouts)."""
        for stage, count in by_stage.items():
            self.by_stage[stage] = self.by_stage.get(stage, TokenCount()).plus(count)

    @property
    def total(self) -> TokenCount:
        """All stages together."""
        return total(self.by_stage.values())


def budget_stop_reason(
    spent: TokenCount, step_costs: list[TokenCount], *, budget_tokens: int | None, budget_usd: float | None
) -> str | None:
    """Why another step must not start, or ``None``.

    A step is not started when the budget is spent, or when one more step as expensive as the mean step so far
    would overrun it: runs stop between steps, never halfway through one.
    """
    steps = len(step_costs)
    mean_tokens = sum(cost.total_tokens for cost in step_costs) / steps if steps else 0.0
    mean_usd = sum(cost.cost_usd for cost in step_costs) / steps if steps else 0.0
    if budget_tokens is not None and spent.total_tokens + mean_tokens > budget_tokens:
        return f"token budget {budget_tokens} would be exceeded ({spent.total_tokens} spent, ~{mean_tokens:.0f} a step)"
    if budget_usd is not None and spent.cost_usd + mean_usd > budget_usd:
        return f"budget ${budget_usd:.4f} would be exceeded (${spent.cost_usd:.4f} spent, ~${mean_usd:.4f} a step)"
    return None
