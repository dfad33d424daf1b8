"""Small statistics for seeds: t-intervals of a mean and of a paired difference.

Every claim in the book is a number over seeds with an interval; these are the only interval
formulas used, so the scoreboard and the notebooks agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats


def mean_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided Student-t interval ``(mean, lo, hi)`` over independent values (seeds).

    With one value the interval is ``(nan, nan)``: one seed says nothing about spread.
    """
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"values must be a non-empty 1-D sequence, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"values must be finite, got {x.tolist()}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    mean = float(x.mean())
    if x.size == 1:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, df=x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return mean, mean - half, mean + half


def paired_difference(
    a: Sequence[float], b: Sequence[float], level: float = 0.95
) -> tuple[float, float, float]:
    """Mean of ``a - b`` over paired seeds with its t-interval ``(mean, lo, hi)``."""
    a_, b_ = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a_.shape != b_.shape:
        raise ValueError(f"paired values need equal shapes, got {a_.shape} and {b_.shape}")
    return mean_interval(a_ - b_, level)


def interpolate_at(x: Sequence[float], y: Sequence[float], x0: float) -> float:
    """``y`` at ``x0`` along a trajectory (linear between points; nan outside the range covered).

    Used to read a reward-against-KL trajectory at a common KL, so methods are compared at the same
    downstream KL (the paper's Fig. 3 reading) rather than at the same step.
    """
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xs.shape != ys.shape or xs.ndim != 1:
        raise ValueError(f"x and y must be 1-D of equal length, got {xs.shape} and {ys.shape}")
    order = np.argsort(xs, kind="stable")
    xs, ys = xs[order], ys[order]
    if xs.size == 0 or x0 < xs[0] or x0 > xs[-1]:
        return float("nan")
    return float(np.interp(x0, xs, ys))
