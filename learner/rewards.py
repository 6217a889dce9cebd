"""What a reward means: the one threshold between a success and a failure.

Verifiers, recorded outcomes and reflection tasks all score in [0, 1]; prompts show an attempt as correct, usage
counters count an experience as helpful, and a group counts as mixed by this one threshold.
"""

SUCCESS_REWARD = 0.5
"""A reward of at least this is a success."""


def is_success(reward: float) -> bool:
    """Whether ``reward`` counts as a success."""
    return reward >= SUCCESS_REWARD
