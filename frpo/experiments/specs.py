"""Spec sets: the runs of an experiment as ``{key: spec}`` mappings, built from profile blocks.

Every notebook that trains builds its runs here, through :mod:`frpo.recipes`, so the same profile
parameters give the same specs (and so the same run directories: notebook 05 reuses notebook
03's stage-1 runs). Keys are tuples whose parts the functions name (``(method, seed)``,
``(method, dataset, seed)``); iteration order is the nesting order of the arguments, which is
the order the runs are built and the tables are read in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from frpo.recipes import make_source, sft_spec, stage1_spec
from frpo.stages.spec import EvalSpec, RLSpec


@dataclasses.dataclass(frozen=True)
class Stage1Block:
    """A profile's stage-1 block, shared by the notebooks that train stage-1 models (the
    ``world``, ``stage1`` and ``betas`` of a profile's ``shared`` section): the world, the
    RLSpec fields every method shares, and the KL-matched beta of each method key."""

    world: dict
    stage1: dict
    betas: Mapping[str, float]

    @property
    def reward_column(self) -> str:
        """The final held-out reward of the block's first task (``frpo/final/reward/<task>``)."""
        return f"frpo/final/reward/{self.stage1['tasks'][0]}"

    def specs(
        self, methods: Sequence[str], seeds: Sequence[int], *, sam_rho: float | None = None
    ) -> dict[tuple[str, int], RLSpec]:
        """``{(method, seed): stage-1 spec}`` (:func:`frpo.recipes.stage1_spec`), methods outer.

        ``sam_rho`` sets the ascent radius of the ``sam`` method's runs (None: RLSpec's default).
        """
        out = {}
        for m in methods:
            for s in seeds:
                spec = stage1_spec(m, s, self.world, self.stage1, dict(self.betas))
                if m == "sam" and sam_rho is not None:
                    spec = dataclasses.replace(spec, sam_rho=sam_rho)
                out[m, s] = spec
        return out


def sft_specs(
    parents: Mapping[tuple, RLSpec],
    sft: Mapping[str, dict],
    track: dict | None,
    *,
    datasets: Sequence[str] | None = None,
    **overrides: Any,
) -> dict[tuple, Any]:
    """``{(*tags, dataset, seed): SFT spec}`` of every parent ``{(*tags, seed): spec}``.

    ``sft[dataset]`` holds the SFTSpec fields of that dataset (``datasets``: all of ``sft`` by
    default); ``overrides`` apply to every run (e.g. ``lr``, ``replay_share``). Order: the
    parents' tags, then the datasets, then the seeds (``(method, dataset, seed)`` for parents
    keyed ``(method, seed)``). Each SFT run trains at its parent's seed.
    """
    datasets = list(sft) if datasets is None else list(datasets)
    missing = [d for d in datasets if d not in sft]
    if missing:
        raise ValueError(f"no SFT block for dataset(s) {missing}; the sft blocks are {list(sft)}")
    heads = list(dict.fromkeys(key[:-1] for key in parents))
    seeds = list(dict.fromkeys(key[-1] for key in parents))
    return {
        (*h, d, s): sft_spec(parents[(*h, s)], {"dataset": d, **sft[d]}, s, track, **overrides)
        for h in heads
        for d in datasets
        for s in seeds
        if (*h, s) in parents
    }


def eval_specs(
    models: Mapping[Hashable, Any], block: dict, world: dict | None = None
) -> dict[Hashable, EvalSpec]:
    """``{key: EvalSpec}`` evaluating each model spec with ``block`` (EvalSpec fields).

    The evaluation reads its data from the model's own source, or from ``world``'s when given
    (needed for the base model, whose spec is None: it evaluates pi_ref).
    """
    out = {}
    for key, model in models.items():
        if model is None and world is None:
            raise ValueError(f"eval_specs: model {key!r} is None (pi_ref) and no world was given")
        source = make_source(world) if world is not None else model.source
        out[key] = EvalSpec(source=source, model=model, **block)
    return out
