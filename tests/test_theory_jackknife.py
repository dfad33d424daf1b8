"""Jackknife bias of the log-partition estimator and of its gradient weights (App. F)."""

import os

# One BLAS thread, set before numpy loads: the problems are tiny and the CPU is shared.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest

from frpo.theory.jackknife import (
    compositions,
    group_estimates,
    log_partition_bias,
    log_partition_target,
    weight_bias,
)

VALUES = np.array([0.0, 0.5, 1.0])
PROBS = np.array([0.2, 0.5, 0.3])
LAM = 0.5


def _loop_estimates(rewards, lam):
    """Plain-loop reference for one group: (plain log Zhat, jackknife, plain c, jackknife c)."""
    g = len(rewards)
    a = [r - sum(rewards) / g for r in rewards]
    w = [np.exp(-ai / lam) for ai in a]
    s = sum(w)
    log_z = np.log(s / g)
    loo = [np.log((s - w[j]) / (g - 1)) for j in range(g)]
    jk = g * log_z - (g - 1) / g * sum(loo)
    c_plain = [wi / s for wi in w]
    c_jk = [
        g * w[i] / s - (g - 1) / g * sum(w[i] / (s - w[j]) for j in range(g) if j != i)
        for i in range(g)
    ]
    return log_z, jk, c_plain, c_jk


def test_compositions_count_and_sum():
    c = compositions(5, 3)
    assert c.shape == (21, 3)  # C(7, 2)
    assert np.all(c.sum(-1) == 5) and len({tuple(x) for x in c}) == 21


def test_group_estimates_match_plain_loop():
    rng = np.random.default_rng(0)
    for _ in range(20):
        g = int(rng.integers(2, 7))
        idx = rng.integers(0, 3, size=g)
        counts = np.bincount(idx, minlength=3)[None]
        log_z, jk, c_plain, c_jk = _loop_estimates(list(VALUES[idx]), LAM)
        for jackknife, ref, c in ((False, log_z, c_plain), (True, jk, c_jk)):
            est, wts = group_estimates(VALUES, counts, LAM, jackknife)
            assert est[0] == pytest.approx(ref, rel=1e-12, abs=1e-12)
            per_outcome = np.bincount(idx, weights=c, minlength=3)
            np.testing.assert_allclose(wts[0], per_outcome, atol=1e-12)
            assert wts[0].sum() == pytest.approx(1.0)


def test_two_point_group_by_hand():
    # Group {0, 1}, lam = 1: A = (-1/2, 1/2), w = (e^0.5, e^-0.5), log Zhat = log cosh(1/2).
    # Leave-one-out: log w_2 = -1/2 and log w_1 = 1/2, so the jackknife is 2 log cosh(1/2) - 0.
    est, _ = group_estimates([0.0, 1.0], [[1, 1]], 1.0, jackknife=False)
    assert est[0] == pytest.approx(np.log(np.cosh(0.5)))
    est, _ = group_estimates([0.0, 1.0], [[1, 1]], 1.0, jackknife=True)
    assert est[0] == pytest.approx(2 * np.log(np.cosh(0.5)))


def test_exact_enumeration_agrees_with_monte_carlo_loop():
    g, n = 5, 40_000
    rng = np.random.default_rng(1)
    draws = rng.choice(3, size=(n, g), p=PROBS)
    plain, jk = np.empty(n), np.empty(n)
    for m in range(n):
        plain[m], jk[m], _, _ = _loop_estimates(list(VALUES[draws[m]]), LAM)
    target = log_partition_target(VALUES, PROBS, LAM)
    for samples, jackknife in ((plain, False), (jk, True)):
        exact, se0 = log_partition_bias(VALUES, PROBS, LAM, g, jackknife)
        assert se0 == 0.0
        se = samples.std() / np.sqrt(n)
        assert abs(samples.mean() - target - exact) < 4 * se
        mc, mc_se = log_partition_bias(VALUES, PROBS, LAM, g, jackknife, n_mc=n, seed=2)
        assert abs(mc - exact) < 4 * mc_se


def test_plain_bias_is_order_one_over_g_and_jackknife_one_over_g_squared():
    gs = [4, 8, 16, 32, 64]
    plain = np.array([log_partition_bias(VALUES, PROBS, LAM, g, False)[0] for g in gs])
    jk = np.array([log_partition_bias(VALUES, PROBS, LAM, g, True)[0] for g in gs])
    scaled = np.array(gs) * plain
    # G * bias is roughly constant (the delta-method constant -Var(w)/(2 E[w]^2)), and negative
    # (Jensen: E log Zhat <= log E Zhat).
    assert np.all(plain < 0)
    assert scaled.max() / scaled.min() < 1.05
    assert np.all(np.abs(jk) < np.abs(plain) / 10)
    assert np.all(np.array(gs) ** 2 * np.abs(jk) < 0.1)


def test_delta_method_constant():
    # log Zhat bias ~ -Var(w) / (2 G E[w]^2) with w = exp(-r / lam) (the centring cancels).
    w = np.exp(-VALUES / LAM)
    ew = PROBS @ w
    c = -(PROBS @ w**2 - ew**2) / (2 * ew**2)
    bias, _ = log_partition_bias(VALUES, PROBS, LAM, 64, False)
    assert 64 * bias == pytest.approx(c, rel=0.03)


def test_weight_bias_orders():
    gs = [4, 8, 16, 32]
    plain = np.array([np.abs(weight_bias(VALUES, PROBS, LAM, g, False)[0]).max() for g in gs])
    jk = np.array([np.abs(weight_bias(VALUES, PROBS, LAM, g, True)[0]).max() for g in gs])
    g = np.array(gs)
    assert (g * plain).max() / (g * plain).min() < 1.1
    assert np.all(g**2 * jk < 0.5)
    assert np.all(jk < plain / 2)


def test_bad_inputs():
    with pytest.raises(ValueError, match="group_size"):
        log_partition_bias(VALUES, PROBS, LAM, 1, False)
    with pytest.raises(ValueError, match="lam"):
        group_estimates(VALUES, [[1, 1, 0]], 0.0, False)


def test_weight_bias_monte_carlo_agrees_with_enumeration():
    for jackknife in (False, True):
        exact, se0 = weight_bias(VALUES, PROBS, LAM, 6, jackknife)
        mc, se = weight_bias(VALUES, PROBS, LAM, 6, jackknife, n_mc=100_000, seed=3)
        assert np.all(se0 == 0) and np.all(se > 0)
        assert np.all(np.abs(mc - exact) < 4 * se + 1e-12)
        # Weights sum to one in every group, so the biases sum to zero.
        assert exact.sum() == pytest.approx(0.0, abs=1e-12)
