"""Reward functions in TRL's signature ``f(prompts, completions, **columns) -> list[float]``."""

from frpo.rewards.code import code_reward
from frpo.rewards.helpfulness import HelpfulnessReward
from frpo.rewards.math import math_reward
from frpo.rewards.safety import (
    SafetyReward,
    local_scoring,
    on_main_process,
    paper_safety_reward,
)

__all__ = [
    "HelpfulnessReward",
    "SafetyReward",
    "code_reward",
    "local_scoring",
    "math_reward",
    "on_main_process",
    "paper_safety_reward",
]
