"""The helpfulness reward: sigmoid of a reward model's score (paper Sec. 5.1 and Fig. 10).

Used alone for RL downstream on UltraFeedback prompts (GRPO with the RB2 reward model), and inside
:class:`frpo.rewards.safety.SafetyReward` for harmless prompts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from frpo.judges.base import Judge
from frpo.rewards.math import completion_text
from frpo.rewards.safety import prompt_text


class HelpfulnessReward:
    """TRL reward function ``f(prompts, completions, **kw) -> list[float | None]``.

    Each value is the judge's score (kind "helpfulness", e.g.
    :class:`frpo.judges.classifiers.RewardModelJudge`: sigmoid of the RM logit, in (0, 1));
    undecided pairs give None and are counted in ``undecided``.
    """

    __name__ = "helpfulness"

    def __init__(self, judge: Judge):
        if judge.kind != "helpfulness":
            raise ValueError(f"judge {judge.name} has kind {judge.kind!r}, expected 'helpfulness'")
        self.judge = judge
        self.undecided = 0

    def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any
    ) -> list[float | None]:
        scores = self.judge(
            [prompt_text(p) for p in prompts], [completion_text(c) for c in completions]
        )
        out = [None if math.isnan(s) else float(s) for s in scores]
        self.undecided += sum(r is None for r in out)
        return out
