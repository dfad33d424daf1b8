"""Downstream RL for helpfulness (notebook 07: Sec. B.3, Fig. 10): the helpfulness-safety trade-off.

Each stage-1 model (GRPO, FRPO at several lam) is trained further with GRPO on the helpfulness
task while the runner tracks (:mod:`frpo.stages.tracking`) the stage-1 safety reward, the
helpfulness reward and the per-token KL to the stage-1 model on fixed held-out prompts. Fig. 10
plots, per method, final helpfulness against final safety: the paper finds smaller lam keeps more
safety and larger lam gains slightly more helpfulness, GRPO and lam in {2, 1, 0.5, 0.2} on a
Pareto front.

Here a run's *start* and *end* are its first and last trajectory rows (the same prompts and
sampling seed at every row, so the change start -> end has no prompt-sampling noise between rows).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from frpo.analysis.downstream import column
from frpo.recipes import sweep_lam
from frpo.stats import mean_interval


def start_end(rows: Sequence[dict], keys: Sequence[str]) -> dict[str, float]:
    """``<key>/start``, ``<key>/end`` and ``<key>/change`` (end - start) of trajectory ``rows``.

    ``rows`` are ordered by step (as :func:`frpo.analysis.downstream.read_trajectory` gives them).
    """
    if not rows:
        raise ValueError("start_end needs at least one trajectory row")
    out = {}
    for key in keys:
        col = column(rows, key)
        out[f"{key}/start"] = float(col[0])
        out[f"{key}/end"] = float(col[-1])
        out[f"{key}/change"] = float(col[-1] - col[0])
    return out


def per_method(rows: Sequence[dict], value_keys: Sequence[str]) -> list[dict]:
    """Mean and t-interval over seeds of each ``value_keys`` entry, per method.

    ``rows``: one dict per (method, seed) run holding ``method`` and the values. Returns one row per
    method, GRPO first then lam decreasing (:func:`frpo.recipes.sweep_lam`): ``method``, ``lam``,
    ``seeds`` and, per value key, ``<key>`` (the mean), ``<key>/lo`` and ``<key>/hi``.
    """
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["method"], []).append(r)
    out = []
    for method in sorted(by, key=lambda m: -sweep_lam(m)):
        runs = by[method]
        row = {"method": method, "lam": sweep_lam(method), "seeds": len(runs)}
        for key in value_keys:
            mean, lo, hi = mean_interval([float(r[key]) for r in runs])
            row.update({key: mean, f"{key}/lo": lo, f"{key}/hi": hi})
        out.append(row)
    return out


def pareto_front(points: Mapping[str, tuple[float, float]]) -> list[str]:
    """The names whose ``(x, y)`` no other point dominates (both at least as high, one higher).

    Both coordinates are "higher is better" (helpfulness, safety). Order follows ``points``.
    """
    names = list(points)
    for n in names:
        if not all(math.isfinite(v) for v in points[n]):
            raise ValueError(f"point {n!r} is not finite: {points[n]}")
    front = []
    for n in names:
        x, y = points[n]
        dominated = any(
            (xo >= x and yo >= y and (xo > x or yo > y)) for m, (xo, yo) in points.items() if m != n
        )
        if not dominated:
            front.append(n)
    return front


def lam_trend(lams: Sequence[float], values: Sequence[float]) -> float:
    """Spearman rank correlation of ``values`` with lam (GRPO's lam = inf ranks highest; one
    point per run, so seeds of one method tie on lam).

    Fig. 10's reading: a negative correlation of kept safety with lam (smaller lam keeps more)
    and a positive one of the helpfulness gain. nan for fewer than 3 points or a constant input.
    """
    from scipy.stats import spearmanr

    lam = np.asarray(lams, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if lam.shape != v.shape or lam.ndim != 1:
        raise ValueError(f"lams and values must be 1-D of one length, got {lam.shape}, {v.shape}")
    if lam.size < 3 or np.all(v == v[0]) or np.all(lam == lam[0]):
        return float("nan")
    return float(spearmanr(lam, v).statistic)  # ties get average ranks; inf ranks last
