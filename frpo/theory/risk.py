"""Entropic risk, the KL-ball dual (paper Eq. 3.3 / Lemma 3.1) and its Taylor approximation.

Shapes: ``rewards`` and ``probs`` share a shape; the last axis enumerates the outcomes ``y`` of one
prompt (a discrete reward distribution ``r(x, y)`` with probabilities ``pi(y | x)``); leading axes
are prompts. ``probs=None`` means uniform over the last axis. Everything is float64 numpy.

Facts used throughout (``Z_lam = E_pi exp(-r / lam)``, ``Q_lam = pi exp(-r / lam) / Z_lam``):

* ``d/dlam [-lam log Z_lam] = KL(Q_lam || pi)``, so the entropic risk increases with ``lam``,
  from ``min r`` over the support (``lam -> 0``) to ``E_pi r`` (``lam -> inf``).
* The dual of the average-constrained problem (paper Eq. 3.1 with ``E_x KL(Q||pi) <= rho``) is
  ``phi(lam) = -lam E_x log Z_lam(x) - lam rho``, concave in ``lam`` with
  ``phi'(lam) = E_x KL(Q_lam(.|x) || pi(.|x)) - rho``, strictly decreasing unless all rewards
  are constant. The maximiser solves ``E_x KL = rho``; it is ``lam* = 0`` when
  ``rho >= E_x[-log pi(argmin r | x)]`` (the ball then contains the all-on-the-minimum policy).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq
from scipy.special import logsumexp

__all__ = [
    "as_distribution",
    "weighted_logsumexp",
    "entropic_risk",
    "kl",
    "worst_case_policy",
    "average_tilted_kl",
    "robust_reward",
    "taylor_lambda",
    "taylor_robust_reward",
]


def as_distribution(rewards, probs=None) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``(rewards, probs)`` and return float64 arrays of the same shape.

    ``probs=None`` gives the uniform distribution over the last axis. Raises ``ValueError`` for
    non-finite rewards, shape mismatch, negative probabilities, or rows not summing to 1 (1e-6).
    """
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim == 0 or r.shape[-1] == 0:
        raise ValueError(f"rewards must have a non-empty last axis, got shape {r.shape}")
    if not np.all(np.isfinite(r)):
        raise ValueError("rewards must be finite")
    if probs is None:
        p = np.full_like(r, 1.0 / r.shape[-1])
    else:
        p = np.asarray(probs, dtype=np.float64)
        if p.shape != r.shape:
            raise ValueError(f"probs shape {p.shape} differs from rewards shape {r.shape}")
        if not np.all(np.isfinite(p)) or np.any(p < 0):
            raise ValueError("probs must be finite and non-negative")
        sums = p.sum(axis=-1, keepdims=True)
        if np.any(np.abs(sums - 1.0) > 1e-6):
            raise ValueError("probs must sum to 1 along the last axis")
        p = p / sums
    return r, p


def as_ball_problem(rewards, probs, rho) -> tuple[np.ndarray, np.ndarray, float]:
    """Validate a KL-ball problem: ``(r, p)`` as (n_prompts, n_outcomes) float64 tables and rho.

    1-D ``rewards`` are one prompt's outcomes (one row). Raises ``ValueError`` for what
    :func:`as_distribution` refuses, for more than two axes and for rho < 0 or not finite.
    """
    r, p = as_distribution(rewards, probs)
    rho = float(rho)
    if not rho >= 0 or not np.isfinite(rho):
        raise ValueError(f"rho must be finite and >= 0, got {rho}")
    if r.ndim > 2:
        raise ValueError(f"rewards must be 1-D or 2-D, got shape {r.shape}")
    return r.reshape(-1, r.shape[-1]), p.reshape(-1, p.shape[-1]), rho


