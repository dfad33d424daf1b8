"""Baselines and budgets after downstream SFT (notebook 09: Fig. 6 / C8, Fig. 11, Fig. 15).

All three comparisons read tracked SFT trajectories (``trajectory.json``, see
:mod:`frpo.analysis.downstream`) at a **common KL**: within one group of runs (e.g. the GRPO,
FRPO and GRPO+SAM runs of one seed) the kept stage-1 reward of each run is read, by linear
interpolation along its trajectory, at the largest per-token KL(Q || pi_theta) every run of the
group reaches (:func:`frpo.analysis.downstream.common_kl`). This reading was fixed before any run
was looked at; the end points (each run at its own final KL) are kept beside it.

C8 (Sec. 5.3, Fig. 6) places SAM on a GRPO-to-FRPO scale per seed::

    t = (kept_sam - kept_grpo) / (kept_frpo - kept_grpo)

so ``t = 0`` is GRPO's kept reward, ``t = 1`` FRPO's, and ``0 < t < 1`` "between". The ratio is
undefined when FRPO and GRPO kept the same reward; a seed with ``|kept_frpo - kept_grpo| <=
min_gap`` is **left out** of the mean (and named), never divided through: a ratio over a gap
smaller than the measurement's resolution (one prompt's worth of reward) is noise, not a place on
the scale. The pooled ratio of the seed-mean gaps is reported beside the per-seed mean.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from frpo.analysis.downstream import common_kl
from frpo.stats import interpolate_at, mean_interval


def kept_at_common(
    curves: Mapping[tuple, tuple], names: Sequence[str], by: Sequence[str]
) -> list[dict]:
    """Kept reward of every run at the common KL of its group.

    ``curves[key] = (kl, y)`` with ``key`` a tuple named by ``names`` (e.g.
    ``("method", "seed")``); runs whose tags in ``by`` agree form one group (e.g. ``("seed",)``).
    ``kl`` and ``y`` are 1-D of equal length (one entry per trajectory row). Returns one row per
    run: its tags, ``kl_common`` (the group's common KL), ``kept`` (``y`` read there), ``end``
    (``y`` at the last row) and ``end_kl``.
    """
    names = tuple(names)
    missing = [b for b in by if b not in names]
    if missing:
        raise ValueError(f"group field(s) {missing} are not among the key names {names}")
    groups: dict[tuple, list] = {}
    for key, xy in curves.items():
        if len(key) != len(names):
            raise ValueError(f"run key {key!r} does not match names {names!r}")
        tags = dict(zip(names, key, strict=True))
        groups.setdefault(tuple(tags[b] for b in by), []).append((tags, xy))
    rows = []
    for members in groups.values():
        kc = common_kl([np.asarray(xy[0], dtype=np.float64) for _, xy in members])
        for tags, (kl, y) in members:
            y = np.asarray(y, dtype=np.float64)
            rows.append(
                {
                    **tags,
                    "kl_common": kc,
                    "kept": interpolate_at(kl, y, kc),
                    "end": float(y[-1]),
                    "end_kl": float(np.asarray(kl, dtype=np.float64)[-1]),
                }
            )
    return rows


def scale_position(value: float, low: float, high: float, min_gap: float = 0.0) -> float:
    """``(value - low) / (high - low)``: 0 at ``low``, 1 at ``high``; nan if ``|high - low| <=
    min_gap`` (the scale is undefined; see the module docstring)."""
    if min_gap < 0 or not math.isfinite(min_gap):
        raise ValueError(f"min_gap must be finite and >= 0, got {min_gap}")
    for name, v in (("value", value), ("low", low), ("high", high)):
        if not math.isfinite(v):
            raise ValueError(f"scale_position: {name} must be finite, got {v}")
    gap = high - low
    if abs(gap) <= min_gap:
        return float("nan")
    return (value - low) / gap


def scale_over_seeds(
    value: Sequence[float],
    low: Sequence[float],
    high: Sequence[float],
    seeds: Sequence,
    min_gap: float = 0.0,
) -> dict:
    """C8: :func:`scale_position` per seed, then the mean and t-interval over usable seeds.

    The three sequences are paired by position with ``seeds`` (shape (n_seeds,) each). Returns
    ``per_seed`` (nan where the seed was left out), ``dropped`` (those seeds), ``used`` (how many
    seeds stand behind the mean), ``mean``, ``lo``, ``hi`` (:func:`frpo.stats.mean_interval`;
    nan interval with one usable seed, all nan with none) and ``pooled``, the ratio of the mean
    gaps ``mean(value - low) / mean(high - low)`` over all seeds (nan if that gap is <= min_gap).
    """
    v, lo_, hi_ = (np.asarray(a, dtype=np.float64) for a in (value, low, high))
    if not (v.shape == lo_.shape == hi_.shape == (len(seeds),)) or len(seeds) == 0:
        raise ValueError(
            f"value, low, high and seeds must be 1-D of one length > 0, got {v.shape}, "
            f"{lo_.shape}, {hi_.shape} and {len(seeds)} seeds"
        )
    per_seed = [scale_position(a, b, c, min_gap) for a, b, c in zip(v, lo_, hi_, strict=True)]
    ok = [t for t in per_seed if math.isfinite(t)]
    mean, lo, hi = mean_interval(ok) if ok else (float("nan"),) * 3
    gap = float(np.mean(hi_ - lo_))
    pooled = float(np.mean(v - lo_)) / gap if abs(gap) > min_gap else float("nan")
    return {
        "per_seed": per_seed,
        "dropped": [s for s, t in zip(seeds, per_seed, strict=True) if not math.isfinite(t)],
        "used": len(ok),
        "mean": mean,
        "lo": lo,
        "hi": hi,
        "pooled": pooled,
    }


def pick(rows: Sequence[dict], field: str = "kept", **tags) -> float:
    """``field`` of the one row whose tags equal ``tags`` (ValueError if none or several)."""
    hits = [r for r in rows if all(r.get(k) == v for k, v in tags.items())]
    if len(hits) != 1:
        raise ValueError(f"{len(hits)} rows match {tags}; expected exactly one")
    return float(hits[0][field])


def scaled_beta(betas: Mapping[str, float], key: str, scale: float) -> dict[str, float]:
    """A betas table with ``key``'s beta multiplied by ``scale`` (Fig. 15's stage-1 KL budget:
    a smaller beta lets stage 1 move further from pi_ref)."""
    if key not in betas:
        raise ValueError(f"no beta for {key!r} in {sorted(betas)}")
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"beta scale must be finite and > 0, got {scale}")
    return {**betas, key: float(betas[key]) * float(scale)}
