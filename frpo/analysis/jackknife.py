"""The jackknife of Eq. 4.3 (App. F, Fig. 17, claim C6): bias decay, gradient checks, limits.

Notebook 02 reads these helpers:

- :func:`bias_grid` tabulates, for a discrete reward distribution, the bias of the plain and the
  jackknifed estimators of ``log Z`` and of their gradient weights against the group size ``G``
  and ``lam`` (:mod:`frpo.theory.jackknife`: exact enumeration of the groups when feasible, else
  Monte Carlo with its standard error);
- :func:`decay_exponent` fits ``|bias| ~ C G^(-k)`` by least squares on ``log |bias|`` against
  ``log G`` and returns ``k``; the jackknife should raise ``k`` from about 1 to about 2 (C6.bias is
  the difference, :func:`order_gain`); :func:`exponent_interval` propagates Monte-Carlo error;
- :func:`onpolicy_gradients` checks, on one batch, that the trainer's loss
  (:func:`frpo.losses.frpo_loss`) has the gradient of a GRPO surrogate with the advantages of
  :func:`frpo.losses.entropic_advantages` (ratio = 1);
- :func:`large_lam_factor` measures the lam -> inf limit of those advantages relative to GRPO's
  centred advantages: 1 without the jackknife, ``G / (G - 1)`` with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import comb

import numpy as np
import pandas as pd
import torch

from frpo.losses import entropic_advantages, frpo_loss
from frpo.theory.jackknife import MAX_ENUMERATION, log_partition_bias, weight_bias

ESTIMATORS = {"plain": False, "jackknife": True}
"""Estimator name -> the ``jackknife`` flag of :mod:`frpo.theory.jackknife`."""


def n_groups_exact(n_outcomes: int, group_size: int) -> int:
    """How many multisets of ``group_size`` draws from ``n_outcomes`` outcomes exist."""
    return comb(group_size + n_outcomes - 1, n_outcomes - 1)


def bias_grid(
    values: Sequence[float],
    probs: Sequence[float],
    lams: Sequence[float],
    group_sizes: Sequence[int],
    n_mc: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Bias of both estimators of ``log Z`` and of their gradient weights on a (lam, G) grid.

    ``values``/``probs``: the reward distribution, ``(K,)`` each. One row per
    (``estimator``, ``lam``, ``G``) with ``logz_bias`` and ``logz_se`` (``E[log Z estimate] -
    target``, :func:`frpo.theory.jackknife.log_partition_bias`), ``weight_bias`` (the L1 norm over
    outcomes of ``E[weight] - Q_lam``, :func:`frpo.theory.jackknife.weight_bias`) with
    ``weight_se`` (the L1 norm of the per-outcome standard errors, a conservative bound), and
    ``exact`` (True when the expectation was an exact sum over all groups).
    """
    if len(lams) == 0 or len(group_sizes) == 0:
        raise ValueError("bias_grid needs at least one lam and one group size")
    k = int(np.count_nonzero(np.asarray(probs, dtype=float) > 0))
    rows = []
    for name, jk in ESTIMATORS.items():
        for lam in lams:
            for g in group_sizes:
                b, se = log_partition_bias(values, probs, lam, g, jk, n_mc=n_mc, seed=seed)
                wb, wse = weight_bias(values, probs, lam, g, jk, n_mc=n_mc, seed=seed)
                exact = n_mc is None and n_groups_exact(k, int(g)) <= MAX_ENUMERATION
                rows.append(
                    {
                        "estimator": name,
                        "lam": float(lam),
                        "G": int(g),
                        "logz_bias": b,
                        "logz_se": se,
                        "weight_bias": float(np.abs(wb).sum()),
                        "weight_se": float(np.abs(wse).sum()),
                        "exact": bool(exact),
                    }
                )
    return pd.DataFrame(rows)


