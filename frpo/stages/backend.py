"""What the runners ask of a world, whatever serves it, and the pieces its backends share.

Every runner talks to a *backend* with the ToyWorld interface:

- ``tasks``: the task names it knows;
- ``tokenizer``; ``base_model_path() -> str`` (pi_ref, a local directory or hub id);
- ``dataset(task, split, n) -> datasets.Dataset`` (RL format: conversational ``prompt`` + the
  reward functions' columns); ``sft_dataset(task, split, n)`` (``messages``); ``split`` is one
  of :data:`frpo.splits.SPLITS`;
- ``reward_funcs(task) -> list`` (TRL signature); ``judges() -> dict[str, Judge]`` keyed by kind;
- optionally ``exact_<task>(model, prompts) -> dict | float``: metrics the world computes
  exactly rather than by sampling (the toy world's ``exact_safety``); :func:`exact_metrics`
  asks for them, so no runner names a task.

The backends: the ToyWorld (:mod:`frpo.toyworld`), local files in the real formats
(:mod:`frpo.stages.files`) and the paper's hub models, data sets, rewards and judges
(:mod:`frpo.stages.hub`); :func:`frpo.stages.sources.open_source` picks one for a
:class:`~frpo.stages.spec.Source`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from frpo.harness import capability
from frpo.judges import hf_cache
from frpo.stages.spec import Source


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


def first_rows(table, n: int | None, what: str):
    """The first ``n`` rows of ``table`` (all of it for None); ValueError when it has fewer."""
    if n is None:
        return table
    if n > len(table):
        raise ValueError(f"{what}: asked for {n} rows, the data has {len(table)}")
    return table.select(range(n))


def exact_metrics(backend, task: str, model, prompts) -> dict[str, float]:
    """The metrics the world computes exactly for ``task`` (scalar ``frpo/exact/...`` means of
    its ``exact_<task>`` method); {} when it has none for that task."""
    fn = getattr(backend, f"exact_{task}", None)
    if fn is None:
        return {}
    value = fn(model, prompts)
    if not isinstance(value, dict):
        return {f"frpo/exact/{task}": float(value)}
    out = {}
    for k, v in value.items():  # scalar means only (per-prompt lists are left out)
        if isinstance(v, int | float) and not isinstance(v, bool):
            out[k if k.startswith("frpo/") else f"frpo/exact/{k}"] = float(v)
    return out


def load_tokenizer(path: str):
    """The tokenizer saved in ``path``; a plain ``PreTrainedTokenizerFast`` is loaded as such.

    (``AutoTokenizer`` would pick the architecture's own tokenizer class from the model config,
    which is wrong for the word-level tokenizers of the toy world and the tests.)
    """
    cfg = Path(path) / "tokenizer_config.json"
    if cfg.is_file():
        cls = json.loads(cfg.read_text()).get("tokenizer_class")
        if cls in ("PreTrainedTokenizerFast", "TokenizersBackend"):
            return PreTrainedTokenizerFast.from_pretrained(path)
    return AutoTokenizer.from_pretrained(path)


def load_model(path: str, dtype=None, source: Source | None = None):
    """A causal LM from a local directory or hub id: float32 on CPU unless ``dtype`` is given;
    for a ``hub`` ``source`` (paper scale) bf16 on this process's GPU (``cuda:LOCAL_RANK``), or
    float32 where the machine has no bf16 GPU (:mod:`frpo.harness.capability`)."""
    if source is not None and source.kind == "hub":
        dtype = dtype or getattr(torch, capability.detect().dtype)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        return model.to(hf_cache.default_device())
    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32)


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
