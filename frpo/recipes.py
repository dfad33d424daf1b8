"""Experiment recipes shared by the notebooks: profile parameters -> run specs.

A run directory is named by the hash of its spec (:mod:`frpo.stages.spec`), so two notebooks that
build a stage-1 run from the same profile parameters get the same directory: notebook 05 reuses the
GRPO and FRPO models notebook 03 trained instead of training them again. Every notebook builds its
specs through these functions for that reason; a profile writes the blocks several notebooks
take once, in its ``shared`` section (:mod:`frpo.book.profiles`).

Method keys name a stage-1 objective in one string, as the profiles and plots use them:
``grpo``, ``sam`` (GRPO+SAM, Sec. 5.3), ``frpo-0.5`` (FRPO at lam = 0.5 with baseline and
jackknife), ``frpo-0.5-nojk`` (without the jackknife, Eq. 4.3), ``frpo-0.5-nobase`` (without the
baseline, Eq. 4.2).

The toy world's base model is built once per *world* seed (``world["seed"]``, fixed in a
profile); the seeds of a notebook vary the training (sampling, data order) on that one base model,
as the paper's three runs vary training on one Mistral checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from frpo.stages.spec import RLSpec, SFTSpec, Source, Track

_SUFFIXES = {"nojk": ("jackknife", False), "nobase": ("baseline", False)}


def parse_method(key: str) -> dict[str, Any]:
    """``"frpo-0.5-nojk"`` -> ``{"method": "frpo", "lam": 0.5, "jackknife": False}``."""
    head, *rest = key.split("-")
    if head == "grpo" and not rest:
        return {"method": "grpo"}
    if head == "sam" and not rest:
        return {"method": "grpo_sam"}
    if head == "frpo" and rest:
        try:
            lam = float(rest[0])
        except ValueError:
            raise ValueError(f"method key {key!r}: {rest[0]!r} is not a lam value") from None
        out: dict[str, Any] = {"method": "frpo", "lam": lam}
        for suffix in rest[1:]:
            if suffix not in _SUFFIXES:
                raise ValueError(
                    f"method key {key!r}: unknown suffix {suffix!r}; expected {sorted(_SUFFIXES)}"
                )
            name, value = _SUFFIXES[suffix]
            out[name] = value
        return out
    raise ValueError(
        f"unknown method key {key!r}; expected 'grpo', 'sam' or 'frpo-<lam>[-nojk][-nobase]'"
    )


def objective_lam(key: str) -> float:
    """lam of a method's stage-1 objective: FRPO's lam (its ``-nojk``/``-nobase`` ablations
    included), ``inf`` for GRPO and GRPO+SAM, which maximise the mean reward (the lam -> inf
    limit of Eq. 3.5)."""
    return float(parse_method(key).get("lam", math.inf))


def sweep_lam(key: str) -> float:
    """A method's place on a lam sweep (C4, Fig. 3 right, Fig. 10): ``frpo-0.2`` -> 0.2, ``grpo``
    -> inf. GRPO+SAM and the FRPO ablations are not points of the sweep: ValueError."""
    if not on_sweep(key):
        raise ValueError(
            f"method {key!r} is not GRPO or a plain FRPO lam: it is not on a lam sweep"
        )
    return objective_lam(key)


def on_sweep(key: str) -> bool:
    """Whether ``key`` is GRPO or a plain FRPO lam (no ablation suffix)."""
    fields = parse_method(key)
    return fields["method"] == "grpo" or (fields["method"] == "frpo" and len(fields) == 2)


def sweep_methods(keys: Iterable[str]) -> list[str]:
    """The keys that are points of a lam sweep (:func:`on_sweep`), GRPO first then lam
    decreasing (e.g. the methods of a betas table)."""
    return sorted((k for k in keys if on_sweep(k)), key=lambda k: -sweep_lam(k))


def method_key(
    method: str, lam: float | None = None, baseline: bool = True, jackknife: bool = True
):
    """Inverse of :func:`parse_method`."""
    if method == "grpo":
        return "grpo"
    if method == "grpo_sam":
        return "sam"
    if method != "frpo" or lam is None:
        raise ValueError(f"method {method!r} with lam {lam!r} has no key")
    key = f"frpo-{lam:g}"
    if not jackknife:
        key += "-nojk"
    if not baseline:
        key += "-nobase"
    return key


def make_source(world: dict) -> Source:
    """A :class:`Source` from a profile's ``world`` block.

    ``{"kind": "toy", "size": "toy", "seed": 0}`` for the offline world;
    ``{"kind": "hub" | "files", "model": id-or-path, "data": {task: id-or-path}}`` for real models.
    """
    world = dict(world)
    unknown = set(world) - {"kind", "size", "seed", "model", "data"}
    if unknown:
        raise ValueError(f"world block: unknown key(s) {sorted(unknown)}")
    data = world.pop("data", {}) or {}
    return Source(**world, data=tuple(sorted(data.items())))


def stage1_spec(key: str, seed: int, world: dict, stage1: dict, betas: dict) -> RLSpec:
    """The stage-1 RLHF run of method ``key`` at training seed ``seed``.

    ``stage1`` holds RLSpec fields shared by every method (tasks, lr, steps, G, ...); ``betas``
    maps method keys to the KL coefficient that matches the final per-token KL to pi_ref across
    methods (the paper's KL-matched comparison). An ablation key (``frpo-0.5-nojk``) without its
    own beta uses its parent method's (``frpo-0.5``).
    """
    fields = parse_method(key)
    base = key.replace("-nojk", "").replace("-nobase", "")
    beta = betas.get(key, betas.get(base))
    if beta is None:
        raise ValueError(f"no beta for method {key!r} in the betas table {sorted(betas)}")
    return RLSpec(source=make_source(world), seed=seed, beta=float(beta), **fields, **stage1)


def track_of(track: dict | None) -> Track | None:
    return None if track is None else Track(**track)


def sft_spec(parent: RLSpec, sft: dict, seed: int, track: dict | None = None, **overrides):
    """Downstream SFT of ``parent``'s model: ``sft`` holds SFTSpec fields (dataset, lr, ...)."""
    merged = {**sft, **overrides}
    return SFTSpec(source=parent.source, parent=parent, seed=seed, track=track_of(track), **merged)


def downstream_rl_spec(parent: RLSpec, rl: dict, seed: int, track: dict | None = None) -> RLSpec:
    """Downstream RL (GRPO on ``rl["tasks"]``, e.g. the helpfulness task) of ``parent``'s model."""
    return RLSpec(source=parent.source, parent=parent, seed=seed, track=track_of(track), **rl)