def decay_exponent(group_sizes: Sequence[float], biases: Sequence[float]) -> float:
    """``k`` of the least-squares fit ``log |bias| = c - k log G`` (|bias| ~ G^-k).

    ValueError when fewer than two points are given or a bias is 0 or not finite (its log is not).
    """
    g = np.asarray(group_sizes, dtype=np.float64)
    b = np.abs(np.asarray(biases, dtype=np.float64))
    if g.shape != b.shape or g.ndim != 1 or g.size < 2:
        raise ValueError(f"need >= 2 paired points, got shapes {g.shape} and {b.shape}")
    if np.any(g <= 0) or len(set(g.tolist())) < 2:
        raise ValueError(f"group sizes must be > 0 and not all equal, got {g.tolist()}")
    if not np.all(np.isfinite(b)) or np.any(b == 0):
        raise ValueError(f"biases must be finite and non-zero, got {b.tolist()}")
    slope = np.polyfit(np.log(g), np.log(b), 1)[0]
    return float(-slope)


def _redrawn_exponents(group_sizes, biases, stderrs, n_draws: int, seed: int) -> np.ndarray:
    """:func:`decay_exponent` refitted on ``n_draws`` normal redraws of the biases (each with its
    standard error, independent across G); draws that hit an exact 0 are dropped."""
    b = np.asarray(biases, dtype=np.float64)
    se = np.asarray(stderrs, dtype=np.float64)
    if se.shape != b.shape or np.any(se < 0) or not np.all(np.isfinite(se)):
        raise ValueError(f"stderrs must be finite, >= 0 and shaped like biases, got {se.tolist()}")
    if not np.any(se > 0):  # exact: every redraw is the fit itself
        return np.full(1, decay_exponent(group_sizes, b))
    noise = np.random.default_rng(seed).standard_normal((n_draws, b.size))
    draws = b[None, :] + se[None, :] * noise
    return np.array([decay_exponent(group_sizes, d) for d in draws if np.all(d != 0)])


