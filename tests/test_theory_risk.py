"""Entropic risk, the KL-ball dual and its primal check (frpo.theory.risk / primal)."""

import os

# One BLAS thread, set before numpy loads: the problems are tiny and the CPU is shared.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest

from frpo.theory import (
    average_tilted_kl,
    entropic_risk,
    kl,
    robust_reward,
    taylor_lambda,
    taylor_robust_reward,
    worst_case_policy,
    worst_case_reward,
)


def _random_problem(rng, shape):
    r = rng.random(shape)
    p = rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])
    return r, p


def test_entropic_risk_two_point_by_hand():
    # r in {0, 1} with probs {1/2, 1/2}, lam = 1:
    # Z = (e^0 + e^-1) / 2 = 0.6839397..., -log Z = 0.3798854...
    z = (1.0 + np.exp(-1.0)) / 2
    assert np.isclose(z, 0.6839397205857212)
    assert np.isclose(entropic_risk([0.0, 1.0], 1.0), -np.log(z), rtol=1e-14)
    assert np.isclose(entropic_risk([0.0, 1.0], 1.0), 0.3798854930417225, rtol=1e-14)


def test_entropic_risk_limits_and_monotone():
    rng = np.random.default_rng(0)
    r, p = _random_problem(rng, (4, 7))
    lams = np.geomspace(1e-4, 1e4, 60)
    vals = np.array([entropic_risk(r, lam, p) for lam in lams])  # (60, 4)
    assert np.all(np.diff(vals, axis=0) >= -1e-12)
    np.testing.assert_allclose(entropic_risk(r, 0.0, p), r.min(-1))
    np.testing.assert_allclose(vals[0], r.min(-1), atol=1e-4 * np.log(1 / p.min()) + 1e-12)
    np.testing.assert_allclose(entropic_risk(r, np.inf, p), (p * r).sum(-1))
    np.testing.assert_allclose(vals[-1], (p * r).sum(-1), atol=1e-4)


def test_entropic_risk_tiny_lam_is_stable():
    r = np.array([1.0, 1.3, 0.9, 1.1])
    v = entropic_risk(r, 1e-4)
    assert np.isfinite(v)
    # -lam log(p_min exp(0)) = 1e-4 * log 4 above the minimum, exactly.
    assert np.isclose(v, 0.9 + 1e-4 * np.log(4.0), rtol=1e-12)


def test_entropic_risk_ignores_zero_probability_outcomes():
    assert entropic_risk([5.0, -100.0], 0.0, [1.0, 0.0]) == 5.0
    assert np.isclose(entropic_risk([5.0, -100.0], 0.3, [1.0, 0.0]), 5.0)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="lam"):
        entropic_risk([1.0, 2.0], -1.0)
    with pytest.raises(ValueError, match="probs"):
        entropic_risk([1.0, 2.0], 1.0, [0.5, 0.6])
    with pytest.raises(ValueError, match="shape"):
        entropic_risk([1.0, 2.0], 1.0, [1.0])
    with pytest.raises(ValueError, match="rho"):
        robust_reward([1.0, 2.0], -0.1)
    with pytest.raises(ValueError, match="finite"):
        entropic_risk([1.0, np.nan], 1.0)


@pytest.mark.parametrize("shape", [(6,), (3, 5), (5, 4)])
@pytest.mark.parametrize("rho", [1e-3, 0.02, 0.1, 0.3])
def test_primal_equals_dual(shape, rho):
    rng = np.random.default_rng(hash((shape, rho)) % 2**32)
    r, p = _random_problem(rng, shape)
    value, lam = robust_reward(r, rho, p)
    primal, q = worst_case_reward(r, rho, p)
    assert 0 < lam < np.inf
    np.testing.assert_allclose(primal, value, rtol=1e-5)
    assert np.mean(kl(q, p)) <= rho * (1 + 1e-6)
    # The primal optimum is the tilted policy at lam*.
    np.testing.assert_allclose(q, worst_case_policy(r, lam, p), atol=1e-3)


