from pathlib import Path

import pytest
from pydantic import ValidationError

from debrief.learner import ModelPrice, RunConfig
from debrief.server.learning.run_config import outcome_reflection_config, request_run_config, run_config
from debrief.server.learning.run_models import RunRequest
from debrief.server.settings import PriceSettings, RunSettings, Settings


def priced(tmp_path: Path, **runs: object) -> Settings:
    return Settings(
        data_dir=tmp_path,
        prices=PriceSettings(input_per_million=3.0, output_per_million=15.0),
        runs=RunSettings.model_validate(runs),
    )


def test_every_builder_prices_with_the_servers_prices(tmp_path: Path) -> None:
    settings = priced(tmp_path)
    request = RunRequest.model_validate({"namespace": "ns", "problems": [{"question": "1+1?", "answer": "2"}]})
    configs = [
        run_config(settings),
        request_run_config(settings, request, run_id="run-1", budget_tokens=10, budget_usd=None),
        outcome_reflection_config(settings),
    ]
    assert [config.prices.default for config in configs] == [
        ModelPrice(input_per_million=3.0, output_per_million=15.0)
    ] * 3


def test_a_choice_beats_the_servers_concurrency_which_beats_the_learners_default(tmp_path: Path) -> None:
    assert run_config(priced(tmp_path)).concurrency == RunConfig().concurrency
    assert run_config(priced(tmp_path, concurrency=3)).concurrency == 3
    assert run_config(priced(tmp_path, concurrency=3), concurrency=2).concurrency == 2


def test_a_choice_of_none_keeps_the_default(tmp_path: Path) -> None:
    config = run_config(priced(tmp_path), epochs=None, budget_usd=None, max_operations=2)
    assert (config.epochs, config.budget_usd, config.max_operations) == (RunConfig().epochs, None, 2)


def test_a_request_run_takes_the_clients_choices_and_the_checked_budgets(tmp_path: Path) -> None:
    request = RunRequest.model_validate(
        {
            "namespace": "ns",
            "problems": [{"question": "1+1?", "answer": "2"}],
            "epochs": 2,
            "group_size": 3,
            "batch_size": 4,
            "seed": 9,
            "ground_truth": False,
        }
    )
    config = request_run_config(priced(tmp_path), request, run_id="run-7", budget_tokens=500, budget_usd=0.5)
    chosen = (config.run_id, config.epochs, config.group_size, config.batch_size, config.seed, config.ground_truth)
    assert chosen == ("run-7", 2, 3, 4, 9, False)
    assert (config.budget_tokens, config.budget_usd) == (500, 0.5)


def test_a_misspelled_field_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="epoch"):
        run_config(priced(tmp_path), epoch=2)
