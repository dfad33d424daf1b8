"""Math RL, then code SFT (paper Sec. 5.2, Table 2, claim C7): before/after tables and contrasts.

Notebook 08 evaluates every stage-1 math model (GRPO and FRPO at several lam, several seeds)
before and after a downstream code SFT with the :mod:`frpo.stages.evaluate` runner, on fixed
held-out sets. Its eval runs give one ``metrics.json`` each; :func:`frpo.analysis.downstream.
metrics_frame` turns them into frames with one row per (method, seed). These helpers then build

- :func:`before_after`: one row per (method, seed) with ``<label>/before``, ``<label>/after``
  and ``<label>/gain`` (after minus before) for each metric;
- :func:`table2`: mean and 95% t-interval over seeds of each of those, per method (long format),
  and :func:`wide_table` the printed Table 2 analogue (``mean +- half-width`` strings);
- :func:`contrast`: a column of one method minus the reference method's, paired on seeds
  (C7.math: math accuracy after code SFT, FRPO(lam=2) minus GRPO; C7.code: code gain, same).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from frpo.stats import mean_interval, paired_difference

MATH_ACC = "frpo/eval/math/correctness"
"""Math accuracy: the correctness judge (math-verify on the boxed answer) on greedy answers."""
MATH_REWARD = "frpo/eval/math/reward"
"""The stage-1 math reward (0.8 correct + 0.2 one-box format) of sampled answers."""
CODE_ACC = "frpo/eval/code/correctness"
"""Code accuracy: the correctness judge (the program executed on hidden inputs), greedy answers."""
STAGES = ("before", "after", "gain")


def before_after(
    before: pd.DataFrame, after: pd.DataFrame, metrics: Mapping[str, str]
) -> pd.DataFrame:
    """Join the evaluations before and after SFT, one row per (method, seed).

    ``before``/``after``: frames with columns ``method``, ``seed`` and the metric columns;
    ``metrics``: label -> column. Returns ``method``, ``seed`` and, per label,
    ``<label>/before``, ``<label>/after``, ``<label>/gain``. ValueError when a column is missing
    or the two frames do not hold the same (method, seed) pairs.
    """
    for name, frame in (("before", before), ("after", after)):
        need = ["method", "seed", *metrics.values()]
        missing = [c for c in need if c not in frame.columns]
        if missing:
            raise ValueError(f"before_after: the {name} frame lacks column(s) {missing}")
        if frame.duplicated(["method", "seed"]).any():
            raise ValueError(f"before_after: the {name} frame repeats a (method, seed) pair")
    keys_b = set(zip(before["method"], before["seed"], strict=True))
    keys_a = set(zip(after["method"], after["seed"], strict=True))
    if keys_b != keys_a:
        raise ValueError(
            f"before_after: (method, seed) pairs differ: only before {sorted(keys_b - keys_a)}, "
            f"only after {sorted(keys_a - keys_b)}"
        )
    b = before.set_index(["method", "seed"])
    a = after.set_index(["method", "seed"]).loc[b.index]
    out = pd.DataFrame(index=b.index)
    for label, col in metrics.items():
        out[f"{label}/before"] = b[col].astype(float)
        out[f"{label}/after"] = a[col].astype(float)
        out[f"{label}/gain"] = out[f"{label}/after"] - out[f"{label}/before"]
    return out.reset_index()


def table2(joined: pd.DataFrame, labels: Sequence[str], methods: Sequence[str] | None = None):
    """Mean and 95% t-interval over seeds per (method, metric, stage), long format.

    ``joined`` as from :func:`before_after`. Columns ``method``, ``metric``, ``stage``
    (before/after/gain), ``mean``, ``lo``, ``hi``, ``n`` (seeds; the interval is nan for one).
    Methods in the order given (default: first appearance).
    """
    methods = list(methods) if methods is not None else list(dict.fromkeys(joined["method"]))
    rows = []
    for method in methods:
        sub = joined[joined["method"] == method]
        if sub.empty:
            raise ValueError(f"table2: no rows of method {method!r}")
        for label in labels:
            for stage in STAGES:
                col = f"{label}/{stage}"
                if col not in sub.columns:
                    raise ValueError(f"table2: no column {col!r}")
                m, lo, hi = mean_interval(sub[col].to_numpy())
                rows.append(
                    {
                        "method": method,
                        "metric": label,
                        "stage": stage,
                        "mean": m,
                        "lo": lo,
                        "hi": hi,
                        "n": len(sub),
                    }
                )
    return pd.DataFrame(rows, columns=["method", "metric", "stage", "mean", "lo", "hi", "n"])


def pm(mean: float, lo: float, hi: float, digits: int = 3) -> str:
    """``"0.412 +- 0.031"`` (half-width of the interval), or just the mean when it is nan."""
    if math.isnan(lo) or math.isnan(hi):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} +- {(hi - lo) / 2:.{digits}f}"


def wide_table(long: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """The printed Table 2: one row per method, one column per ``<metric> <stage>``."""
    cells = long.assign(
        cell=[
            pm(m, lo, hi, digits)
            for m, lo, hi in zip(long["mean"], long["lo"], long["hi"], strict=True)
        ],
        column=long["metric"] + " " + long["stage"],
    )
    order = list(dict.fromkeys(cells["column"]))
    methods = list(dict.fromkeys(cells["method"]))
    return cells.pivot(index="method", columns="column", values="cell").loc[methods, order]


def contrast(
    joined: pd.DataFrame, column: str, method: str, reference: str
) -> tuple[float, float, float, int]:
    """``column`` of ``method`` minus that of ``reference``, paired on shared seeds.

    Returns ``(mean, lo, hi, n_seeds)`` (:func:`frpo.stats.paired_difference`).
    """
    if column not in joined.columns:
        raise ValueError(f"contrast: no column {column!r}")
    mine = joined[joined["method"] == method].set_index("seed")[column]
    ref = joined[joined["method"] == reference].set_index("seed")[column]
    seeds = sorted(set(mine.index) & set(ref.index))
    if not seeds:
        raise ValueError(f"contrast: {method!r} and {reference!r} share no seed")
    m, lo, hi = paired_difference(mine.loc[seeds].to_numpy(), ref.loc[seeds].to_numpy())
    return m, lo, hi, len(seeds)


def kl_spread(kls: Mapping[str, float]) -> float:
    """Largest over smallest of the methods' mean final KLs (1 = perfectly KL-matched).

    nan when a KL estimate is at or below 0 (a run that barely moved, read through sampling
    noise): no ratio is meaningful then. ValueError for no KLs or non-finite ones.
    """
    vals = np.asarray(list(kls.values()), dtype=np.float64)
    if vals.size == 0 or not np.all(np.isfinite(vals)):
        raise ValueError(f"kl_spread needs finite KLs, got {dict(kls)}")
    if np.any(vals <= 0):
        return float("nan")
    return float(vals.max() / vals.min())
