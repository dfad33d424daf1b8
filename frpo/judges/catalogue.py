"""The paper's judges in one table: what each one's score means, which weights or endpoint it
reads (the paper's, overridable by setting) and how it is built.

======================  ===========  ========================================================
judge                   kind         settings: the paper's values
======================  ===========  ========================================================
moderation              harmfulness  ``judge.moderation_url``: the OpenAI API,
                                     ``judge.moderation_key_env``: ``OPENAI_API_KEY``
strongreject_finetuned  harmfulness  ``judge.strongreject_base``: google/gemma-2b,
                                     ``judge.strongreject_adapter``: qylu4156/strongreject-15k-v1
reward_model            helpfulness  ``judge.reward_model``: allenai/Llama-3.1-8B-Instruct-RM-RB2,
                                     ``judge.reward_model_revision``: 2
harmbench_cls           harmfulness  ``judge.harmbench``: cais/HarmBench-Llama-2-13b-cls
======================  ===========  ========================================================

The settings are the keys a profile's ``world.data`` may set (a local copy of a model, another
endpoint); :data:`PAPER_SETTINGS` holds their defaults. Where the paper uses each judge (the
safety reward, the evaluation judges by kind, the benchmarks) is said by its users:
:mod:`frpo.rewards.safety`, :mod:`frpo.stages.hub_judges`, :mod:`frpo.stages.benchmarks`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from frpo.judges._http import Endpoint
from frpo.judges.api import ModerationJudge
from frpo.judges.base import Judge
from frpo.judges.classifiers import RewardModelJudge, StrongRejectFinetunedJudge
from frpo.judges.harmbench import HarmBenchJudge


@dataclass(frozen=True)
class Setting:
    """One setting a judge is built from."""

    key: str
    """Its name in a hub world's ``data`` (``judge.harmbench``)."""
    paper: str
    """The paper's value: a hub id, a revision, a URL or an environment variable's name."""
    weights: bool = False
    """Whether it names model weights (a hub id, or a local copy resolved from the root)."""
    revision: str = ""
    """The setting that holds these weights' hub revision ("" for none)."""


@dataclass(frozen=True)
class Entry:
    """One judge: its class (whose ``name`` and ``kind`` it has), settings and builder."""

    cls: type[Judge]
    settings: tuple[Setting, ...]
    build: Callable[[dict[str, str]], Judge]
    """The judge from a complete settings mapping (weights are loaded here)."""

    @property
    def name(self) -> str:
        return self.cls.name

    @property
    def kind(self) -> str:
        return self.cls.kind

    @property
    def weights(self) -> tuple[str, ...]:
        """The settings that name the model weights it loads."""
        return tuple(s.key for s in self.settings if s.weights)


def _moderation(s: dict[str, str]) -> Judge:
    endpoint = Endpoint(
        base_url=s["judge.moderation_url"], api_key_env=s["judge.moderation_key_env"]
    )
    return ModerationJudge(endpoint=endpoint)


def _strongreject(s: dict[str, str]) -> Judge:
    return StrongRejectFinetunedJudge(
        s["judge.strongreject_base"], s["judge.strongreject_adapter"] or None
    )


def _reward_model(s: dict[str, str]) -> Judge:
    path = s["judge.reward_model"]
    revision = None if os.path.isdir(path) else s["judge.reward_model_revision"] or None
    return RewardModelJudge(path, revision=revision)


def _harmbench(s: dict[str, str]) -> Judge:
    return HarmBenchJudge(s["judge.harmbench"])


JUDGES: dict[str, Entry] = {
    e.name: e
    for e in (
        Entry(
            ModerationJudge,
            (
                Setting("judge.moderation_url", Endpoint.base_url),
                Setting("judge.moderation_key_env", Endpoint.api_key_env),  # "": keyless server
            ),
            _moderation,
        ),
        Entry(
            StrongRejectFinetunedJudge,
            (
                Setting("judge.strongreject_base", "google/gemma-2b", weights=True),
                Setting("judge.strongreject_adapter", "qylu4156/strongreject-15k-v1", True),
            ),
            _strongreject,
        ),
        Entry(
            RewardModelJudge,
            (
                Setting(
                    "judge.reward_model",
                    "allenai/Llama-3.1-8B-Instruct-RM-RB2",
                    weights=True,
                    revision="judge.reward_model_revision",
                ),
                Setting("judge.reward_model_revision", "2"),  # RB2's numbered training runs
            ),
            _reward_model,
        ),
        Entry(
            HarmBenchJudge,
            (Setting("judge.harmbench", "cais/HarmBench-Llama-2-13b-cls", weights=True),),
            _harmbench,
        ),
    )
}
SETTINGS: dict[str, Setting] = {s.key: s for e in JUDGES.values() for s in e.settings}
PAPER_SETTINGS: dict[str, str] = {key: s.paper for key, s in SETTINGS.items()}
"""Every setting's paper value (a hub world's ``data`` overrides them one by one)."""


def make_judge(name: str, settings: dict[str, str]) -> Judge:
    """Build judge ``name`` with ``settings`` (every key of :data:`PAPER_SETTINGS`); no caching
    here (:mod:`frpo.judges.hf_cache` keeps one copy of each model per process)."""
    if name not in JUDGES:
        raise ValueError(f"unknown judge {name!r}; known: {list(JUDGES)}")
    return JUDGES[name].build(settings)


def download_command(key: str, settings: dict[str, str]) -> str:
    """How to get the weights of setting ``key``: an ``hf download`` command (huggingface_hub),
    or where to copy a local model."""
    value = settings[key]
    if value.startswith(("/", ".", "~")):
        return f"copy the model into {value}"
    revision = SETTINGS[key].revision
    cmd = f"hf download {value}"
    if revision and settings[revision]:
        cmd += f" --revision {settings[revision]}"
    return cmd
