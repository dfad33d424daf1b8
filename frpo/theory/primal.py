"""The primal worst case over a KL ball, solved directly with a generic constrained optimiser.

This exists to *check* the dual in :mod:`frpo.theory.risk`; it never uses the tilted form of the
solution. Problem (paper Eq. 3.1, inner infimum, average constraint over prompts):

    min_{Q(.|x) in simplex}  E_x E_{Q(.|x)} r(x, .)   s.t.   E_x KL(Q(.|x) || pi(.|x)) <= rho.

Method, all primal:

1. If putting each ``Q(.|x)`` on ``pi``'s mass at the row minimum is feasible
   (``E_x -log pi(argmin r | x) <= rho``) it is optimal, since ``E_Q r >= min r`` for every Q.
2. Otherwise (the constraint is then active at the optimum) SLSQP with analytic gradients in the
   softmax parametrisation ``Q = softmax(log pi + z)`` (``z`` in ``[-60, 60]``, joint over all
   prompts), then SLSQP polishing in ``Q`` itself (a convex problem: linear objective, convex KL
   constraint, simplex equalities), alternated twice; the best feasible point is returned. A
   solution that overshoots the constraint (SLSQP stops within ~1e-9 of it, on either side) is
   mixed with ``pi`` just enough to lie inside the ball (:func:`_pull_inside`).

Known limitation: when the worst case is very concentrated (KL-ball radius close to
``E_x -log pi(argmin)``) SLSQP can stop early; the tests use radii where it converges.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp

from .risk import as_ball_problem

__all__ = ["worst_case_reward"]

_Z_BOUND = 60.0
_TINY = 1e-300


def _softmax_stage(rs, logp, support, rho, z0, tol, maxiter):
    n = rs.shape[0]

    def log_q(v):
        z = np.zeros_like(rs)
        z[support] = v
        s = np.where(support, logp + z, -np.inf)
        return s - logsumexp(s, axis=-1, keepdims=True)

    def objective(v):
        q = np.exp(log_q(v))
        e = (q * rs).sum(-1, keepdims=True)
        return float(e.mean()), (q * (rs - e) / n)[support]  # dE_q r/dz = q (r - E_q r)

    def kl_and_grad(v):
        lq = log_q(v)
        q = np.exp(lq)
        ratio = np.where(support, lq - logp, 0.0)
        k = (q * ratio).sum(-1, keepdims=True)
        return float(k.mean()), (q * (ratio - k) / n)[support]  # dKL/dz = q (log q/p - KL)

    res = minimize(
        objective,
        np.clip(z0[support], -_Z_BOUND, _Z_BOUND),
        jac=True,
        method="SLSQP",
        bounds=[(-_Z_BOUND, _Z_BOUND)] * int(support.sum()),
        constraints=[
            {
                "type": "ineq",
                "fun": lambda v: rho - kl_and_grad(v)[0],
                "jac": lambda v: -kl_and_grad(v)[1],
            }
        ],
        options={"ftol": tol, "maxiter": maxiter},
    )
    return np.exp(log_q(res.x))


def _simplex_stage(rs, logp, support, rho, q0, tol, maxiter):
    n, k = rs.shape
    idx = np.flatnonzero(support.ravel())
    rows = np.repeat(np.arange(n), k)[idx]
    a_eq = np.zeros((n, idx.size))
    a_eq[rows, np.arange(idx.size)] = 1.0
    lp = logp.ravel()[idx]
    g = rs.ravel()[idx] / n

    def kl(v):
        return float(np.sum(np.where(v > 0, v * (np.log(np.maximum(v, _TINY)) - lp), 0.0)) / n)

    res = minimize(
        lambda v: (float(g @ v), g),
        q0.ravel()[idx],
        jac=True,
        method="SLSQP",
        bounds=[(0.0, 1.0)] * idx.size,
        constraints=[
            {
                "type": "ineq",
                "fun": lambda v: rho - kl(v),
                "jac": lambda v: -(np.log(np.maximum(v, _TINY)) - lp + 1.0) / n,
            },
            {"type": "eq", "fun": lambda v: a_eq @ v - 1.0, "jac": lambda v: a_eq},
        ],
        options={"ftol": tol, "maxiter": maxiter},
    )
    q = np.zeros(n * k)
    q[idx] = np.clip(res.x, 0.0, None)
    q = q.reshape(n, k)
    return q / q.sum(-1, keepdims=True)


def _pull_inside(q, p, k, rho):
    """``(1 - t) Q + t pi`` with ``t = 1 - rho / k``: a feasible point next to ``Q`` whose
    average KL ``k`` exceeds ``rho`` (KL(. || pi) is convex and 0 at ``pi``, so the mixture's
    average KL is at most ``(1 - t) k = rho``)."""
    t = 1.0 - rho / k
    return (1.0 - t) * q + t * p


def worst_case_reward(rewards, rho, probs=None, *, tol: float = 1e-14, maxiter: int = 1000):
    """Primal ``inf_Q E_x E_Q r`` over ``E_x KL(Q||pi) <= rho``; returns ``(value, Q)``.

    ``rewards``: ``(n_outcomes,)`` for one prompt or ``(n_prompts, n_outcomes)``; ``probs`` the
    same shape or ``None`` (uniform). ``Q`` has the shape of ``rewards`` and satisfies the
    constraint to ``1e-9`` relative. Accuracy against the dual: ~1e-9 relative typically (tests
    assert 1e-5 for moderate radii).
    """
    r2, p2, rho = as_ball_problem(rewards, probs, rho)
    shape = np.shape(rewards)  # (n_outcomes,) or (n_prompts, n_outcomes), validated
    support = p2 > 0
    row_min = np.where(support, r2, np.inf).min(-1, keepdims=True)
    on_min = support & (r2 == row_min)
    point = np.where(on_min, p2, 0.0)
    if rho == 0.0 or np.mean(-np.log(point.sum(-1))) <= rho:
        q = p2.copy() if rho == 0.0 else point / point.sum(-1, keepdims=True)
        return float(np.mean((q * r2).sum(-1))), q.reshape(shape)

    # Rescale rewards to unit range so SLSQP's tolerances are relative to it.
    lo, span = float(row_min.min()), float(np.ptp(r2[support]))
    rs = np.where(support, (r2 - lo) / span, 0.0)
    logp = np.log(np.where(support, p2, 1.0))
    # Start: a small step down the reward from Q = pi (a generic descent direction).
    z = -1e-3 * (rs - (p2 * rs).sum(-1, keepdims=True))
    best_q, best_v = None, np.inf
    for _ in range(2):
        for q in (
            q1 := _softmax_stage(rs, logp, support, rho, z, tol, maxiter),
            _simplex_stage(rs, logp, support, rho, q1, tol, maxiter),
        ):
            with np.errstate(divide="ignore", invalid="ignore"):
                k = np.mean(np.where(q > 0, q * (np.log(q) - logp), 0.0).sum(-1))
            if k > rho:  # SLSQP's last step can overshoot the constraint by ~1e-9: pull Q in
                q, k = _pull_inside(q, p2, k, rho), rho
            v = float(np.mean((q * rs).sum(-1)))
            if k <= rho * (1 + 1e-9) and v < best_v:
                best_q, best_v = q, v
        with np.errstate(divide="ignore"):
            z = np.where(support, np.log(np.maximum(best_q, _TINY)) - logp, 0.0)
    if best_q is None:
        raise RuntimeError("worst_case_reward: SLSQP found no feasible point")
    return float(np.mean((best_q * r2).sum(-1))), best_q.reshape(shape)
