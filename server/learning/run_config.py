"""The one place a learning run's ``RunConfig`` is built.

An MCP run request, the ``debrief learn`` flags, the demo's options and an outcome reflection all come here, so
they share one set of defaults: the server's prices (``settings.prices``), its per-run concurrency
(``settings.runs.concurrency``) and, for everything else, ``RunConfig``'s own defaults (the paper's).

To pass a new ``RunConfig`` field through: give it as a keyword to :func:`run_config` (``None`` keeps the default);
if the server should set it, add a field to the ``runs`` settings group and read it in :func:`run_config`.
"""

from __future__ import annotations

from typing import Any

from debrief.learner import ModelPrice, PriceTable, RunConfig
from debrief.server.learning.run_models import RunRequest
from debrief.server.settings import Settings


def price_table(settings: Settings) -> PriceTable:
    """The configured prices, applied to every model."""
    prices = settings.prices
    return PriceTable(
        default=ModelPrice(input_per_million=prices.input_per_million, output_per_million=prices.output_per_million)
    )


EMBEDDED_MODEL_CONCURRENCY = 2
"""Requests in flight to the embedded llama.cpp model, which answers one at a time: more would only queue there
and run into request timeouts."""


def run_config(settings: Settings, *, embedded: bool = False, **choices: Any) -> RunConfig:
    """A ``RunConfig`` from the caller's ``choices`` (field name → value; ``None`` = no choice) over the settings.

    Precedence: a choice > the server's settings > ``RunConfig``'s defaults. A misspelled field is refused
    (``RunConfig`` forbids extra fields). ``embedded``: the run talks to the embedded local model.
    """
    fields: dict[str, Any] = {"prices": price_table(settings)}
    if embedded:
        fields["concurrency"] = EMBEDDED_MODEL_CONCURRENCY
    if settings.runs.concurrency is not None:
        fields["concurrency"] = settings.runs.concurrency
    fields["request_timeout"] = settings.runs.request_timeout
    fields["max_retries"] = settings.runs.max_retries
    fields["adaptive_concurrency"] = settings.runs.adaptive_concurrency
    if settings.models.context_tokens is not None:
        fields["context_tokens"] = settings.models.context_tokens
    fields.update({name: value for name, value in choices.items() if value is not None})
    return RunConfig(**fields)


def request_run_config(
    settings: Settings,
    request: RunRequest,
    *,
    run_id: str,
    budget_tokens: int | None,
    budget_usd: float | None,
    embedded: bool = False,
) -> RunConfig:
    """The configuration of a run a client started over MCP (budgets already checked against the server's caps)."""
    return run_config(
        settings,
        embedded=embedded,
        run_id=run_id,
        epochs=request.epochs,
        batch_size=request.batch_size,
        group_size=request.group_size,
        seed=request.seed,
        ground_truth=request.ground_truth,
        budget_tokens=budget_tokens,
        budget_usd=budget_usd,
        agent=request.agent or None,
        max_turns=request.max_turns,
        max_completion_tokens=request.max_tokens,
        top_p=request.top_p,
        rollout_temperature=request.temperature,
        placement=request.placement,
        max_operations=request.max_operations,
        instructions=request.instructions,
    )


def outcome_reflection_config(settings: Settings, **choices: Any) -> RunConfig:
    """The configuration of a reflection on recorded outcomes (it uses the prices, concurrency and reflect fields)."""
    return run_config(settings, **choices)
