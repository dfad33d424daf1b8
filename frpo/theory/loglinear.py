"""An exact log-linear (softmax) policy experiment: GRPO vs FRPO optima and their robustness.

Each prompt ``x`` has ``K`` enumerable answers with rewards ``r(x, y)`` and features
``phi(x, y)`` in ``R^d``; the policy is ``pi_theta(y|x) = softmax_y(phi(x, y) @ theta)``. One
``theta`` is shared by all prompts, so moving one prompt's distribution moves the others.

Stage-1 objectives (exact expectations, averaged over prompts):

* GRPO (``lam = inf``): ``J(theta) = E_x E_pi r - beta E_x KL(pi || pi_ref)``       (paper Eq. 2.1)
* FRPO:             ``J_lam(theta) = E_x [-lam log E_pi exp(-r/lam)] - beta E_x KL``  (Eq. 3.5)

Gradients w.r.t. the logits ``l = phi @ theta`` per prompt: ``dE_pi r = pi (r - E_pi r)``,
``d entropic = lam (pi - Q_lam)`` (``Q_lam`` the tilted policy), ``dKL(pi||ref) = pi (log pi/ref -
KL)``; chained through ``phi``. Both are maximised with L-BFGS to a small gradient norm.
Then (a) the worst case over the average KL ball around each optimum (``robust_reward``) and
(b) downstream fine-tuning: gradient ascent of ``E_x sum_y D(y|x) log pi(y|x)`` from the
stage-1 optimum, tracking the stage-1 reward against ``E_x KL(Q || pi_stage1)``, with ``D``
either unrelated to the reward or the optimum's own worst case in the ball (the adversarial
direction, :func:`adversarial_target`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax

from .risk import entropic_risk, robust_reward, worst_case_policy

__all__ = [
    "LogLinearProblem",
    "make_problem",
    "policy",
    "stage1_objective",
    "optimise_stage1",
    "policy_stats",
    "worst_case_curve",
    "adversarial_target",
    "finetune_path",
    "kept_reward_at_kl",
]


@dataclass(frozen=True)
class LogLinearProblem:
    """A toy world with exact expectations.

    features: (n_prompts, K, d) -- ``phi(x, y)``, shared parameter ``theta`` (d,).
    rewards: (n_prompts, K) -- stage-1 reward ``r(x, y)``.
    theta_ref: (d,) -- the reference policy ``pi_ref = pi_{theta_ref}``.
    downstream: (n_prompts, K) -- target distribution ``D(y|x)`` of the downstream fine-tuning.
    """

    features: np.ndarray
    rewards: np.ndarray
    theta_ref: np.ndarray
    downstream: np.ndarray

    def __post_init__(self):
        n, k, d = np.shape(self.features)
        if np.shape(self.rewards) != (n, k) or np.shape(self.downstream) != (n, k):
            raise ValueError("rewards and downstream must have shape (n_prompts, K) of features")
        if np.shape(self.theta_ref) != (d,):
            raise ValueError(f"theta_ref must have shape ({d},)")


def make_problem(
    n_prompts: int = 16, n_answers: int = 8, dim: int = 6, seed: int = 0
) -> LogLinearProblem:
    """Random features ``N(0, 1)``, rewards ``U(0, 1)``, ``theta_ref ~ N(0, 0.5^2)``, and a
    downstream target ``softmax(N(0, 1) * 2)`` unrelated to the reward."""
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((n_prompts, n_answers, dim))
    rewards = rng.random((n_prompts, n_answers))
    theta_ref = 0.5 * rng.standard_normal(dim)
    downstream = np.exp(log_softmax(2.0 * rng.standard_normal((n_prompts, n_answers)), axis=-1))
    return LogLinearProblem(features, rewards, theta_ref, downstream)


def _log_policy(problem: LogLinearProblem, theta) -> np.ndarray:
    return log_softmax(problem.features @ np.asarray(theta, dtype=np.float64), axis=-1)


def policy(problem: LogLinearProblem, theta) -> np.ndarray:
    """``pi_theta(y|x)``, shape (n_prompts, K)."""
    return np.exp(_log_policy(problem, theta))


def stage1_objective(problem: LogLinearProblem, theta, lam: float, beta: float):
    """``(J, dJ/dtheta)``: GRPO for ``lam = inf``, FRPO's ``J_lam`` otherwise (see module doc)."""
    lp = _log_policy(problem, theta)
    pi = np.exp(lp)
    lref = _log_policy(problem, problem.theta_ref)
    r = problem.rewards
    if np.isinf(lam):
        risk = (pi * r).sum(-1)
        g = pi * (r - risk[:, None])
    else:
        risk = entropic_risk(r, lam, pi)
        g = lam * (pi - worst_case_policy(r, lam, pi))
    ratio = lp - lref
    kl = (pi * ratio).sum(-1)
    g = g - beta * pi * (ratio - kl[:, None])
    n = r.shape[0]
    value = float(risk.mean() - beta * kl.mean())
    return value, np.einsum("nkd,nk->d", problem.features, g) / n