def exponent_interval(
    group_sizes: Sequence[float],
    biases: Sequence[float],
    stderrs: Sequence[float],
    n_draws: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """:func:`decay_exponent` with a Monte-Carlo interval: ``(k, lo, hi)``.

    Each bias is redrawn from a normal with its standard error (independent across G) and the fit
    repeated; ``lo``/``hi`` are the central ``level`` quantiles of the refitted ``k``. With all
    standard errors 0 (exact enumeration) the interval is ``(k, k)``.
    """
    k = decay_exponent(group_sizes, biases)
    ks = _redrawn_exponents(group_sizes, biases, stderrs, n_draws, seed)
    if not np.any(np.asarray(stderrs, dtype=np.float64) > 0):
        return k, k, k
    lo, hi = np.quantile(ks, [(1 - level) / 2, (1 + level) / 2])
    return k, float(lo), float(hi)


def order_gain(grid: pd.DataFrame, lam: float, column: str = "logz_bias") -> dict[str, float]:
    """C6.bias at one lam: the orders of 1/G the jackknife gains, ``k(jackknife) - k(plain)``.

    ``k`` is :func:`decay_exponent` (``|bias| ~ G^-k``), so the gain is also the plain log-log
    slope minus the jackknifed one; 1 means O(1/G) -> O(1/G^2). ``grid`` as from
    :func:`bias_grid`; every G of that lam is used. Returns ``gain``, ``lo``, ``hi`` (a 95%
    interval from independent Monte-Carlo redraws of both fits; equal to ``gain`` when the grid
    is exact), ``plain`` and ``jackknife`` (the two exponents) and ``exact``.
    """
    se_col = {"logz_bias": "logz_se", "weight_bias": "weight_se"}.get(column)
    if se_col is None:
        raise ValueError(f"column must be 'logz_bias' or 'weight_bias', got {column!r}")
    sub = grid[np.isclose(grid["lam"], lam)]
    if sub.empty:
        raise ValueError(f"no rows at lam {lam} in the grid (lams {sorted(grid['lam'].unique())})")
    fits, draws = {}, {}
    for i, name in enumerate(ESTIMATORS):
        part = sub[sub["estimator"] == name].sort_values("G")
        g, b, se = part["G"].to_numpy(), part[column].to_numpy(), part[se_col].to_numpy()
        fits[name] = decay_exponent(g, b)
        draws[name] = _redrawn_exponents(g, b, se, 2000, seed=i)
    gain = fits["jackknife"] - fits["plain"]
    exact = bool(sub["exact"].all())
    if exact:
        lo = hi = gain
    else:
        n = min(draws["plain"].size, draws["jackknife"].size)
        diff = draws["jackknife"][:n] - draws["plain"][:n]
        lo, hi = (float(x) for x in np.quantile(diff, [0.025, 0.975]))
    return {
        "gain": gain,
        "lo": lo,
        "hi": hi,
        "plain": fits["plain"],
        "jackknife": fits["jackknife"],
        "exact": exact,
    }


def onpolicy_gradients(
    rewards, lam: float, jackknife: bool = True, n_tokens: int = 5, seed: int = 0
) -> dict:
    """Gradient of the trainer's loss vs the GRPO surrogate with entropic advantages, on-policy.

    ``rewards``: ``(n_groups, G)``. Builds a batch whose rows are the groups' completions (random
    per-token log-probs, all ``n_tokens`` tokens live, ratio = 1), takes the gradient of
    :func:`frpo.losses.frpo_loss` with respect to the per-token log-probs, and that of the GRPO
    surrogate ``mean_groups -(1/G) sum_i Ahat_i s_i`` with ``Ahat`` =
    :func:`frpo.losses.entropic_advantages`. Returns ``g_loss`` and ``g_grpo`` (``(n_groups * G,
    n_tokens)`` float64 tensors), ``max_abs_diff`` and ``max_abs`` (the size of ``g_loss``).
    """
    r = torch.as_tensor(np.asarray(rewards, dtype=np.float64))
    if r.dim() != 2 or r.shape[1] < 2:
        raise ValueError(f"rewards must be (n_groups, G >= 2), got shape {tuple(r.shape)}")
    n, g = r.shape
    gen = torch.Generator().manual_seed(seed)
    old = -torch.rand(n * g, n_tokens, generator=gen, dtype=torch.float64)  # (B, T)
    mask = torch.ones_like(old)
    gids = torch.arange(n).repeat_interleave(g)  # (B,)
    adv = (r - r.mean(1, keepdim=True)).reshape(-1)  # (B,) GRPO's centred advantages

    lp = old.clone().requires_grad_(True)
    loss, _ = frpo_loss(lp, old, adv, mask, gids, lam, jackknife=jackknife)
    (g_loss,) = torch.autograd.grad(loss, lp)

    ahat = entropic_advantages(r, lam, jackknife=jackknife).reshape(-1)  # (B,)
    lp2 = old.clone().requires_grad_(True)
    s = torch.exp(lp2 - old).mean(1)  # (B,) per-sequence ratio, 1 on-policy
    surrogate = -(ahat * s).reshape(n, g).mean(1).mean()
    (g_grpo,) = torch.autograd.grad(surrogate, lp2)
    return {
        "g_loss": g_loss,
        "g_grpo": g_grpo,
        "max_abs_diff": float((g_loss - g_grpo).abs().max()),
        "max_abs": float(g_loss.abs().max()),
    }


def large_lam_factor(rewards, lams: Sequence[float], jackknife: bool = True) -> pd.DataFrame:
    """How the entropic advantages compare with GRPO's centred advantages as lam grows.

    ``rewards``: ``(n_groups, G)``, not all equal within every group. For each lam, the
    least-squares factor ``f`` in ``Ahat ~ f (r - mean r)`` over all rows, and the relative
    residual ``|Ahat - f A| / |Ahat|``. Columns ``lam``, ``factor``, ``residual``, ``G`` and
    ``G_over_G_minus_1`` (the jackknife's predicted limit).
    """
    r = torch.as_tensor(np.asarray(rewards, dtype=np.float64))
    if r.dim() != 2 or r.shape[1] < 2:
        raise ValueError(f"rewards must be (n_groups, G >= 2), got shape {tuple(r.shape)}")
    a = (r - r.mean(1, keepdim=True)).reshape(-1).numpy()
    if not np.any(a != 0):
        raise ValueError("rewards are constant within every group: no advantage to compare")
    g = r.shape[1]
    rows = []
    for lam in lams:
        ahat = entropic_advantages(r, float(lam), jackknife=jackknife).reshape(-1).numpy()
        f = float(a @ ahat / (a @ a))
        resid = float(np.linalg.norm(ahat - f * a) / max(np.linalg.norm(ahat), 1e-300))
        rows.append({"lam": float(lam), "factor": f, "residual": resid, "G": g})
    out = pd.DataFrame(rows)
    out["G_over_G_minus_1"] = g / (g - 1)
    return out