def test_worst_case_policy_is_feasible_with_kl_rho_at_lam_star():
    rng = np.random.default_rng(3)
    r, p = _random_problem(rng, (4, 6))
    for rho in (0.01, 0.2):
        value, lam = robust_reward(r, rho, p)
        q = worst_case_policy(r, lam, p)
        np.testing.assert_allclose(q.sum(-1), 1.0)
        assert np.isclose(np.mean(kl(q, p)), rho, rtol=1e-9)
        np.testing.assert_allclose(np.mean((q * r).sum(-1)), value, rtol=1e-10)


def test_dual_is_the_maximum_over_lam():
    rng = np.random.default_rng(4)
    r, p = _random_problem(rng, (3, 5))
    rho = 0.05
    value, lam = robust_reward(r, rho, p)
    for other in lam * np.array([0.5, 0.9, 0.99, 1.01, 1.1, 2.0]):
        assert np.mean(entropic_risk(r, other, p)) - other * rho < value


def test_edges_rho_zero_constant_and_huge():
    rng = np.random.default_rng(5)
    r, p = _random_problem(rng, (3, 4))
    assert robust_reward(r, 0.0, p) == (pytest.approx(np.mean((p * r).sum(-1))), np.inf)
    v, lam = robust_reward(np.full(5, 0.7), 0.3)
    assert v == pytest.approx(0.7) and lam == 0.0
    # Huge radius: every Q(.|x) can sit on its row minimum.
    kl_max = np.mean(-np.log(p[np.arange(3), r.argmin(-1)]))
    for rho in (kl_max, kl_max + 1.0, 50.0):
        v, lam = robust_reward(r, rho, p)
        assert lam == 0.0 and v == pytest.approx(r.min(-1).mean())
        assert worst_case_reward(r, rho, p)[0] == pytest.approx(v)
    # Just below: lam* > 0 and the value is above the average minimum.
    v, lam = robust_reward(r, 0.9 * kl_max, p)
    assert lam > 0 and v > r.min(-1).mean()
    assert np.isclose(average_tilted_kl(r, lam, p), 0.9 * kl_max, rtol=1e-9)


def test_average_constraint_differs_from_per_prompt():
    # Prompt 0 has a rare minimum (costly to reach), prompt 1 a common one (cheap): with the
    # average constraint the budget goes where it buys most, so the value is below the mean of the
    # per-prompt robust values at the same rho.
    r = np.array([[0.0, 1.0], [0.0, 1.0]])
    p = np.array([[0.01, 0.99], [0.5, 0.5]])
    rho = 0.3
    avg, _ = robust_reward(r, rho, p)
    per_prompt = np.mean([robust_reward(r[i], rho, p[i])[0] for i in range(2)])
    assert avg < per_prompt - 1e-3
    assert worst_case_reward(r, rho, p)[0] == pytest.approx(avg, rel=1e-5)


@pytest.mark.parametrize("dist", ["two_point", "gaussian_like"])
def test_lam_star_matches_taylor_at_small_rho(dist):
    if dist == "two_point":
        r, p = np.array([0.0, 1.0]), np.array([0.3, 0.7])
    else:
        r = np.linspace(-3, 3, 41)
        p = np.exp(-(r**2) / 2)
        p /= p.sum()
    mean = (p * r).sum()
    std = np.sqrt((p * (r - mean) ** 2).sum())
    ratios = []
    for rho in (1e-1, 1e-2, 1e-3, 1e-4, 1e-5):
        v, lam = robust_reward(r, rho, p)
        ratios.append(lam / taylor_lambda(std, rho))
        assert v == pytest.approx(taylor_robust_reward(mean, std, rho), abs=5 * rho)
    errors = np.abs(np.array(ratios) - 1)
    assert errors[-1] < 1e-2
    assert np.all(np.diff(errors) < 0)  # converges monotonically as rho -> 0


def test_subnormal_probability_on_the_minimum():
    # The minimum carries probability 1e-310 (subnormal): the risk must stay finite and exact.
    r, p = np.array([0.0, 1.0]), np.array([1e-310, 1.0 - 1e-310])
    assert entropic_risk(r, 0.5, p) == pytest.approx(1.0, rel=1e-12)
    assert np.all(np.isfinite(worst_case_policy(r, 0.5, p)))