def optimise_stage1(problem: LogLinearProblem, lam: float, beta: float, theta0=None, gtol=1e-9):
    """Maximise ``stage1_objective`` with L-BFGS from ``theta0`` (default ``theta_ref``).

    Returns ``(theta, grad_norm)``; ``grad_norm`` is the gradient norm at the returned point.
    """
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    x0 = problem.theta_ref if theta0 is None else np.asarray(theta0, dtype=np.float64)

    def neg(theta):
        v, g = stage1_objective(problem, theta, lam, beta)
        return -v, -g

    res = minimize(
        neg, x0, jac=True, method="L-BFGS-B", options={"gtol": gtol, "ftol": 1e-15, "maxiter": 5000}
    )
    return res.x, float(np.linalg.norm(stage1_objective(problem, res.x, lam, beta)[1]))


def policy_stats(problem: LogLinearProblem, theta) -> dict[str, float]:
    """Mean reward, mean per-prompt reward variance and ``E_x KL(pi || pi_ref)`` at ``theta``."""
    lp = _log_policy(problem, theta)
    pi = np.exp(lp)
    r = problem.rewards
    mean = (pi * r).sum(-1)
    lref = _log_policy(problem, problem.theta_ref)
    return {
        "reward_mean": float(mean.mean()),
        "reward_var": float((pi * (r - mean[:, None]) ** 2).sum(-1).mean()),
        "kl_ref": float((pi * (lp - lref)).sum(-1).mean()),
    }


def worst_case_curve(problem: LogLinearProblem, theta, rhos) -> np.ndarray:
    """``inf_{E_x KL(Q||pi_theta) <= rho} E_x E_Q r`` per ``rho`` (via the dual): (len(rhos),)."""
    pi = policy(problem, theta)
    return np.array([robust_reward(problem.rewards, rho, pi)[0] for rho in rhos])


def adversarial_target(problem: LogLinearProblem, theta, rho: float) -> np.ndarray:
    """The worst case in the ball of radius ``rho`` around ``pi_theta``: the tilted policy
    ``Q = pi exp(-r / lam*) / Z`` (paper Lemma 3.1), ``lam*`` the dual's maximiser at ``rho``
    (:func:`robust_reward`), so ``E_x KL(Q || pi_theta) = rho`` (for ``rho`` below the ball's
    saturation). Shape (n_prompts, K). Fine-tuning toward it is fine-tuning toward low reward
    along the direction that lowers it fastest per unit of KL."""
    pi = policy(problem, theta)
    _, lam = robust_reward(problem.rewards, rho, pi)
    return worst_case_policy(problem.rewards, lam, pi)


def finetune_path(
    problem: LogLinearProblem, theta0, steps: int = 200, lr: float = 0.5, target=None
):
    """Downstream gradient ascent on ``E_x sum_y D log pi`` from ``theta0``.

    ``D`` is ``target`` (n_prompts, K), default ``problem.downstream`` (unrelated to the reward);
    :func:`adversarial_target` gives the adversarial direction. Returns a dict of arrays of
    length ``steps + 1``: ``kl`` = ``E_x KL(Q_t || pi_theta0)``, ``reward`` = stage-1
    ``E_x E_{Q_t} r``, ``downstream_loglik`` (of ``D``).
    """
    theta = np.asarray(theta0, dtype=np.float64).copy()
    lp0 = _log_policy(problem, theta0)
    d = problem.downstream if target is None else np.asarray(target, dtype=np.float64)
    if d.shape != problem.rewards.shape:
        raise ValueError(f"target must have shape {problem.rewards.shape}, got {d.shape}")
    f = problem.features
    out = {"kl": [], "reward": [], "downstream_loglik": []}
    for t in range(steps + 1):
        lq = _log_policy(problem, theta)
        q = np.exp(lq)
        out["kl"].append(float((q * (lq - lp0)).sum(-1).mean()))
        out["reward"].append(float((q * problem.rewards).sum(-1).mean()))
        out["downstream_loglik"].append(float((d * lq).sum(-1).mean()))
        if t < steps:  # d/dl sum_y D log softmax(l) = D - q
            theta = theta + lr * np.einsum("nkd,nk->d", f, d - q) / d.shape[0]
    return {k: np.array(v) for k, v in out.items()}


def kept_reward_at_kl(path: dict, kl_levels) -> np.ndarray:
    """Stage-1 reward along ``path`` linearly interpolated at ``kl_levels`` (``nan`` past the path).

    Assumes ``path["kl"]`` increases along the path (checked)."""
    kl = path["kl"]
    if np.any(np.diff(kl) < -1e-12):
        raise ValueError("path['kl'] is not increasing; use a smaller lr")
    levels = np.asarray(kl_levels, dtype=np.float64)
    out = np.interp(levels, kl, path["reward"])
    return np.where(levels <= kl[-1], out, np.nan)
