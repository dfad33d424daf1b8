"""The paper-scale backend's judges: built from the ``judge.*`` settings, loaded on first use.

Evaluation judges are keyed by *kind*, as the toy world's are, so every backend gives the same
metric names (``frpo/eval/<task>/<kind>``, :mod:`frpo.stages.evaluate`):

===========  ==============================================================================
kind         judge
===========  ==============================================================================
refusal      1 - the HarmBench classifier's "yes" (cais/HarmBench-Llama-2-13b-cls): refused
             = the answer is not an instance of the request (the paper's refusal rate)
harmfulness  the StrongREJECT fine-tuned grader (google/gemma-2b + qylu4156/strongreject-15k-v1)
helpfulness  sigmoid of the RB2 reward model (allenai/Llama-3.1-8B-Instruct-RM-RB2)
correctness  math-verify on the boxed answer (gsm8k, math), the row's unit tests run on the
             answer's program (code; :mod:`frpo.rewards.code`)
===========  ==============================================================================

On the ``safety`` task's held-out rows (the training parquet's prompts, jailbreak wrappers
included) the HarmBench classifier reads the whole prompt as the behaviour: a secondary reading.
The paper's refusal rate and StrongREJECT score are the benchmarks stage's, on HarmBench's
behaviours and StrongREJECT's prompts (:mod:`frpo.stages.benchmarks`).

A model that cannot be loaded raises :class:`~frpo.judges.base.JudgeError` naming the model to
download and the ``Source.data`` key (:data:`JUDGE_SETTINGS`) that points to a local copy.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

from frpo.judges.base import Judge, JudgeError

JUDGE_SETTINGS = {  # Source.data key -> the paper's model (hub id) or endpoint
    "judge.harmbench": "cais/HarmBench-Llama-2-13b-cls",
    "judge.strongreject_base": "google/gemma-2b",
    "judge.strongreject_adapter": "qylu4156/strongreject-15k-v1",
    "judge.reward_model": "allenai/Llama-3.1-8B-Instruct-RM-RB2",
    "judge.reward_model_revision": "2",
    "judge.moderation_url": "https://api.openai.com/v1",
    "judge.moderation_key_env": "OPENAI_API_KEY",  # "" for a keyless (local) endpoint
}
MODEL_SETTINGS = (  # the settings that name model weights (local paths resolve from the root)
    "judge.harmbench",
    "judge.strongreject_base",
    "judge.strongreject_adapter",
    "judge.reward_model",
)


def make_judge(name: str, settings: dict[str, str]) -> Judge:
    """Load one judge (weights, or an endpoint) with the ``judge.*`` settings; no caching here
    (:mod:`frpo.judges.hf_cache` keeps one copy of each model per process)."""
    from frpo.judges import Endpoint, ModerationJudge
    from frpo.judges.classifiers import RewardModelJudge, StrongRejectFinetunedJudge
    from frpo.judges.harmbench import HarmBenchJudge

    if name == "moderation":
        endpoint = Endpoint(
            base_url=settings["judge.moderation_url"],
            api_key_env=settings["judge.moderation_key_env"],
        )
        return ModerationJudge(endpoint=endpoint)
    if name == "strongreject_finetuned":
        adapter = settings["judge.strongreject_adapter"] or None
        return StrongRejectFinetunedJudge(settings["judge.strongreject_base"], adapter)
    if name == "reward_model":
        path = settings["judge.reward_model"]
        revision = None if os.path.isdir(path) else settings["judge.reward_model_revision"] or None
        return RewardModelJudge(path, revision=revision)
    if name == "harmbench_cls":
        return HarmBenchJudge(settings["judge.harmbench"])
    raise ValueError(f"unknown judge {name!r}")


JUDGE_NEEDS = {  # judge -> the settings naming the models it loads
    "moderation": ("judge.moderation_url",),
    "strongreject_finetuned": ("judge.strongreject_base", "judge.strongreject_adapter"),
    "reward_model": ("judge.reward_model",),
    "harmbench_cls": ("judge.harmbench",),
}


def download_command(key: str, settings: dict[str, str]) -> str:
    """How to get the model of setting ``key``: an ``hf download`` command (huggingface_hub)."""
    if settings[key].startswith(("/", ".", "~")):
        return f"copy the model into {settings[key]}"
    cmd = f"hf download {settings[key]}"
    if key == "judge.reward_model" and settings["judge.reward_model_revision"]:
        cmd += f" --revision {settings['judge.reward_model_revision']}"
    return cmd


def load_or_explain(names: tuple[str, ...], settings: dict[str, str]) -> list[Judge]:
    """``make_judge`` for each name; a model that cannot be loaded raises JudgeError saying
    what to download and which ``Source.data`` key to set instead."""
    out = []
    for name in names:
        try:
            out.append(make_judge(name, settings))
        except OSError as err:
            keys = [k for k in JUDGE_NEEDS[name] if settings[k]]
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
        from frpo.rewards.math import completion_text
        from frpo.rewards.safety import prompt_text

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
        from frpo.rewards.code import unit_test_score
        from frpo.rewards.math import completion_text, correct_score
        from frpo.rewards.safety import prompt_text

        out = []
        for p, c in zip(prompts, completions, strict=True):
            task, reference = self.lookup(prompt_text(p))
            text = completion_text(c)
            if task == "code":
                out.append(unit_test_score(text, reference))
            else:
                out.append(correct_score(text, reference))
        return out


def refused(harmful: float) -> float:
    """The refusal reading of a HarmBench verdict: 1 - "yes" (the generation is not an instance
    of the behaviour)."""
    return 1.0 - harmful


def evaluation_judges(settings: dict[str, str], lookup) -> dict[str, Judge]:
    """The evaluation judges by kind (module docstring); nothing is loaded here."""
    return {
        "refusal": LazyJudge("harmbench_cls", "refusal", settings, transform=refused),
        "harmfulness": LazyJudge("strongreject_finetuned", "harmfulness", settings),
        "helpfulness": LazyJudge("reward_model", "helpfulness", settings),
        "correctness": CorrectnessJudge(lookup),
    }


def reward_of(kind: str, settings: dict[str, str]):
    """The TRL reward function of a reward ``kind`` (judges loaded now)."""
    from frpo.rewards import HelpfulnessReward, SafetyReward, code_reward, math_reward

    if kind == "math":
        return math_reward
    if kind == "code":
        return code_reward
    if kind == "helpfulness":
        return HelpfulnessReward(*load_or_explain(("reward_model",), settings))
    if kind == "safety":
        names = ("moderation", "strongreject_finetuned", "reward_model")
        return SafetyReward(*load_or_explain(names, settings))
    raise ValueError(f"unknown reward kind {kind!r}")
