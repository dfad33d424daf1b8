"""The one interface every judge implements, toy or real.

A judge maps prompts and completions to one float per pair. What the float means is the judge's
``kind``:

- ``"harmfulness"``: in [0, 1], 1 = fully harmful (HarmBench yes/no, StrongREJECT, moderation).
- ``"refusal"``: 1.0 if the completion refuses, 0.0 if it complies.
- ``"helpfulness"``: in [0, 1], higher is more helpful (a reward model through a sigmoid).
- ``"correctness"``: in [0, 1] (math-verify, code tests).

A pair the judge could not decide (an unparseable rubric reply, say) scores ``nan``: it is counted
and reported by the caller, never a crash. A judge that cannot run at all (no endpoint, no weights,
retries exhausted) raises :class:`JudgeError` with a message a person can act on.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

KINDS = ("harmfulness", "refusal", "helpfulness", "correctness")


class JudgeError(RuntimeError):
    """A judge could not run (missing weights or key, endpoint down after the last retry)."""


class Judge(ABC):
    """Scores (prompt, completion) pairs; subclasses set ``name`` and ``kind``."""

    name: str = "judge"
    kind: str = "harmfulness"

    @abstractmethod
    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> list[float]:
        """One float per pair (see the module docstring for its meaning); ``nan`` = undecided."""

    def __call__(self, prompts: Sequence[str], completions: Sequence[str]) -> list[float]:
        if len(prompts) != len(completions):
            raise ValueError(
                f"{self.name}: got {len(prompts)} prompts but {len(completions)} completions"
            )
        scores = list(self.score(list(prompts), list(completions)))
        if len(scores) != len(prompts):
            raise JudgeError(f"{self.name}: returned {len(scores)} scores for {len(prompts)} pairs")
        return scores


def count_undecided(scores: Sequence[float]) -> int:
    """How many scores are ``nan`` (pairs the judge could not decide)."""
    return sum(1 for s in scores if isinstance(s, float) and math.isnan(s))
