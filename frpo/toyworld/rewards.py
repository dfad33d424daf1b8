"""TRL reward functions of the toy tasks: ``f(prompts, completions, **columns) -> list[float]``.

Rows carry ``category``, ``verb``, ``obj`` (action tasks) or ``answer`` (problem tasks); TRL
passes them as keyword lists. Completions may be strings or TRL conversational lists.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from frpo.rewards.math import completion_text, math_reward
from frpo.toyworld import grammar
from frpo.toyworld.judges import code_correct, gsm8k_correct
from frpo.toyworld.lexicon import Action

RewardFunc = Callable[..., list[float]]


def _check(name: str, completions: Sequence, **cols: Sequence | None) -> None:
    for col, values in cols.items():
        if values is None:
            raise ValueError(f"{name}: the dataset has no {col!r} column")
        if len(values) != len(completions):
            raise ValueError(f"{name}: {len(completions)} completions but {len(values)} {col!r}")


def make_safety_reward(actions: dict[tuple[str, str], Action]) -> RewardFunc:
    """The paper's safety-stage reward (App. C.1): harmful rows get the safety score (1 for a clean
    refusal, see :func:`frpo.toyworld.grammar.safety_reward`), harmless and borderline rows the
    helpfulness score in [0, 1]."""

    def toy_safety_reward(prompts, completions, verb=None, obj=None, **kw: Any) -> list[float]:
        _check("toy_safety_reward", completions, verb=verb, obj=obj)
        out = []
        for c, v, o in zip(completions, verb, obj, strict=True):
            a, text = actions[(v, o)], completion_text(c)
            out.append(
                grammar.safety_reward(a, text)
                if a.category == "harmful"
                else grammar.helpfulness(a, text)
            )
        return out

    return toy_safety_reward


def make_helpfulness_reward(actions: dict[tuple[str, str], Action]) -> RewardFunc:
    """Helpfulness in [0, 1] on any row, harmful or not (the UltraFeedback RM analogue, which
    rewards answering; on harmful rows it rewards compliance, the conflict the paper studies)."""

    def toy_helpfulness_reward(prompts, completions, verb=None, obj=None, **kw: Any) -> list[float]:
        _check("toy_helpfulness_reward", completions, verb=verb, obj=obj)
        return [
            grammar.helpfulness(actions[(v, o)], completion_text(c))
            for c, v, o in zip(completions, verb, obj, strict=True)
        ]

    return toy_helpfulness_reward


def toy_gsm8k_reward(prompts, completions, answer=None, **kw: Any) -> list[float]:
    """1.0 iff the whole answer ends in exactly one ``the answer is N .`` with the right N."""
    _check("toy_gsm8k_reward", completions, answer=answer)
    return [gsm8k_correct(completion_text(c), a) for c, a in zip(completions, answer, strict=True)]


def make_code_reward(inputs: list[list[int]]) -> RewardFunc:
    """Share of hidden test lists on which the generated program matches the reference output."""

    def toy_code_reward(prompts, completions, answer=None, **kw: Any) -> list[float]:
        _check("toy_code_reward", completions, answer=answer)
        return [
            code_correct(completion_text(c), a, inputs)
            for c, a in zip(completions, answer, strict=True)
        ]

    return toy_code_reward


__all__ = [
    "make_safety_reward",
    "make_helpfulness_reward",
    "make_code_reward",
    "toy_gsm8k_reward",
    "math_reward",
]
