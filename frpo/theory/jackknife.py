"""Bias of the group estimators of ``log Z`` and of their gradient weights (paper Sec. 4, App. F).

Setting: one prompt whose reward takes ``values[k]`` with probability ``probs[k]`` (``K``
outcomes); a group of ``G`` i.i.d. samples with rewards ``r_1..r_G``; ``lam > 0``.

Estimators (Algorithm 1, on-policy so ``s_i = 1``): ``A_i = r_i - mean_j r_j`` and

* plain:     ``log Zhat = log (1/G) sum_i exp(-A_i / lam)``                          (Eq. 4.1)
* jackknife: ``G log Zhat - (G-1)/G sum_j log Zhat_{-j}``, ``Zhat_{-j}`` the leave-one-out mean
  of the same ``exp(-A_i / lam)`` over ``i != j``                                      (Eq. 4.3)

Target. Because ``A`` is centred by the group mean, ``log Zhat = log mean_i exp(-r_i/lam) +
rbar/lam`` and ``E[rbar] = mu = E r``; the estimators therefore target
``log E exp(-(r - mu) / lam) = log Z + mu / lam`` and the centring adds no bias (the jackknife
combination keeps exactly one ``rbar / lam``). ``bias = E[estimate] - target``.

Gradient weights. ``d/ds_i`` of the estimate gives the weight ``c_i`` on ``grad log pi(y_i)``:
plain ``c_i = w_i / S``, jackknife ``c_i = G w_i/S - (G-1)/G sum_{j != i} w_i / (S - w_j)``
(``w = exp(-A/lam)``, ``S = sum w``); both sum to 1. The exact gradient of ``log Z`` puts
weight ``Q_lam(k) = p_k exp(-v_k/lam) / Z`` on outcome ``k``; ``weight_bias`` returns
``E[sum_{i: y_i = k} c_i] - Q_lam(k)``.

Expectations over groups are exact sums over the multisets of outcome counts
(``C(G+K-1, K-1)`` of them, multinomial probabilities) when ``n_mc is None`` and there are at
most ``MAX_ENUMERATION`` of them; otherwise Monte Carlo over ``n_mc`` groups with its standard
error. Everything is done from the count vectors, in log space.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
from scipy.special import gammaln

from .risk import as_distribution, weighted_logsumexp

__all__ = [
    "MAX_ENUMERATION",
    "compositions",
    "group_estimates",
    "log_partition_target",
    "log_partition_bias",
    "weight_bias",
]

MAX_ENUMERATION = 300_000


def compositions(total: int, parts: int) -> np.ndarray:
    """All count vectors of ``parts`` non-negative integers summing to ``total``: ``(M, parts)``."""
    rows = []
    for bars in combinations(range(total + parts - 1), parts - 1):
        edges = (-1, *bars, total + parts - 1)
        rows.append([edges[i + 1] - edges[i] - 1 for i in range(parts)])
    return np.array(rows, dtype=np.int64).reshape(-1, parts)


def _masked_lse(s: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``log sum_k counts_k exp(s_k)`` on the last axis, ``-inf`` terms where counts is 0."""
    shift = np.where(counts > 0, s, -np.inf).max(-1, keepdims=True)
    shift = np.where(np.isfinite(shift), shift, 0.0)
    with np.errstate(divide="ignore"):
        return np.log((counts * np.exp(np.minimum(s - shift, 0.0))).sum(-1)) + shift[..., 0]


