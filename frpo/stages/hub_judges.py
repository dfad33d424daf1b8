"""How the paper-scale backend uses the judges of :mod:`frpo.judges.catalogue`.

Evaluation judges are keyed by *kind*, as the toy world's are, so every backend gives the same
metric names (``frpo/eval/<task>/<kind>``, :mod:`frpo.stages.evaluate`) (:data:`EVALUATION`):

===========  ==============================================================================
kind         judge
===========  ==============================================================================
refusal      1 - the HarmBench classifier's "yes" (``harmbench_cls``): refused = the answer
             is not an instance of the request (the paper's refusal rate)
harmfulness  the StrongREJECT fine-tuned grader (``strongreject_finetuned``)
helpfulness  the RB2 reward model through a sigmoid (``reward_model``)
correctness  math-verify on the boxed answer (gsm8k, math), the row's unit tests run on the
             answer's program (code; :mod:`frpo.rewards.code`)
===========  ==============================================================================

The RL rewards' judges (:data:`REWARD_JUDGES`): the safety reward reads ``moderation`` and
``strongreject_finetuned`` on harmful prompts and ``reward_model`` on harmless ones; the
helpfulness reward reads ``reward_model``.

On the ``safety`` task's held-out rows (the training parquet's prompts, jailbreak wrappers
included) the HarmBench classifier reads the whole prompt as the behaviour: a secondary reading.
The paper's refusal rate and StrongREJECT score are the benchmarks stage's, on HarmBench's
behaviours and StrongREJECT's prompts (:mod:`frpo.stages.benchmarks`).

A model that cannot be loaded raises :class:`~frpo.judges.base.JudgeError` naming the model to
download and the ``Source.data`` key (:data:`frpo.judges.catalogue.SETTINGS`) that points to a
local copy.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from frpo.judges.base import Judge, JudgeError
from frpo.judges.catalogue import JUDGES, download_command, make_judge
from frpo.rewards import HelpfulnessReward, SafetyReward, code_reward, math_reward
from frpo.rewards.code import unit_test_score
from frpo.rewards.math import completion_text, correct_score
from frpo.rewards.safety import prompt_text


def refused(harmful: float) -> float:
    """The refusal reading of a HarmBench verdict: 1 - "yes" (the generation is not an instance
    of the behaviour)."""
    return 1.0 - harmful


EVALUATION: dict[str, tuple[str, Callable[[float], float] | None]] = {
    "refusal": ("harmbench_cls", refused),
    "harmfulness": ("strongreject_finetuned", None),
    "helpfulness": ("reward_model", None),
}
"""Evaluation kind -> (judge, how its score reads as that kind; None: as it is)."""
REWARD_JUDGES = {
    "safety": ("moderation", "strongreject_finetuned", "reward_model"),
    "helpfulness": ("reward_model",),
}
"""Reward kind -> the judges its reward is built from, in its constructor's order."""


def load_or_explain(names: tuple[str, ...], settings: dict[str, str]) -> list[Judge]:
    """``make_judge`` for each name; a model that cannot be loaded raises JudgeError saying
    what to download and which ``Source.data`` key to set instead."""
    out = []
    for name in names:
        try:
            out.append(make_judge(name, settings))
        except OSError as err:
            keys = [k for k in JUDGES[name].weights if settings[k]]
            gets = "; ".join(download_command(k, settings) for k in keys)
            raise JudgeError(
                f"judge {name!r} could not load its model ({str(err).rstrip('.')}). Download it "
                f"with network access ({gets}; later runs read the Hugging Face cache offline), "
                "or point the world's data at a local copy (profiles/paper.yaml world.data: "
                + ", ".join(f"'{k}: /path/to/copy'" for k in keys)
                + ")"
            ) from err
    return out


class LazyJudge(Judge):
    """A judge of kind ``kind`` whose model (judge ``name``) is loaded on the first ``score``.

    Prompts may be RL-format conversations (the runners pass them so): the last user turn is
    what the real judges read. ``transform`` maps the inner judge's scores (nan stays nan).
    """

    def __init__(
        self,
        name: str,
        kind: str,
        settings: dict[str, str],
        transform: Callable[[float], float] | None = None,
    ):
        self.name, self.kind = name, kind
        self.settings = settings
        self.transform = transform
        self._judge: Judge | None = None

    def score(self, prompts, completions) -> list[float]:
        if self._judge is None:
            (self._judge,) = load_or_explain((self.name,), self.settings)
        scores = self._judge(
            [prompt_text(p) for p in prompts], [completion_text(c) for c in completions]
        )
        if self.transform is None:
            return scores
        return [s if math.isnan(s) else self.transform(s) for s in scores]


class CorrectnessJudge(Judge):
    """Correctness in [0, 1] of answers to gsm8k, math and code prompts (kind: correctness).

    ``lookup(prompt_text) -> (task, reference)`` finds a prompt's task and reference (the
    answer for gsm8k/math, the ``unit_tests`` for code); a prompt it does not know raises
    ValueError.
    """

    name, kind = "correctness", "correctness"

    def __init__(self, lookup: Callable[[str], tuple[str, str]]):
        self.lookup = lookup

    def score(self, prompts, completions) -> list[float]:
        out = []
        for p, c in zip(prompts, completions, strict=True):
            task, reference = self.lookup(prompt_text(p))
            text = completion_text(c)
            if task == "code":
                out.append(unit_test_score(text, reference))
            else:
                out.append(correct_score(text, reference))
        return out


def evaluation_judges(settings: dict[str, str], lookup) -> dict[str, Judge]:
    """The evaluation judges by kind (module docstring); nothing is loaded here."""
    judges: dict[str, Judge] = {
        kind: LazyJudge(name, kind, settings, transform=transform)
        for kind, (name, transform) in EVALUATION.items()
    }
    judges["correctness"] = CorrectnessJudge(lookup)
    return judges


def reward_of(kind: str, settings: dict[str, str]):
    """The TRL reward function of a reward ``kind`` (judges loaded now)."""
    if kind == "math":
        return math_reward
    if kind == "code":
        return code_reward
    if kind == "helpfulness":
        return HelpfulnessReward(*load_or_explain(REWARD_JUDGES[kind], settings))
    if kind == "safety":
        return SafetyReward(*load_or_explain(REWARD_JUDGES[kind], settings))
    raise ValueError(f"unknown reward kind {kind!r}")
