"""Small statistics for seeds: t-intervals of a mean and of a paired difference.

Every claim in the book is a number over seeds with an interval; these are the only interval
formulas used, so the scoreboard and the notebooks agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import optimize, stats


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


def _power(effect_se: float, df: float, level: float) -> float:
    """Power of a two-sided level-``level`` t-test when the true effect is ``effect_se`` standard
    errors away from the null (noncentral t with ``df`` degrees of freedom; normal for inf)."""
    if math.isinf(df):
        zc = stats.norm.ppf(0.5 + level / 2)
        return float(stats.norm.sf(zc - effect_se) + stats.norm.cdf(-zc - effect_se))
    tc = stats.t.ppf(0.5 + level / 2, df)
    # the wrong-sign tail is negligible for large effects, where scipy's nct.cdf can return nan
    wrong_sign = float(np.nan_to_num(stats.nct.cdf(-tc, df, effect_se)))
    return float(stats.nct.sf(tc, df, effect_se)) + wrong_sign


def detectable_effect(
    half_width: float, df: float, level: float = 0.95, power: float = 0.8
) -> float:
    """Minimal detectable effect of an interval of half-width ``half_width``: the true distance
    from the null that a two-sided test at ``1 - level`` detects with probability ``power``.

    The interval is taken as ``estimate +- q * se`` with ``q`` the Student-t quantile at ``df``
    degrees of freedom (normal for ``df = inf``), so ``se = half_width / q``; the power of the
    test at a true effect ``delta`` is ``P(|T| > q)`` with ``T`` noncentral t (noncentrality
    ``delta / se``), solved for ``delta``. For large ``df`` this is the textbook
    ``(z_{0.975} + z_{0.8}) se = 2.80 se``; with few seeds it is larger, since small samples pay
    twice: in ``q`` and in the heavier noncentral tail.
    """
    if not (half_width >= 0 and math.isfinite(half_width)):
        raise ValueError(f"half_width must be finite and >= 0, got {half_width}")
    if not df >= 1:
        raise ValueError(f"df must be >= 1, got {df}")
    if not (0 < level < 1 and 0 < power < 1):
        raise ValueError(f"level and power must lie in (0, 1), got {level}, {power}")
    q = stats.norm.ppf(0.5 + level / 2) if math.isinf(df) else stats.t.ppf(0.5 + level / 2, df)
    se = half_width / q
    if se == 0:
        return 0.0
    hi = 1.0
    while _power(hi, df, level) < power:
        hi *= 2
    ncp = optimize.brentq(lambda d: _power(d, df, level) - power, 0.0, hi, xtol=1e-10)
    return float(ncp * se)


def seeds_for_mde(
    sd: float, target: float, level: float = 0.95, power: float = 0.8, max_seeds: int = 1000
) -> int:
    """The fewest paired seeds ``n >= 2`` whose t-interval over per-seed differences of standard
    deviation ``sd`` has a :func:`detectable_effect` at most ``target``."""
    if not (sd >= 0 and target > 0):
        raise ValueError(f"need sd >= 0 and target > 0, got {sd}, {target}")
    for n in range(2, max_seeds + 1):
        half = stats.t.ppf(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
        if detectable_effect(half, n - 1, level, power) <= target:
            return n
    raise ValueError(f"more than {max_seeds} seeds needed for MDE {target} at sd {sd}")


def interval_se(half_width: float, df: float, level: float = 0.95) -> float:
    """The standard error behind a symmetric interval of half-width ``half_width`` (t at ``df``
    degrees of freedom, normal for inf)."""
    q = stats.norm.ppf(0.5 + level / 2) if math.isinf(df) else stats.t.ppf(0.5 + level / 2, df)
    return half_width / q


def compare_estimates(
    a: float, se_a: float, df_a: float, b: float, se_b: float, df_b: float
) -> tuple[float, float]:
    """Two-sample (Welch) test of ``a == b`` from independent estimates with standard errors and
    degrees of freedom: returns ``(difference a - b, two-sided p-value)``. The degrees of freedom
    are Welch-Satterthwaite's (normal when both are inf); equal estimates with zero errors give
    p = 1, different ones p = 0."""
    diff = a - b
    var = se_a**2 + se_b**2
    if var == 0:
        return diff, 1.0 if diff == 0 else 0.0
    parts = [(se**2) ** 2 / df for se, df in ((se_a, df_a), (se_b, df_b)) if se > 0]
    df = var**2 / sum(parts) if parts else math.inf
    stat = abs(diff) / math.sqrt(var)
    p = 2 * (stats.norm.sf(stat) if math.isinf(df) else stats.t.sf(stat, df))
    return diff, float(p)
