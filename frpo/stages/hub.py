"""The paper-scale backend (``Source(kind="hub")``): the real loaders, rewards and judges.

Tasks and what serves them (``Source.data`` maps a task to a hub id or a local file; relative
paths are taken from the repository root):

========  =====================================  ===========================  ==================
task      loader (:mod:`frpo.data`)              RL reward                    hub splits
========  =====================================  ===========================  ==================
safety    ``load_safety_prompts`` (parquet)      :class:`SafetyReward`        one file
alpaca    ``load_alpaca``                        :class:`HelpfulnessReward`   ``train`` only
gsm8k     ``load_gsm8k`` (``rl``/``sft``)        :func:`math_reward`          ``train``/``test``
math      ``load_math_train`` (levels 3-5)       :func:`math_reward`          ``train`` only
code      ``load_opencodeinstruct`` (SFT only)   none (evalplus harness)      ``train`` (sample)
helpful   ``load_ultrafeedback_prompts``         :class:`HelpfulnessReward`   ``*_prefs``
attack    ``load_harmful_pairs`` (SFT only)      none (the attack's data)     ``train`` only
========  =====================================  ===========================  ==================

Splits: ``heldout`` is the source's own held-out split where it has one (GSM8K ``test``,
UltraFeedback ``test_prefs``); otherwise (a local file, or a hub set with one split) row ``i``
of the loaded set is held out when ``i % 5 == 4``, as for :mod:`frpo.stages.files`.

The RL format has ``prompt`` (one user turn), ``task`` and the reward's columns (``category``,
``answer``); ``alpaca``/``code``/``attack`` prompts are the user turn of their SFT ``messages``.
Every reward function scores only its own task's rows (None for the others, which TRL leaves
out), so tasks can be mixed in one RL dataset.

Judges and reward models are built lazily, on the first score: constructing the backend, its
``tasks``, ``dataset``/``sft_dataset``, ``reward_funcs`` and ``judges`` need no model and no
network. A model that cannot be loaded raises :class:`~frpo.judges.base.JudgeError` naming the
model to download and the ``Source.data`` key (``judge.*``, :data:`JUDGE_SETTINGS`) that points
to a local copy instead. ``judges()``: HarmBench classifier and StrongREJECT fine-tuned grader
(harmfulness), the RB2 reward model (helpfulness).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

from frpo.judges.base import Judge, JudgeError
from frpo.stages.sources import ModelPathBackend

JUDGE_PREFIX = "judge."
JUDGE_SETTINGS = {  # Source.data key -> the paper's model (hub id) or endpoint
    "judge.harmbench": "cais/HarmBench-Llama-2-13b-cls",
    "judge.strongreject_base": "google/gemma-2b",
    "judge.strongreject_adapter": "qylu4156/strongreject-15k-v1",
    "judge.reward_model": "allenai/Llama-3.1-8B-Instruct-RM-RB2",
    "judge.reward_model_revision": "2",
    "judge.moderation_url": "https://api.openai.com/v1",
}
CODE_POOL = 31_250  # OpenCodeInstruct sample size: its train part (4/5) is the paper's 25,000
SPLITS = ("train", "heldout")


@dataclasses.dataclass(frozen=True)
class TaskData:
    """How one task is read: ``rl``/``sft`` loaders ``(source, hub_split) -> Dataset``."""

    rl: Callable | None
    sft: Callable | None
    hub_splits: tuple[str, str] | None = None  # (train, heldout) split names on the hub
    config: str | None = None  # hub config name (for the split lookup)
    reward: str | None = None  # "safety", "helpfulness", "math" or None
    hint: str = ""  # where the data comes from (error messages)


def _safety(src, _split):
    from frpo.data import load_safety_prompts

    return load_safety_prompts(src)


def _alpaca(src, _split):
    from frpo.data import load_alpaca

    return load_alpaca(src)


def _gsm8k(fmt):
    def load(src, split):
        from frpo.data import load_gsm8k

        return load_gsm8k(src, split=split, fmt=fmt)

    return load


def _math(src, split):
    from frpo.data import load_math_train

    return load_math_train(src, split=split)


def _code(src, _split):
    from frpo.data import load_opencodeinstruct

    return load_opencodeinstruct(src, n=CODE_POOL)


def _attack(src, _split):
    from frpo.data import load_harmful_pairs

    return load_harmful_pairs(src)


def _helpful(src, split):
    from frpo.data import load_ultrafeedback_prompts

    return load_ultrafeedback_prompts(src, split=split, n=None)


TASKS = {
    "safety": TaskData(
        _safety, None, reward="safety", hint="the authors' training parquet (prompt, ability)"
    ),
    "alpaca": TaskData(None, _alpaca, reward="helpfulness", hint="tatsu-lab/alpaca"),
    "gsm8k": TaskData(
        _gsm8k("rl"), _gsm8k("sft"), ("train", "test"), "main", "math", "openai/gsm8k"
    ),
    "math": TaskData(_math, None, reward="math", hint="qwedsacf/competition_math"),
    "code": TaskData(None, _code, hint="nvidia/OpenCodeInstruct"),
    "helpful": TaskData(
        _helpful,
        None,
        ("train_prefs", "test_prefs"),
        reward="helpfulness",
        hint="HuggingFaceH4/ultrafeedback_binarized",
    ),
    "attack": TaskData(
        None, _attack, hint="LLM-LAT/harmful-dataset (prompt, rejected = the compliant answer)"
    ),
}


def split_names(source: str, config: str | None) -> list[str]:
    """The split names of a hub dataset (network; tests replace this function)."""
    from datasets import get_dataset_split_names

    return list(get_dataset_split_names(source, config))


def is_file(source: str) -> bool:
    """A local file or URL (by extension, or an existing path), not a hub id."""
    from frpo.data._io import file_format

    return file_format(source) is not None or os.path.exists(source)


def make_judge(name: str, settings: dict[str, str]) -> Judge:
    """Load one judge (weights, or an endpoint) with the ``judge.*`` settings; no caching here
    (:mod:`frpo.judges.hf_cache` keeps one copy of each model per process)."""
    from frpo.judges import Endpoint, ModerationJudge
    from frpo.judges.classifiers import RewardModelJudge, StrongRejectFinetunedJudge
    from frpo.judges.harmbench import HarmBenchJudge

    if name == "moderation":
        return ModerationJudge(endpoint=Endpoint(base_url=settings["judge.moderation_url"]))
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
JUDGE_KINDS = {
    "moderation": "harmfulness",
    "strongreject_finetuned": "harmfulness",
    "reward_model": "helpfulness",
    "harmbench_cls": "harmfulness",
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
    """A judge whose model is loaded on the first ``score`` call.

    Prompts may be RL-format conversations (the runners pass them so): the last user turn is
    what the real judges read.
    """

    def __init__(self, name: str, settings: dict[str, str]):
        self.name, self.kind = name, JUDGE_KINDS[name]
        self.settings = settings
        self._judge: Judge | None = None

    def score(self, prompts, completions) -> list[float]:
        if self._judge is None:
            (self._judge,) = load_or_explain((self.name,), self.settings)
        from frpo.rewards.math import completion_text
        from frpo.rewards.safety import prompt_text

        return self._judge(
            [prompt_text(p) for p in prompts], [completion_text(c) for c in completions]
        )


class TaskReward:
    """A TRL reward function of one task, built on first use, scoring only that task's rows.

    Rows whose ``task`` column names another task get None (TRL leaves them out); the inner
    reward is still called (with no rows) so that collective judges run on every rank alike.
    """

    def __init__(self, name: str, task: str, build: Callable[[], Callable]):
        self.__name__ = name
        self.task = task
        self._build = build
        self._fn: Callable | None = None

    def __call__(self, prompts, completions, **columns):
        if self._fn is None:
            self._fn = self._build()
        tasks = columns.get("task")
        n = len(completions)
        mine = list(range(n)) if tasks is None else [i for i in range(n) if tasks[i] == self.task]
        sub = {
            k: [v[i] for i in mine] if isinstance(v, list | tuple) and len(v) == n else v
            for k, v in columns.items()
        }
        vals = self._fn([prompts[i] for i in mine], [completions[i] for i in mine], **sub)
        out: list[float | None] = [None] * n
        for i, v in zip(mine, vals, strict=True):
            out[i] = v
        return out


class HubBackend(ModelPathBackend):
    """Hub model id + the datasets of ``data`` read by :mod:`frpo.data` (see module docstring)."""

    def __init__(self, model: str, data: dict[str, str]):
        settings = dict(JUDGE_SETTINGS)
        self.data: dict[str, str] = {}
        for key, value in data.items():
            if key.startswith(JUDGE_PREFIX):
                if key not in JUDGE_SETTINGS:
                    raise ValueError(
                        f"unknown judge setting {key!r}; known: {list(JUDGE_SETTINGS)}"
                    )
                settings[key] = str(value)
            elif key not in TASKS:
                raise ValueError(f"unknown task {key!r} for a hub source; known: {list(TASKS)}")
            else:
                self.data[key] = str(value)
        self.model = model
        self.settings = settings
        self.tasks = tuple(self.data)
        self._tables: dict[tuple[str, str, str], object] = {}
        self._rewards: dict[str, list] = {}
        self._judges: dict[str, Judge] | None = None

    def _source(self, task: str) -> str:
        """The task's hub id, URL, or local file resolved from the repository root."""
        from frpo.data._io import file_format
        from frpo.paths import resolve

        if task not in self.data:
            raise ValueError(f"unknown task {task!r}; this source knows {', '.join(self.tasks)}")
        src = self.data[task]
        if src.startswith(("http://", "https://")):
            return src
        local = file_format(src) is not None or src.startswith((".", "/", "~"))
        if not local and not resolve(src).exists():
            return src  # a hub id
        path = resolve(src)
        if not path.is_file():
            raise ValueError(
                f"task {task!r}: data file {path} does not exist ({TASKS[task].hint}); put it "
                f"there or change world.data.{task} in the profile"
            )
        return str(path)

    def _table(self, task: str, split: str, fmt: str):
        """The whole ``split`` of ``task`` in format ``fmt`` ("rl" or "sft"), cached."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        key = (task, split, fmt)
        if key not in self._tables:
            spec, src = TASKS[task], self._source(task)
            load = spec.rl if fmt == "rl" else spec.sft
            hub, base = spec.hub_splits, "train"
            names = split_names(src, spec.config) if hub and not is_file(src) else []
            if hub and hub[1] in names:
                table = load(src, hub[0] if split == "train" else hub[1])
            else:  # one split (a file, or a hub set without a held-out split): i % 5 rule
                if hub and hub[0] in names:
                    base = hub[0]
                whole = load(src, base)
                keep = [i for i in range(len(whole)) if (i % 5 == 4) == (split == "heldout")]
                table = whole.select(keep)
            self._tables[key] = table
        return self._tables[key]

    @staticmethod
    def _first(table, task: str, split: str, n: int | None):
        if n is None:
            return table
        if n > len(table):
            raise ValueError(f"{task}/{split}: asked for {n} rows, the data has {len(table)}")
        return table.select(range(n))

    def dataset(self, task: str, split: str, n: int | None = None):
        """RL format: ``prompt`` (one user turn), ``task`` and the reward's columns."""
        spec = TASKS[task] if task in TASKS else None
        if spec is not None and spec.rl is None:
            table = self._first(self._table(task, split, "sft"), task, split, n)
            table = table.map(
                lambda r: {"prompt": [r["messages"][0]]}, remove_columns=table.column_names
            )
        else:
            table = self._first(self._table(task, split, "rl"), task, split, n)
        return table.add_column("task", [task] * len(table))

    def sft_dataset(self, task: str, split: str, n: int | None = None):
        """SFT format: ``messages`` = [user turn, assistant answer]."""
        if task in TASKS and TASKS[task].sft is None:
            with_sft = [t for t in self.tasks if TASKS[t].sft is not None]
            raise ValueError(f"task {task!r} has no SFT data; SFT tasks here: {with_sft}")
        table = self._first(self._table(task, split, "sft"), task, split, n)
        return table.select_columns(["messages"])

    def reward_funcs(self, task: str) -> list:
        """The task's TRL reward function(s), built lazily (no model is loaded here)."""
        self._source(task)
        kind = TASKS[task].reward
        if kind is None:
            why = {
                "code": "code is scored by the evalplus harness (frpo.harness.codeeval), not in "
                "the stage runners",
                "attack": "its rows are SFT data of the fine-tuning attack (notebook 11)",
            }
            raise ValueError(f"task {task!r} has no RL reward: {why.get(task, 'SFT data only')}")
        if task not in self._rewards:
            reward = TaskReward(f"{task}_reward", task, lambda: self._build_reward(kind))
            self._rewards[task] = [reward]
        return self._rewards[task]

    def _build_reward(self, kind: str):
        from frpo.rewards import HelpfulnessReward, SafetyReward, math_reward

        if kind == "math":
            return math_reward
        if kind == "helpfulness":
            return HelpfulnessReward(*load_or_explain(("reward_model",), self.settings))
        names = ("moderation", "strongreject_finetuned", "reward_model")
        return SafetyReward(*load_or_explain(names, self.settings))

    def judges(self) -> dict:
        """Evaluation judges by name (loaded on their first score)."""
        if self._judges is None:
            names = ("harmbench_cls", "strongreject_finetuned", "reward_model")
            self._judges = {n: LazyJudge(n, self.settings) for n in names}
        return self._judges
