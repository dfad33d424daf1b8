"""Reading downstream-SFT trajectories at a common KL (notebook 05: Fig. 3, 4, 7, 12; C2-C4).

A downstream run with tracking (:mod:`frpo.stages.tracking`) writes ``trajectory.json``: one row
per measurement with the stage-1 reward (``frpo/track/reward/<task>``), the per-token
KL(Q || pi_theta) to the stage-1 model it started from (``frpo/track/kl_start``, the ball's
direction, Eq. 3.1) and to pi_ref (``frpo/track/kl_ref``).

**Matched-KL reading (fixed before any run was looked at).** Two trajectories are compared at
their *common KL*, the largest downstream per-token KL both reach::

    kl_c = min(max_t kl_a[t], max_t kl_b[t])

and the kept reward of each is read there by linear interpolation along the trajectory
(:func:`frpo.stats.interpolate_at`, which orders the points by KL). The gap at ``kl_c`` is the
headline (C2); the end-point gap (each run at its own final KL) and the mean gap over a grid of
``[0, kl_c]`` are reported beside it, never in its place. For the lam sweep (C4) the common KL of
one (dataset, seed) is the largest KL *every* method's trajectory reaches.

All KLs here are per token unless a name says ``whole``: whole-response KL = per-token KL x mean
response length (the theory's ball, Eq. 3.1, is on whole-response KL).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from frpo.recipes import objective_lam, sweep_lam
from frpo.stats import interpolate_at, paired_difference
from frpo.theory import taylor_lambda

TRACK_KL = "frpo/track/kl_start"
"""Per-token KL(Q || stage-1 model) along a downstream run."""
TRACK_KL_REF = "frpo/track/kl_ref"
"""Per-token KL(Q || pi_ref) along a downstream run."""
TRACK_SAFETY = "frpo/track/reward/safety"
"""Mean stage-1 safety reward of sampled answers on the tracked held-out prompts."""
MEAN_LENGTH = "frpo/train/completions/mean_length"
"""Stage-1 run metric: mean completion length in tokens (end-of-sequence counted, as TRL does)."""


def read_trajectory(run_dir: str | Path) -> list[dict]:
    """The rows of ``<run_dir>/trajectory.json``, ordered by step (ValueError if absent/empty)."""
    path = Path(run_dir) / "trajectory.json"
    if not path.is_file():
        raise ValueError(f"{run_dir}: no trajectory.json (was the run tracked?)")
    rows = json.loads(path.read_text())
    if not rows:
        raise ValueError(f"{path}: empty trajectory")
    return sorted(rows, key=lambda r: r["step"])


def column(rows: Sequence[dict], key: str) -> np.ndarray:
    """``key`` of every row as float64, shape (n_rows,); ValueError naming a row that lacks it."""
    out = np.empty(len(rows), dtype=np.float64)
    for i, row in enumerate(rows):
        if key not in row:
            raise ValueError(f"trajectory row {i} (step {row.get('step')}) has no {key!r}")
        out[i] = float(row[key])
    return out


def curve(rows: Sequence[dict], y: str = TRACK_SAFETY, x: str = TRACK_KL):
    """``(x, y)`` arrays of a trajectory, shape (n_rows,) each."""
    return column(rows, x), column(rows, y)


def common_kl(kls: Sequence[Sequence[float]]) -> float:
    """The largest KL every trajectory reaches: ``min_i max_t kls[i][t]``."""
    if len(kls) == 0:
        raise ValueError("common_kl needs at least one trajectory")
    tops = []
    for i, k in enumerate(kls):
        a = np.asarray(k, dtype=np.float64)
        if a.ndim != 1 or a.size == 0 or not np.all(np.isfinite(a)):
            raise ValueError(f"trajectory {i}: KLs must be a non-empty finite 1-D sequence")
        tops.append(float(a.max()))
    return min(tops)


def grid_mean_gap(kl_a, y_a, kl_b, y_b, n_grid: int = 11) -> float:
    """Mean of ``y_a - y_b`` over ``n_grid`` equally spaced KLs in ``[lo, kl_c]``.

    ``lo`` is the larger of the two trajectories' smallest KLs (where both are defined) and
    ``kl_c`` their common KL; nan when ``lo > kl_c``.
    """
    if n_grid < 2:
        raise ValueError(f"n_grid must be >= 2, got {n_grid}")
    kc = common_kl([kl_a, kl_b])
    lo = max(float(np.min(kl_a)), float(np.min(kl_b)))
    if lo > kc:
        return float("nan")
    grid = np.linspace(lo, kc, n_grid)
    gaps = [interpolate_at(kl_a, y_a, g) - interpolate_at(kl_b, y_b, g) for g in grid]
    return float(np.mean(gaps))


def matched_gap(kl_a, y_a, kl_b, y_b) -> dict[str, float]:
    """Trajectory ``a`` minus trajectory ``b`` at their common KL (see the module docstring).

    Returns ``kl_common``, ``a``, ``b``, ``gap`` (a - b at ``kl_common``), ``end_gap`` (last
    points), ``end_kl_a``, ``end_kl_b`` (last KLs) and ``grid_gap`` (:func:`grid_mean_gap`).
    """
    kc = common_kl([kl_a, kl_b])
    a, b = interpolate_at(kl_a, y_a, kc), interpolate_at(kl_b, y_b, kc)
    return {
        "kl_common": kc,
        "a": a,
        "b": b,
        "gap": a - b,
        "end_gap": float(y_a[-1] - y_b[-1]),
        "end_kl_a": float(kl_a[-1]),
        "end_kl_b": float(kl_b[-1]),
        "grid_gap": grid_mean_gap(kl_a, y_a, kl_b, y_b),
    }


def paired_gaps(pairs: Sequence[tuple]) -> dict:
    """C2 for one dataset: ``pairs[s] = (kl_frpo, y_frpo, kl_grpo, y_grpo)`` for seed ``s``.

    Returns ``per_seed`` (the :func:`matched_gap` dicts), ``gap`` and ``end_gap`` as
    ``(mean, lo, hi)`` over seeds (:func:`frpo.stats.paired_difference`; nan interval for one
    seed), and the seeds' common KLs.
    """
    if not pairs:
        raise ValueError("paired_gaps needs at least one seed")
    per_seed = [matched_gap(*p) for p in pairs]
    zeros = [0.0] * len(per_seed)
    return {
        "per_seed": per_seed,
        "gap": paired_difference([g["gap"] for g in per_seed], zeros),
        "end_gap": paired_difference([g["end_gap"] for g in per_seed], zeros),
        "kl_common": [g["kl_common"] for g in per_seed],
    }


def kept_at_common_kl(curves: Mapping[tuple, tuple]) -> list[dict]:
    """Kept reward of every method at the common KL of its (dataset, seed) group (C4).

    ``curves[(method, dataset, seed)] = (kl, y)``. Returns one row per key: ``method``, ``lam``
    (:func:`frpo.recipes.sweep_lam`), ``dataset``, ``seed``, ``kl_common`` (largest KL every
    method of the group reaches) and ``kept`` (``y`` read there).
    """
    groups: dict[tuple, list] = {}
    for (method, dataset, seed), xy in curves.items():
        groups.setdefault((dataset, seed), []).append((method, xy))
    rows = []
    for (dataset, seed), members in groups.items():
        kc = common_kl([xy[0] for _, xy in members])
        for method, (kl, y) in members:
            rows.append(
                {
                    "method": method,
                    "lam": sweep_lam(method),
                    "dataset": dataset,
                    "seed": seed,
                    "kl_common": kc,
                    "kept": interpolate_at(kl, y, kc),
                }
            )
    return rows


def best_lam(rows: Sequence[dict]) -> tuple[float, dict[float, float]]:
    """The lam with the highest kept reward averaged over datasets and seeds, and every lam's mean.

    ``rows`` as from :func:`kept_at_common_kl`; GRPO enters as ``lam = inf``, so a GRPO win
    returns ``inf`` (the theory's finite lam* then did not show). Ties go to the smaller lam.
    """
    by_lam: dict[float, list[float]] = {}
    for r in rows:
        by_lam.setdefault(float(r["lam"]), []).append(float(r["kept"]))
    if not by_lam:
        raise ValueError("best_lam needs at least one row")
    means = {lam: float(np.mean(v)) for lam, v in sorted(by_lam.items())}
    if any(math.isnan(m) for m in means.values()):
        bad = [lam for lam, m in means.items() if math.isnan(m)]
        raise ValueError(f"kept reward is nan for lam {bad}")
    best = max(means, key=lambda lam: (means[lam], -lam))
    return best, means


def best_lam_interval(
    rows: Sequence[dict], n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """A bootstrap interval of :func:`best_lam` over seeds (C4's interval).

    Seeds are the independent unit: each of ``n_boot`` redraws takes as many seeds as there are,
    with replacement, keeps every row of each drawn seed (all its datasets and methods, each
    seed's rows once per draw), and finds the best lam of that sample. The interval is the
    ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of those best lams, read as actual lam
    values (``inverted_cdf``), so it can hold ``inf`` (GRPO). Fixed ``seed``: reproducible.
    """
    by_seed: dict = {}
    for r in rows:
        by_seed.setdefault(r["seed"], []).append(r)
    if not by_seed:
        raise ValueError("best_lam_interval needs at least one row")
    seeds = sorted(by_seed)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        picked = rng.choice(len(seeds), size=len(seeds), replace=True)
        draws.append(best_lam([r for i in picked for r in by_seed[seeds[i]]])[0])
    a = np.asarray(draws, dtype=np.float64)
    tail = (1 - level) / 2
    lo = float(np.quantile(a, tail, method="inverted_cdf"))
    hi = float(np.quantile(a, 1 - tail, method="inverted_cdf"))
    return lo, hi


def kl_range(end_kls: Sequence[float]) -> tuple[float, float]:
    """``(min, max)`` of the positive downstream KLs the runs reached.

    A per-token KL estimate at or below 0 (a run that barely moved, read through sampling noise)
    has no lam* (rho must be > 0) and is left out; ValueError when no KL is positive.
    """
    a = np.asarray(end_kls, dtype=np.float64)
    if a.size == 0 or not np.all(np.isfinite(a)):
        raise ValueError("kl_range needs finite KLs")
    pos = a[a > 0]
    if pos.size == 0:
        raise ValueError(f"kl_range: no run reached a KL > 0 (max {a.max():g})")
    return float(pos.min()), float(pos.max())


def taylor_target(std: float, rho_lo: float, rho_hi: float) -> tuple[float, float]:
    """Remark 3.3's lam* = std / sqrt(2 rho) over ``rho in [rho_lo, rho_hi]``: ``(lam_lo, lam_hi)``.

    lam* decreases in rho, so the low end comes from ``rho_hi`` (the paper's Fig. 3 right:
    std 0.07, rho in [0.02, 0.3] gives [0.09, 0.35]).
    """
    if not 0 < rho_lo <= rho_hi:
        raise ValueError(f"need 0 < rho_lo <= rho_hi, got {rho_lo}, {rho_hi}")
    return float(taylor_lambda(std, rho_hi)), float(taylor_lambda(std, rho_lo))


def read_metric(path: str | Path, key: str) -> float:
    """``key`` of a ``metrics.json`` file (a run's or a notebook's); ValueError if absent."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.json"
    if not path.is_file():
        raise ValueError(f"no metrics file {path}")
    data = json.loads(path.read_text())
    if key not in data:
        raise ValueError(f"{path} has no {key!r}; it has {sorted(data)[:12]}...")
    return float(data[key])


def trajectory_frame(runs: Mapping[tuple, str | Path], names=("method", "dataset", "seed")):
    """One long ``pandas.DataFrame`` of the trajectories of ``runs[key] = run_dir``.

    Each key is a tuple named by ``names``; every trajectory row becomes one frame row with those
    columns, ``lam`` (:func:`frpo.recipes.objective_lam`, when ``method`` is named) and the row's
    metrics.
    """
    out = []
    for key, path in runs.items():
        if len(key) != len(names):
            raise ValueError(f"run key {key!r} does not match names {names!r}")
        tags = dict(zip(names, key, strict=True))
        if "method" in tags:
            tags["lam"] = objective_lam(tags["method"])
        out += [{**tags, **row} for row in read_trajectory(path)]
    return pd.DataFrame(out)


def mean_response_length(stage1_runs: Sequence[str | Path]) -> float:
    """Mean of the stage-1 runs' final mean completion length (tokens; :data:`MEAN_LENGTH`)."""
    if not stage1_runs:
        raise ValueError("mean_response_length needs at least one stage-1 run")
    return float(np.mean([read_metric(p, MEAN_LENGTH) for p in stage1_runs]))


TASK_SCORE = {
    "gsm8k": "frpo/eval/gsm8k/correctness",
    "alpaca": "frpo/eval/alpaca/helpfulness",
}
"""The downstream task score after SFT on each dataset (C3; Table 1's analogue): the eval runs'
judge metric on that task's held-out prompts (greedy answers)."""


def metrics_frame(runs: Mapping[tuple, str | Path], names: Sequence[str]):
    """One ``pandas.DataFrame`` row per run: the ``names`` tags and its ``metrics.json``."""
    out = []
    for key, path in runs.items():
        if len(key) != len(names):
            raise ValueError(f"run key {key!r} does not match names {tuple(names)!r}")
        metrics = json.loads((Path(path) / "metrics.json").read_text())
        out.append({**dict(zip(names, key, strict=True)), **metrics})
    return pd.DataFrame(out)
