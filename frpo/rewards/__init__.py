"""Reward functions in TRL's signature ``f(prompts, completions, **columns) -> list[float]``."""

from frpo.rewards.math import math_reward

__all__ = ["math_reward"]