def group_estimates(values, counts, lam: float, jackknife: bool) -> tuple[np.ndarray, np.ndarray]:
    """Estimate of ``log Z + rbar-centring`` and per-outcome total weights for groups of counts.

    ``values``: ``(K,)``; ``counts``: ``(M, K)`` non-negative integers, each row summing to
    ``G >= 2``. Returns ``(log_z_hat (M,), weights (M, K))``, ``weights[m, k] = sum of c_i over the
    samples of outcome k`` (rows sum to 1).
    """
    v = np.asarray(values, dtype=np.float64)
    n = np.asarray(counts, dtype=np.float64)
    g = n.sum(-1)
    if np.any(g < 2):
        raise ValueError("counts: every group needs G >= 2 samples")
    if lam <= 0 or not np.isfinite(lam):
        raise ValueError(f"lam must be finite and > 0, got {lam}")
    rbar = (n * v).sum(-1) / g  # (M,)
    s = -(v[None, :] - rbar[:, None]) / lam  # -A / lam per outcome, (M, K)
    log_s = _masked_lse(s, n)  # log S
    log_z = log_s - np.log(g)
    plain_w = n * np.exp(s - log_s[:, None])  # counts_k w_k / S
    if not jackknife:
        return log_z, plain_w
    eye = np.eye(v.size)
    n_minus = n[:, None, :] - eye[None]  # (M, K, K): remove one sample of outcome l (axis 1)
    valid = n > 0  # outcome l present in the group
    log_s_minus = _masked_lse(s[:, None, :], np.maximum(n_minus, 0.0))  # (M, K)
    log_s_minus = np.where(valid, log_s_minus, 0.0)
    loo = log_s_minus - np.log(g - 1)[:, None]
    gm = g[:, None]
    log_z_jk = g * log_z - ((gm - 1) / gm * n * loo).sum(-1)
    # c for one sample of outcome k: G w_k/S - (G-1)/G w_k [sum_l n_l / (S - w_l) - 1/(S - w_k)]
    inv = np.where(valid, np.exp(-log_s_minus), 0.0)  # 1/(S - w_l), relative to the same shift
    total = (n * inv).sum(-1, keepdims=True)
    c = gm * np.exp(s - log_s[:, None]) - (gm - 1) / gm * np.exp(s) * (total - inv)
    return log_z_jk, n * c


def log_partition_target(values, probs, lam: float) -> float:
    """``log E exp(-(r - mu) / lam)``, what the centred estimators target (``= log Z + mu/lam``)."""
    v, p = as_distribution(values, probs)
    mu = float((p * v).sum())
    return float(weighted_logsumexp(-(v - mu) / lam, p))


def _expectation(values, probs, lam, group_size, jackknife, n_mc, seed):
    v, p = as_distribution(values, probs)
    if v.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {v.shape}")
    if int(group_size) != group_size or group_size < 2:
        raise ValueError(f"group_size must be an integer >= 2, got {group_size}")
    keep = p > 0
    v, p = v[keep], p[keep]
    k, g = v.size, int(group_size)
    n_sets = np.exp(gammaln(g + k) - gammaln(k) - gammaln(g + 1))
    if n_mc is None and n_sets <= MAX_ENUMERATION:
        counts = compositions(g, k)
        logw = gammaln(g + 1) - gammaln(counts + 1).sum(-1) + (counts * np.log(p)).sum(-1)
        weight = np.exp(logw)
        est, wts = group_estimates(v, counts, lam, jackknife)
        full = np.zeros((wts.shape[0], keep.size))
        full[:, keep] = wts
        return (weight @ est, 0.0), (weight @ full, np.zeros(keep.size)), v, p, keep
    n_mc = int(n_mc or 200_000)
    counts = np.random.default_rng(seed).multinomial(g, p, size=n_mc)
    est, wts = group_estimates(v, counts, lam, jackknife)
    full = np.zeros((n_mc, keep.size))
    full[:, keep] = wts
    se = np.sqrt(n_mc)
    return (
        (est.mean(), est.std(ddof=1) / se),
        (full.mean(0), full.std(0, ddof=1) / se),
        v,
        p,
        keep,
    )


def log_partition_bias(
    values, probs, lam: float, group_size: int, jackknife: bool, n_mc=None, seed: int = 0
) -> tuple[float, float]:
    """``(E[estimate] - log_partition_target, stderr)``; stderr is 0 for exact enumeration."""
    (mean, se), _, v, p, _ = _expectation(values, probs, lam, group_size, jackknife, n_mc, seed)
    return float(mean - log_partition_target(v, p, lam)), float(se)


def weight_bias(
    values, probs, lam: float, group_size: int, jackknife: bool, n_mc=None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``(E[weight on outcome k] - Q_lam(k), stderr)``, both ``(K,)`` (0 off the support)."""
    _, (mean, se), v, p, keep = _expectation(values, probs, lam, group_size, jackknife, n_mc, seed)
    q = np.zeros(keep.size)
    s = -(v - v.min()) / lam
    q[keep] = p * np.exp(s - weighted_logsumexp(s, p))
    return mean - q, se
