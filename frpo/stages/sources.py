"""One interface to models, datasets, rewards and judges, whatever they come from.

Every runner talks to a *backend* with the ToyWorld interface:

- ``tasks``: the task names it knows;
- ``tokenizer``; ``base_model_path() -> str`` (pi_ref, a local directory or hub id);
- ``dataset(task, split, n) -> datasets.Dataset`` (RL format: conversational ``prompt`` + the
  reward functions' columns); ``sft_dataset(task, split, n)`` (``messages``);
- ``reward_funcs(task) -> list`` (TRL signature); ``judges() -> dict[str, Judge]``;
- optionally ``exact_safety(model, prompts) -> dict | float`` (toy world only).

:func:`open_source` builds it from a :class:`~frpo.stages.spec.Source`: the ToyWorld (``toy``),
local files in the real datasets' formats (``files``, see :mod:`frpo.stages.files`), or the real
loaders, rewards and judges of :mod:`frpo.data`, :mod:`frpo.rewards`, :mod:`frpo.judges`
(``hub``, paper scale, see :mod:`frpo.stages.hub`; nothing is loaded until it is used).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from frpo.stages.spec import Source


@functools.lru_cache(maxsize=8)
def open_source(source: Source):
    """The backend for ``source`` (cached: one ToyWorld per recipe per process)."""
    if source.kind == "toy":
        from frpo.toyworld import ToyWorld, WorldConfig

        world = ToyWorld(WorldConfig(seed=source.seed, size=source.size))
        if not hasattr(world, "tasks"):
            world.tasks = TOY_TASKS
        return world
    if source.kind == "files":
        from frpo.stages.files import FileBackend

        return FileBackend(source.model, dict(source.data))
    from frpo.stages.hub import HubBackend

    return HubBackend(source.model, dict(source.data))


TOY_TASKS = ("safety", "alpaca", "gsm8k", "math", "code", "helpful")
HELDOUT = "heldout"  # the held-out split name every backend uses (the ToyWorld's)


def check_tasks(backend, tasks) -> None:
    """ValueError naming any task the backend does not know."""
    known = tuple(backend.tasks)
    for task in tasks:
        if task not in known:
            raise ValueError(f"unknown task {task!r}; this source knows {', '.join(known)}")


def check_columns(dataset, columns, what: str) -> None:
    """ValueError naming the first required column ``dataset`` lacks."""
    for col in columns:
        if col not in dataset.column_names:
            raise ValueError(
                f"{what}: missing dataset column {col!r} (has {', '.join(dataset.column_names)})"
            )


def load_tokenizer(path: str):
    """The tokenizer saved in ``path``; a plain ``PreTrainedTokenizerFast`` is loaded as such.

    (``AutoTokenizer`` would pick the architecture's own tokenizer class from the model config,
    which is wrong for the word-level tokenizers of the toy world and the tests.)
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    cfg = Path(path) / "tokenizer_config.json"
    if cfg.is_file():
        cls = json.loads(cfg.read_text()).get("tokenizer_class")
        if cls in ("PreTrainedTokenizerFast", "TokenizersBackend"):
            return PreTrainedTokenizerFast.from_pretrained(path)
    return AutoTokenizer.from_pretrained(path)


class ModelPathBackend:
    """What backends whose base model is ``self.model`` (a directory or hub id) share.

    The tokenizer is loaded from ``self.model`` on first use, then kept.
    """

    model: str
    _tokenizer = None

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.model)
        return self._tokenizer

    def base_model_path(self) -> str:
        return self.model


def load_model(path: str, dtype=None, source: Source | None = None):
    """A causal LM from a local directory or hub id: float32 on CPU unless ``dtype`` is given;
    for a ``hub`` ``source`` (paper scale) bf16 on this process's GPU (``cuda:LOCAL_RANK``), or
    float32 where the machine has no bf16 GPU (:mod:`frpo.harness.capability`)."""
    import torch
    from transformers import AutoModelForCausalLM

    if source is not None and source.kind == "hub":
        from frpo.harness.capability import detect
        from frpo.judges.hf_cache import default_device

        dtype = dtype or getattr(torch, detect().dtype)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        return model.to(default_device())
    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32)
