"""The paper-scale backend (``Source(kind="hub")``): the real loaders, rewards and judges.

Tasks and what serves them (``Source.data`` maps a task to a hub id or a local file; relative
paths are taken from the repository root):

========  =====================================  ===========================  ==================
task      loader (:mod:`frpo.data`)              RL reward                    hub splits
========  =====================================  ===========================  ==================
safety    ``load_safety_prompts`` (parquet)      :class:`SafetyReward`        one file
alpaca    ``load_alpaca``                        :class:`HelpfulnessReward`   ``train`` only
gsm8k     ``load_gsm8k`` (``rl``/``sft``)        :func:`math_reward`          ``train``/``test``
math      ``load_math_train`` (levels 3-5)       :func:`math_reward`          ``train``/``test``
code      ``load_opencodeinstruct`` (SFT data)   :func:`code_reward`          ``train`` (sample)
helpful   ``load_ultrafeedback_prompts``         :class:`HelpfulnessReward`   ``*_prefs``
attack    ``load_harmful_pairs`` (SFT only)      none (the attack's data)     ``train`` only
========  =====================================  ===========================  ==================

Splits: ``heldout`` is the source's own held-out split where it has one (GSM8K ``test``,
UltraFeedback ``test_prefs``); otherwise (a local file, or a hub set with one split) row ``i``
of the loaded set is held out when ``i % 5 == 4`` (:func:`frpo.splits.split_rows`). With a
``math500`` entry (HuggingFaceH4/MATH-500), ``math``'s held-out set is MATH-500 and every
MATH-500 problem is dropped from its training problems (a copy of MATH in one split, such as
qwedsacf/competition_math, holds them).

The judges' models and endpoint are ``Source.data`` entries too (``judge.*``, the settings of
:mod:`frpo.judges.catalogue`).

The RL format has ``prompt`` (one user turn), ``task`` and the reward's columns (``category``,
``answer``, ``unit_tests``); ``alpaca``/``code``/``attack`` prompts are the user turn of their
SFT ``messages``. Every reward function scores only its own task's rows (None for the others,
which TRL leaves out), so tasks can be mixed in one RL dataset.

Judges and reward models are built lazily, on the first score: constructing the backend, its
``tasks``, ``dataset``/``sft_dataset``, ``reward_funcs`` and ``judges`` need no model and no
network. ``judges()`` are keyed by kind (refusal, harmfulness, helpfulness, correctness), as the
toy world's: see :mod:`frpo.stages.hub_judges`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

from datasets import get_dataset_split_names

import frpo.data as loaders
from frpo.data._io import file_format, hub_path
from frpo.judges.catalogue import PAPER_SETTINGS, SETTINGS
from frpo.paths import resolve
from frpo.splits import HELDOUT, TRAIN, check_split, split_rows
from frpo.stages.backend import ModelPathBackend, first_rows
from frpo.stages.hub_judges import evaluation_judges, reward_of

JUDGE_PREFIX = "judge."
PROMPT_SETS = {  # evaluation sets that shape a task (not tasks): name -> (loader, where from)
    "math500": (loaders.load_math500, "HuggingFaceH4/MATH-500"),
}
CODE_POOL = 31_250  # OpenCodeInstruct sample size: its train part (4/5) is the paper's 25,000


@dataclasses.dataclass(frozen=True)
class TaskData:
    """How one task is read: ``rl``/``sft`` loaders ``(source, hub_split) -> Dataset``."""

    rl: Callable | None
    sft: Callable | None
    hub_splits: tuple[str, str] | None = None  # (train, heldout) split names on the hub
    config: str | None = None  # hub config name (for the split lookup)
    reward: str | None = None  # "safety", "helpfulness", "math", "code" or None
    hint: str = ""  # where the data comes from (error messages)


def _safety(src, _split):
    return loaders.load_safety_prompts(src)


def _alpaca(src, _split):
    return loaders.load_alpaca(src)


def _gsm8k(fmt):
    def load(src, split):
        return loaders.load_gsm8k(src, split=split, fmt=fmt)

    return load


def _math(src, split):
    return loaders.load_math_train(src, split=split)


def _code(src, _split):
    return loaders.load_opencodeinstruct(src, n=CODE_POOL)


def _attack(src, _split):
    return loaders.load_harmful_pairs(src)


def _helpful(src, split):
    return loaders.load_ultrafeedback_prompts(src, split=split, n=None)


TASKS = {
    "safety": TaskData(
        _safety, None, reward="safety", hint="the authors' training parquet (prompt, ability)"
    ),
    "alpaca": TaskData(None, _alpaca, reward="helpfulness", hint="tatsu-lab/alpaca"),
    "gsm8k": TaskData(
        _gsm8k("rl"), _gsm8k("sft"), ("train", "test"), "main", "math", "openai/gsm8k"
    ),
    "math": TaskData(
        _math, None, ("train", "test"), reward="math", hint="DigitalLearningGmbH/MATH-lighteval"
    ),
    "code": TaskData(None, _code, reward="code", hint="nvidia/OpenCodeInstruct"),
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
CORRECTNESS_TASKS = ("gsm8k", "math", "code")  # what the correctness judge reads


def split_names(source: str, config: str | None) -> list[str]:
    """The split names of a hub dataset (its downloaded copy when there is one, else the hub:
    network; tests replace this function)."""
    return list(get_dataset_split_names(hub_path(source), config))


def is_file(source: str) -> bool:
    """A local file or URL (by extension, or an existing path), not a hub id."""
    return file_format(source) is not None or os.path.exists(source)


def _local_path(value: str) -> str:
    """``value`` resolved from the repository root when it names a local path, else as is."""
    if value.startswith((".", "/", "~")) or (value and resolve(value).exists()):
        return str(resolve(value))
    return value


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
        settings = dict(PAPER_SETTINGS)
        self.data: dict[str, str] = {}
        self.prompt_sets: dict[str, str] = {}
        for key, value in data.items():
            if key.startswith(JUDGE_PREFIX):
                if key not in settings:
                    raise ValueError(f"unknown setting {key!r}; known: {list(PAPER_SETTINGS)}")
                settings[key] = str(value)
            elif key in PROMPT_SETS:
                self.prompt_sets[key] = str(value)
            elif key not in TASKS:
                known = [*TASKS, *PROMPT_SETS]
                raise ValueError(f"unknown task {key!r} for a hub source; known: {known}")
            else:
                self.data[key] = str(value)
        for key, setting in SETTINGS.items():
            if setting.weights:
                settings[key] = _local_path(settings[key])
        self.model = _local_path(model)
        self.settings = settings
        self.tasks = tuple(self.data)
        self._tables: dict[tuple[str, str, str], object] = {}
        self._rewards: dict[str, list] = {}
        self._judges: dict | None = None
        self._references: dict[str, tuple[str, str]] = {}
        self._indexed: set[tuple[str, str]] = set()

    def _source(self, task: str) -> str:
        """The task's (or prompt set's) hub id, URL, or local file resolved from the root."""
        if task in PROMPT_SETS and task in self.prompt_sets:
            src, hint = self.prompt_sets[task], PROMPT_SETS[task][1]
        elif task not in self.data:
            raise ValueError(f"unknown task {task!r}; this source knows {', '.join(self.tasks)}")
        else:
            src, hint = self.data[task], TASKS[task].hint
        if src.startswith(("http://", "https://")):
            return src
        local = file_format(src) is not None or src.startswith((".", "/", "~"))
        if not local and not resolve(src).exists():
            return src  # a hub id
        path = resolve(src)
        if not path.is_file():
            raise ValueError(
                f"task {task!r}: data file {path} does not exist ({hint}); put it "
                f"there or change world.data.{task} in the profile"
            )
        return str(path)

    def _table(self, task: str, split: str, fmt: str):
        """The whole ``split`` of ``task`` in format ``fmt`` ("rl" or "sft"), cached."""
        check_split(split)
        key = (task, split, fmt)
        if key not in self._tables:
            if task == "math" and "math500" in self.prompt_sets:
                self._tables[key] = self._math_against_math500(self._source(task), split)
            else:
                self._tables[key] = self._load_split(task, split, fmt)
        return self._tables[key]

    def _load_split(self, task: str, split: str, fmt: str):
        """``split`` of ``task``: the hub set's own held-out split where it has one, else the
        rows of its one split (a file, or a hub set without a held-out split) that
        :func:`frpo.splits.split_rows` keeps."""
        spec, src = TASKS[task], self._source(task)
        load = spec.rl if fmt == "rl" else spec.sft
        hub = spec.hub_splits
        names = split_names(src, spec.config) if hub and not is_file(src) else []
        if hub and hub[1] in names:
            return load(src, hub[0] if split == TRAIN else hub[1])
        whole = load(src, hub[0] if hub and hub[0] in names else TRAIN)
        return whole.select(split_rows(len(whole), split))

    def _math_against_math500(self, src: str, split: str):
        """MATH with MATH-500 as its held-out set: the training problems are the train split
        (the whole file for a one-split copy) minus every MATH-500 problem."""
        held = self.prompt_set("math500")
        if split == HELDOUT:
            return held
        return loaders.load_math_train(src, split=TRAIN, exclude=held["problem"])

    def prompt_set(self, name: str):
        """An evaluation set of :data:`PROMPT_SETS` (RL format, every row), cached."""
        if name not in PROMPT_SETS:
            raise ValueError(f"unknown prompt set {name!r}; expected one of {list(PROMPT_SETS)}")
        if name not in self.prompt_sets:
            raise ValueError(
                f"this source has no {name!r} prompt set ({PROMPT_SETS[name][1]}): add "
                f"world.data.{name} to the profile"
            )
        key = (name, "all", "rl")
        if key not in self._tables:
            self._tables[key] = PROMPT_SETS[name][0](self._source(name))
        return self._tables[key]

    def dataset(self, task: str, split: str, n: int | None = None):
        """RL format: ``prompt`` (one user turn), ``task`` and the reward's columns."""
        spec = TASKS[task] if task in TASKS else None
        if spec is not None and spec.rl is None:
            table = first_rows(self._table(task, split, "sft"), n, f"{task}/{split}")
            table = table.map(lambda r: {"prompt": [r["messages"][0]]}, remove_columns=["messages"])
        else:
            table = first_rows(self._table(task, split, "rl"), n, f"{task}/{split}")
        return table.add_column("task", [task] * len(table))

    def sft_dataset(self, task: str, split: str, n: int | None = None):
        """SFT format: ``messages`` = [user turn, assistant answer]."""
        if task in TASKS and TASKS[task].sft is None:
            with_sft = [t for t in self.tasks if TASKS[t].sft is not None]
            raise ValueError(f"task {task!r} has no SFT data; SFT tasks here: {with_sft}")
        table = first_rows(self._table(task, split, "sft"), n, f"{task}/{split}")
        return table.select_columns(["messages"])

    def reward_funcs(self, task: str) -> list:
        """The task's TRL reward function(s), built lazily (no model is loaded here)."""
        self._source(task)
        kind = TASKS[task].reward
        if kind is None:
            raise ValueError(
                f"task {task!r} has no RL reward: its rows are SFT data only"
                + (" (the fine-tuning attack of notebook 11)" if task == "attack" else "")
            )
        if task not in self._rewards:
            reward = TaskReward(f"{task}_reward", task, lambda: reward_of(kind, self.settings))
            self._rewards[task] = [reward]
        return self._rewards[task]

    def reference(self, prompt: str) -> tuple[str, str]:
        """``(task, reference)`` of a gsm8k/math/code prompt's user text: the answer, or the
        code task's ``unit_tests``. Held-out sets are indexed first, training sets on a miss."""
        for split in (HELDOUT, TRAIN):
            if prompt in self._references:
                break
            for task in CORRECTNESS_TASKS:
                if task in self.data and (task, split) not in self._indexed:
                    self._indexed.add((task, split))
                    column = "unit_tests" if task == "code" else "answer"
                    table = self.dataset(task, split)
                    for p, ref in zip(table["prompt"], table[column], strict=True):
                        self._references.setdefault(p[-1]["content"], (task, str(ref)))
        if prompt not in self._references:
            have = [t for t in CORRECTNESS_TASKS if t in self.data]
            raise ValueError(f"no {'/'.join(have) or 'gsm8k/math/code'} prompt {prompt[:60]!r}")
        return self._references[prompt]

    def judges(self) -> dict:
        """Evaluation judges by kind (loaded on their first score; :mod:`.hub_judges`)."""
        if self._judges is None:
            self._judges = evaluation_judges(self.settings, self.reference)
        return self._judges