def _support_min(r: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``min r`` over the support ``p > 0`` along the last axis (leading shape)."""
    return np.where(p > 0, r, np.inf).min(axis=-1)


def weighted_logsumexp(a: np.ndarray, p: np.ndarray, keepdims: bool = False) -> np.ndarray:
    """``log sum_k p_k exp(a_k)`` on the last axis, terms with ``p_k = 0`` dropped.

    ``log p`` is folded into the exponent (scipy's ``b=`` divides by the weight of the largest
    exponent, which overflows when that weight is subnormal).
    """
    with np.errstate(divide="ignore"):
        return logsumexp(np.where(p > 0, a + np.log(p), -np.inf), axis=-1, keepdims=keepdims)


def _check_lam(lam) -> float:
    lam = float(lam)
    if not lam >= 0 or np.isnan(lam):
        raise ValueError(f"lam must be >= 0 (inf allowed), got {lam}")
    return lam


def entropic_risk(rewards, lam, probs=None) -> np.ndarray:
    """``-lam log E_pi exp(-r / lam)`` along the last axis (paper Eq. 3.5 without the KL term).

    Computed as ``m - lam log E exp(-(r - m) / lam)`` with ``m`` the support minimum, so every
    exponent is ``<= 0``: finite and accurate for any ``lam > 0`` (lam = 1e-4 with rewards ~1
    returns ``min r`` up to ``lam * log(1/p_min)``). ``lam = 0`` returns the support minimum,
    ``lam = inf`` the mean. Returns an array of the leading shape (a float for 1-D input).
    """
    r, p = as_distribution(rewards, probs)
    lam = _check_lam(lam)
    m = _support_min(r, p)
    if lam == 0.0:
        return m
    if np.isinf(lam):
        return (p * r).sum(axis=-1)
    d = r - m[..., None]
    return m - lam * weighted_logsumexp(-d / lam, p)


def kl(q, p) -> np.ndarray:
    """``KL(q || p) = sum q log(q / p)`` on the last axis (``0 log 0 = 0``)."""
    q = np.asarray(q, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if q.shape != p.shape:
        raise ValueError(f"q shape {q.shape} differs from p shape {p.shape}")
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(q > 0, q * (np.log(q) - np.log(p)), 0.0)
    return terms.sum(axis=-1)


def _log_tilt(r: np.ndarray, p: np.ndarray, lam: float) -> np.ndarray:
    """``log Q_lam - log pi`` on the support (``-inf`` off it); ``lam`` in ``(0, inf)``."""
    m = _support_min(r, p)[..., None]
    s = -(r - m) / lam
    with np.errstate(divide="ignore"):
        s = np.where(p > 0, s, -np.inf)
    return s - weighted_logsumexp(s, p, keepdims=True)


def worst_case_policy(rewards, lam, probs=None) -> np.ndarray:
    """The tilted distribution ``Q_lam = pi exp(-r / lam) / Z_lam`` (the dual's minimiser).

    ``lam = 0``: ``pi`` restricted to the support minimum and renormalised; ``lam = inf``: ``pi``.
    Same shape as ``rewards``.
    """
    r, p = as_distribution(rewards, probs)
    lam = _check_lam(lam)
    if np.isinf(lam):
        return p.copy()
    if lam == 0.0:
        on_min = (p > 0) & (r == _support_min(r, p)[..., None])
        q = np.where(on_min, p, 0.0)
        return q / q.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore"):
        return np.where(p > 0, p * np.exp(_log_tilt(r, p, lam)), 0.0)


def _tilted_kl(r: np.ndarray, p: np.ndarray, lam: float) -> np.ndarray:
    """``KL(Q_lam || pi)`` per leading index, from ``log Q/pi`` (no subtraction of two KLs)."""
    if np.isinf(lam):
        return np.zeros(r.shape[:-1])
    if lam == 0.0:
        on_min = (p > 0) & (r == _support_min(r, p)[..., None])
        return -np.log(np.where(on_min, p, 0.0).sum(axis=-1))
    lt = _log_tilt(r, p, lam)
    with np.errstate(invalid="ignore"):
        return np.where(p > 0, p * np.exp(lt) * lt, 0.0).sum(axis=-1)


def average_tilted_kl(rewards, lam, probs=None) -> float:
    """``E_x KL(Q_lam(.|x) || pi(.|x))`` = ``phi'(lam) + rho``; decreasing in ``lam``."""
    r, p = as_distribution(rewards, probs)
    r2, p2 = r.reshape(-1, r.shape[-1]), p.reshape(-1, p.shape[-1])
    return float(np.mean(_tilted_kl(r2, p2, _check_lam(lam))))


def robust_reward(rewards, rho, probs=None) -> tuple[float, float]:
    """``inf_{Q: E_x KL(Q||pi) <= rho} E_x E_Q r`` through its dual; returns ``(value, lam_star)``.

    Dual (paper Eq. 3.3, one multiplier for the average constraint):
    ``max_{lam >= 0} phi(lam)``, ``phi(lam) = -lam E_x log E_pi exp(-r / lam) - lam rho``.

    ``rewards``: ``(n_prompts, n_outcomes)`` or ``(n_outcomes,)`` (one prompt); ``probs`` the
    same shape or ``None`` (uniform). Method: ``phi`` is concave and ``phi'(lam) = E_x KL(Q_lam ||
    pi) - rho`` is monotone, so ``lam*`` is the root of ``phi'`` found by Brent's method in
    ``log lam`` after bracketing by doubling (a bounded 1-D search that uses the concavity). The
    root is located to a relative ``2e-14`` in ``lam``; because ``phi'(lam*) = 0`` the value's
    error is second order in that, i.e. at machine precision, up to the cancellation in
    ``E_x KL`` for ``rho < ~1e-12`` (relative error there ``~ eps / rho``).

    Edges: ``rho = 0`` gives ``(E_x E_pi r, inf)``; ``rho >= E_x[-log pi(argmin r)]``, which
    includes constant rewards with ``rho > 0``, gives ``(E_x min r, 0)`` (for constant rewards
    every ``lam`` is optimal; ``0`` is returned when ``rho > 0``).
    """
    r, p, rho = as_ball_problem(rewards, probs, rho)

    def phi(lam: float) -> float:
        return float(np.mean(entropic_risk(r, lam, p))) - (0.0 if np.isinf(lam) else lam * rho)

    if rho == 0.0:
        return phi(np.inf), np.inf
    kl_max = float(np.mean(_tilted_kl(r, p, 0.0)))
    if rho >= kl_max:
        return phi(0.0), 0.0

    def g(log_lam: float) -> float:
        return float(np.mean(_tilted_kl(r, p, np.exp(log_lam)))) - rho

    spread = float(np.max(r.max(axis=-1) - _support_min(r, p)))  # > 0 since kl_max > rho > 0
    lo = hi = np.log(spread)
    while g(lo) <= 0.0:  # KL -> kl_max > rho as lam -> 0, so this ends
        lo -= 1.0
        if lo < -745.0:
            return phi(0.0), 0.0
    while g(hi) >= 0.0:  # KL -> 0 < rho as lam -> inf
        hi += 1.0
        if hi > 700.0:
            return phi(np.inf), np.inf
    log_lam = brentq(g, lo, hi, xtol=1e-14, rtol=4 * np.finfo(float).eps, maxiter=500)
    lam_star = float(np.exp(log_lam))
    return phi(lam_star), lam_star


def taylor_lambda(std, rho):
    """Remark 3.3: ``lam* ~ std / sqrt(2 rho)`` (large-lam / small-rho approximation)."""
    std, rho = np.asarray(std, dtype=np.float64), np.asarray(rho, dtype=np.float64)
    if np.any(std < 0) or np.any(rho <= 0):
        raise ValueError("taylor_lambda needs std >= 0 and rho > 0")
    out = std / np.sqrt(2.0 * rho)
    return float(out) if out.ndim == 0 else out


def taylor_robust_reward(mean, std, rho):
    """Remark 3.3: robust reward ``~ mean - sqrt(2 rho) std`` (value at ``taylor_lambda``)."""
    mean = np.asarray(mean, dtype=np.float64)
    std, rho = np.asarray(std, dtype=np.float64), np.asarray(rho, dtype=np.float64)
    if np.any(std < 0) or np.any(rho < 0):
        raise ValueError("taylor_robust_reward needs std >= 0 and rho >= 0")
    out = mean - np.sqrt(2.0 * rho) * std
    return float(out) if out.ndim == 0 else out
