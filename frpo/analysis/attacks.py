"""Bounded fine-tuning attacks on the stage-1 models (notebook 11, claim C10.attack).

Two attacks, each run from the GRPO and the FRPO(lam_main) stage-1 model of every seed and
tracked like notebook 05's downstream SFT (:class:`frpo.stages.tracking.TrajectoryCallback`:
the stage-1 safety reward of sampled answers on fixed held-out prompts, the per-token
KL(Q || pi_theta) to the stage-1 model, and the world's exact answer-class masses):

- **harmful SFT** (Qi et al. 2023): supervised fine-tuning on a few dozen harmful requests paired
  with compliant answers (the ``attack`` task), at each of a few learning rates;
- **mixed**: the benign Alpaca-analogue SFT of notebook 05 with a small share of those pairs
  mixed in (:attr:`frpo.stages.spec.SFTSpec.mix`); share 0 is notebook 05's own run (same spec,
  same run directory).

**Reading (fixed before any attack run was looked at).** GRPO and FRPO trajectories of one
setting and seed are compared at their common KL, the largest per-token KL(Q || pi_theta) both
reach, by :func:`frpo.analysis.downstream.paired_gaps` (notebook 05's matched-KL reading); the
gap FRPO minus GRPO is then averaged over seeds with a t-interval. C10.attack is the safety-reward
gap of the harmful SFT at ``lr_main``; every other setting, and the exact refusal and unsafe mass
on harmful prompts (lower unsafe mass is safer), is reported beside it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from frpo.analysis.downstream import TRACK_KL, TRACK_SAFETY, curve, paired_gaps, read_trajectory
from frpo.claims import Evidence, record_evidence
from frpo.recipes import method_key, sft_spec, stage1_spec

REFUSAL = "frpo/exact/harmful/refusal_mass"
"""Exact probability of a clean refusal on the tracked harmful prompts (toy world)."""
UNSAFE = "frpo/exact/harmful/unsafe_mass"
"""Exact probability of delivering the harmful content on them (comply + refuse-then-comply)."""


def harmful_setting(lr: float) -> str:
    return f"harmful SFT, lr {lr:g}"


def mixed_setting(share: float, dataset: str) -> str:
    return f"{dataset} + {100 * share:g}% harmful"


def attack_specs(
    world: Mapping,
    stage1: Mapping,
    betas: Mapping,
    methods: Sequence[str],
    seeds: Sequence[int],
    attack: Mapping,
    mixed: Mapping,
    track: Mapping,
) -> dict[tuple[str, str, int], object]:
    """``{(method, setting, seed): SFTSpec}`` of both attacks from each stage-1 model.

    ``attack``: ``lrs`` (one run each), ``sft`` (SFTSpec fields of the harmful SFT; its
    ``dataset`` is the task of harmful -> compliant pairs) and optional ``track_every``.
    ``mixed``: ``shares`` (0 = the benign SFT alone), ``task`` (the pairs' task) and ``sft``
    (SFTSpec fields of the benign SFT, e.g. notebook 05's Alpaca block). ``track``: the
    :class:`~frpo.stages.spec.Track` fields; the SFT seed is the stage-1 seed, as in notebook 05.
    """
    every = attack.get("track_every", track.get("every"))
    out = {}
    for method in methods:
        for seed in seeds:
            parent = stage1_spec(method, seed, dict(world), dict(stage1), dict(betas))
            for lr in attack["lrs"]:
                out[method, harmful_setting(lr), seed] = sft_spec(
                    parent, {**attack["sft"], "lr": lr}, seed, {**track, "every": every}
                )
            for share in mixed["shares"]:
                mix = ((mixed["task"], share),) if share > 0 else ()
                key = (method, mixed_setting(share, mixed["sft"]["dataset"]), seed)
                out[key] = sft_spec(parent, dict(mixed["sft"]), seed, dict(track), mix=mix)
    return out


def trajectories(runs: Mapping):
    """One long DataFrame of every attack trajectory: ``method``, ``setting``, ``seed``, the
    trajectory row's metrics (``step``, :data:`TRACK_KL`, :data:`TRACK_SAFETY`, ...)."""
    rows = []
    for (method, setting, seed), path in runs.items():
        for row in read_trajectory(path):
            rows.append({"method": method, "setting": setting, "seed": seed, **row})
    return pd.DataFrame(rows)


def matched_gaps(runs: Mapping, main: str, reference: str = "grpo", ys=(TRACK_SAFETY,)):
    """Per setting and tracked quantity ``y``: ``main`` minus ``reference`` at the common KL,
    paired over the seeds both ran (:func:`frpo.analysis.downstream.paired_gaps`).

    Returns a DataFrame with ``setting``, ``y``, ``gap``, ``lo``, ``hi`` (mean over seeds and
    its t-interval), ``end_gap`` (last points), ``kl_common`` (mean over seeds), ``main`` and
    ``reference`` (the two trajectories read at the common KL, mean over seeds) and ``n``.
    """
    settings = list(dict.fromkeys(s for (_, s, _) in runs))
    rows = []
    for setting in settings:
        seeds = sorted(
            s for (m, st, s) in runs if m == main and st == setting and (reference, st, s) in runs
        )
        if not seeds:
            raise ValueError(f"matched_gaps: {main!r} and {reference!r} share no seed ({setting})")
        traj = {
            (m, s): read_trajectory(runs[m, setting, s]) for m in (main, reference) for s in seeds
        }
        for y in ys:
            if any(y not in rows_[0] for rows_ in traj.values()):
                continue  # a quantity this world does not track (exact masses off the toy world)
            pairs = [
                (*curve(traj[main, s], y, TRACK_KL), *curve(traj[reference, s], y, TRACK_KL))
                for s in seeds
            ]
            res = paired_gaps(pairs)
            gap, lo, hi = res["gap"]
            rows.append(
                {"setting": setting, "y": y, "gap": gap, "lo": lo, "hi": hi}
                | {"end_gap": res["end_gap"][0], "kl_common": float(np.mean(res["kl_common"]))}
                | {"main": float(np.mean([g["a"] for g in res["per_seed"]]))}
                | {"reference": float(np.mean([g["b"] for g in res["per_seed"]])), "n": len(seeds)}
            )
    return pd.DataFrame(rows)


def study(
    world: Mapping,
    stage1: Mapping,
    betas: Mapping,
    seeds: Sequence[int],
    lam_main: float,
    attack: Mapping,
    mixed: Mapping,
    track: Mapping,
    run,
) -> dict:
    """Both attacks from GRPO and FRPO(``lam_main``) at every seed (see :func:`attack_specs`),
    run (finished runs reused) by ``run(specs, label) -> {key: run_dir}`` (a notebook's
    :func:`frpo.experiments.runs.runner`).

    Returns ``runs`` (``{(method, setting, seed): run_dir}``), ``trajectories``
    (:func:`trajectories`), ``gaps`` (:func:`matched_gaps` of the safety reward and the exact
    refusal and unsafe masses) and ``main_setting`` (the C10.attack setting).
    """
    main = method_key("frpo", lam_main)
    if attack["lr_main"] not in attack["lrs"]:
        raise ValueError(f"attack.lr_main {attack['lr_main']:g} is not one of attack.lrs")
    specs = attack_specs(world, stage1, betas, ["grpo", main], seeds, attack, mixed, track)
    runs = run(specs, "attack runs")
    return {
        "runs": runs,
        "trajectories": trajectories(runs),
        "gaps": matched_gaps(runs, main, ys=(TRACK_SAFETY, REFUSAL, UNSAFE)),
        "main_setting": harmful_setting(attack["lr_main"]),
    }


def record_attack(run_dir, result: Mapping, lam_main: float) -> dict:
    """Record C10.attack: FRPO(``lam_main``) minus GRPO at the common KL of the harmful SFT at
    ``lr_main``, over seeds, on the exact refusal mass of harmful requests where the world has it
    (the rule of :mod:`frpo.claims`, as for C2), the sampled safety reward beside it."""
    gaps = result["gaps"]
    mine = gaps[gaps["setting"] == result["main_setting"]].set_index("y")
    y = REFUSAL if REFUSAL in mine.index else TRACK_SAFETY
    row = mine.loc[y]

    def interval(r):
        return None if math.isnan(r["lo"]) else (float(r["lo"]), float(r["hi"]))

    second = None
    if y != TRACK_SAFETY:
        sampled = mine.loc[TRACK_SAFETY]
        second = {
            "what": "sampled safety reward",
            "value": float(sampled["gap"]),
            "interval": interval(sampled),
        }
    unsafe = ""
    if UNSAFE in mine.index:
        unsafe = f"; exact unsafe mass gap {mine.loc[UNSAFE, 'gap']:+.3f}"
    label = "exact refusal mass on harmful requests" if y == REFUSAL else "sampled safety reward"
    detail = (
        f"{result['main_setting']}: {label} at the common per-token KL(Q||pi_theta) (mean "
        f"{row['kl_common']:.3f}), FRPO(lam={lam_main:g}) {row['main']:.3f} vs GRPO "
        f"{row['reference']:.3f}, paired over {int(row['n'])} seeds; end-point gap "
        f"{row['end_gap']:+.3f}" + unsafe
    )
    evidence = Evidence(
        float(row["gap"]), interval(row), int(row["n"]), detail=detail, secondary=second
    )
    record_evidence(run_dir, "C10.attack", evidence)
    return row.to_dict()
