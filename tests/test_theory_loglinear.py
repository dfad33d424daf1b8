"""The exact log-linear policy experiment (frpo.theory.loglinear)."""

import os

# One BLAS thread, set before numpy loads: the problems are tiny and the CPU is shared.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest

from frpo.theory import entropic_risk
from frpo.theory.loglinear import (
    adversarial_target,
    finetune_path,
    kept_reward_at_kl,
    make_problem,
    optimise_stage1,
    policy,
    policy_stats,
    stage1_objective,
    worst_case_curve,
)

BETA = 0.05


@pytest.fixture(scope="module")
def problem():
    return make_problem(n_prompts=6, n_answers=5, dim=3, seed=0)


@pytest.mark.parametrize("lam", [np.inf, 1.0, 0.2])
def test_gradient_matches_finite_differences(problem, lam):
    theta = np.array([0.3, -0.2, 0.5])
    _, g = stage1_objective(problem, theta, lam, BETA)
    eps = 1e-6
    fd = [
        (
            stage1_objective(problem, theta + eps * e, lam, BETA)[0]
            - stage1_objective(problem, theta - eps * e, lam, BETA)[0]
        )
        / (2 * eps)
        for e in np.eye(3)
    ]
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9)


def test_objective_at_reference_is_the_risk(problem):
    v, _ = stage1_objective(problem, problem.theta_ref, 0.5, BETA)  # KL = 0 at theta_ref
    pi = policy(problem, problem.theta_ref)
    assert v == pytest.approx(entropic_risk(problem.rewards, 0.5, pi).mean())


@pytest.mark.parametrize("lam", [np.inf, 1.0, 0.3])
def test_optimiser_reaches_stationary_point(problem, lam):
    theta, gnorm = optimise_stage1(problem, lam, BETA)
    assert gnorm < 1e-7
    v = stage1_objective(problem, theta, lam, BETA)[0]
    rng = np.random.default_rng(0)
    for _ in range(5):  # no nearby point is better
        assert stage1_objective(problem, theta + 1e-3 * rng.standard_normal(3), lam, BETA)[0] <= v


@pytest.mark.parametrize("lam", [1.0, 0.3])
def test_frpo_optimum_pays_a_smaller_risk_premium(problem, lam):
    # Let P(theta) = E_x[E_pi r - entropic_risk] >= 0 (the risk premium). Optimality of each
    # solution for its own objective gives J_grpo(G) >= J_grpo(F) and J_grpo(F) - P(F) >=
    # J_grpo(G) - P(G), hence P(F) <= P(G): FRPO's optimum is less exposed to reward spread.
    grpo, _ = optimise_stage1(problem, np.inf, BETA)
    frpo, _ = optimise_stage1(problem, lam, BETA)

    def premium(theta):
        pi = policy(problem, theta)
        return np.mean((pi * problem.rewards).sum(-1) - entropic_risk(problem.rewards, lam, pi))

    assert premium(frpo) <= premium(grpo) + 1e-9
    j_grpo = [stage1_objective(problem, t, np.inf, BETA)[0] for t in (grpo, frpo)]
    assert j_grpo[1] <= j_grpo[0] + 1e-12


def test_frpo_optimum_has_lower_reward_variance_at_large_lam(problem):
    # For lam >> spread the premium is Var / (2 lam) + O(lam^-2) (Remark 3.3), so the premium
    # inequality above becomes a variance inequality.
    grpo, _ = optimise_stage1(problem, np.inf, BETA)
    frpo, _ = optimise_stage1(problem, 2.0, BETA)
    assert policy_stats(problem, frpo)["reward_var"] < policy_stats(problem, grpo)["reward_var"]


def test_worst_case_curve_and_finetune_path(problem):
    theta, _ = optimise_stage1(problem, 1.0, BETA)
    stats = policy_stats(problem, theta)
    curve = worst_case_curve(problem, theta, [0.0, 0.01, 0.1, 1.0])
    assert curve[0] == pytest.approx(stats["reward_mean"])
    assert np.all(np.diff(curve) < 0)
    path = finetune_path(problem, theta, steps=50, lr=0.05)
    assert path["kl"][0] == 0.0 and path["reward"][0] == pytest.approx(stats["reward_mean"])
    assert path["downstream_loglik"][-1] > path["downstream_loglik"][0]
    kept = kept_reward_at_kl(path, [0.0, path["kl"][-1] / 2, 1e6])
    assert kept[0] == pytest.approx(stats["reward_mean"]) and np.isnan(kept[2])
    # No Q in the KL ball does worse than the worst case: the path stays above the curve.
    for k, r in zip(path["kl"][1:], path["reward"][1:], strict=True):
        assert r >= worst_case_curve(problem, theta, [k])[0] - 1e-9


def test_adversarial_target_is_the_worst_case_and_its_path_loses_reward(problem):
    theta, _ = optimise_stage1(problem, 1.0, BETA)
    pi = policy(problem, theta)
    rho = 0.3
    target = adversarial_target(problem, theta, rho)
    # the tilted policy sits on the ball's edge and attains the worst case (primal = dual)
    kl = np.sum(target * np.log(target / pi), axis=-1).mean()
    assert kl == pytest.approx(rho, rel=1e-9)
    assert (target * problem.rewards).sum(-1).mean() == pytest.approx(
        worst_case_curve(problem, theta, [rho])[0], rel=1e-12
    )
    path = finetune_path(problem, theta, steps=60, lr=0.05, target=target)
    unrelated = finetune_path(problem, theta, steps=60, lr=0.05)
    assert np.all(np.diff(path["reward"]) < 0)  # every step toward the worst case loses reward
    assert path["downstream_loglik"][-1] > path["downstream_loglik"][0]
    for k, r in zip(path["kl"][1:], path["reward"][1:], strict=True):
        assert r >= worst_case_curve(problem, theta, [k])[0] - 1e-9
    # at a KL both paths reach, the attack keeps less than the unrelated fine-tuning
    k = 0.5 * min(path["kl"][-1], unrelated["kl"][-1])
    assert kept_reward_at_kl(path, [k])[0] < kept_reward_at_kl(unrelated, [k])[0]
    with pytest.raises(ValueError, match="target must have shape"):
        finetune_path(problem, theta, steps=1, target=target[:, :2])


def test_problem_validation():
    p = make_problem(2, 3, 2)
    with pytest.raises(ValueError, match="theta_ref"):
        type(p)(p.features, p.rewards, np.zeros(3), p.downstream)
