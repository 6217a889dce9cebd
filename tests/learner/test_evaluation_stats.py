from __future__ import annotations

import pytest

from debrief.learner.stats import Interval, mean_at_k, paired_bootstrap, pass_at_k, sign_flip_p_value


def test_mean_at_k_averages_every_sample_and_pass_at_k_counts_problems_with_one_right() -> None:
    rewards = [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]]
    assert mean_at_k(rewards) == pytest.approx(5 / 12)
    assert pass_at_k(rewards) == pytest.approx(2 / 3)
    assert mean_at_k([]) == 0.0 and pass_at_k([]) == 0.0


def test_a_consistent_positive_difference_gives_an_interval_above_zero() -> None:
    differences = [0.25, 0.5, 0.0, 0.75, 0.25, 0.5, 0.25, 0.5, 0.25, 0.0, 0.5, 0.25]
    interval = paired_bootstrap(differences, seed=1)
    mean = sum(differences) / len(differences)
    assert 0 < interval.low < mean < interval.high
    assert interval.verdict == "better"


def test_differences_around_zero_are_inconclusive_and_negative_ones_worse() -> None:
    assert paired_bootstrap([0.5, -0.5, 0.25, -0.25, 0.0, 0.5, -0.5], seed=0).verdict == "inconclusive"
    assert paired_bootstrap([-0.5, -0.25, -0.75, -0.5, -0.25, -0.5], seed=0).verdict == "worse"


def test_the_bootstrap_is_reproducible_for_a_seed_and_varies_with_it() -> None:
    differences = [0.1 * (index % 7) - 0.2 for index in range(40)]
    assert paired_bootstrap(differences, seed=3) == paired_bootstrap(differences, seed=3)
    assert paired_bootstrap(differences, seed=3) != paired_bootstrap(differences, seed=4)


def test_degenerate_inputs_give_the_observed_mean_as_a_point() -> None:
    assert paired_bootstrap([]) == Interval(low=0.0, high=0.0)
    assert paired_bootstrap([0.3]) == Interval(low=0.3, high=0.3)
    assert paired_bootstrap([0.2, 0.2, 0.2]) == Interval(low=0.2, high=0.2)
    with pytest.raises(ValueError, match="confidence"):
        paired_bootstrap([0.1, 0.2], confidence=1.5)


def test_the_sign_flip_test_is_exact_for_few_problems() -> None:
    # Four equal positive differences: only "all +" and "all -" are as extreme, 2 of 16 patterns.
    assert sign_flip_p_value([0.5, 0.5, 0.5, 0.5]) == pytest.approx(2 / 16)
    assert sign_flip_p_value([0.0, 0.0]) == 1.0
    assert sign_flip_p_value([0.5, -0.5]) == 1.0


def test_the_sign_flip_test_finds_a_large_consistent_effect_significant() -> None:
    assert sign_flip_p_value([0.25 + 0.01 * index for index in range(30)], seed=0) < 0.01
    assert sign_flip_p_value([(-1) ** index * 0.25 for index in range(30)], seed=0) > 0.5
