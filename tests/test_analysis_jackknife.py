"""frpo.analysis.jackknife: exponent fits, bias grid, on-policy and large-lam checks."""

import math

import numpy as np
import pytest
import torch

from frpo.analysis import jackknife as jk

torch.set_num_threads(1)


def test_decay_exponent_of_exact_power_laws():
    g = [4, 8, 16, 32]
    assert jk.decay_exponent(g, [3.0 / x for x in g]) == pytest.approx(1.0, abs=1e-12)
    # sign does not matter (|bias| is fitted): -0.5 G^-2
    assert jk.decay_exponent(g, [-0.5 / x**2 for x in g]) == pytest.approx(2.0, abs=1e-12)
    # two points: slope of the line through them, log(1/4) / log(2) = -2 -> k = 2
    assert jk.decay_exponent([1, 2], [1.0, 0.25]) == pytest.approx(2.0)


@pytest.mark.parametrize(
    "g, b",
    [([4], [1.0]), ([4, 8], [1.0, 0.0]), ([4, 4], [1.0, 0.5]), ([4, 8], [1.0, math.nan])],
)
def test_decay_exponent_rejects_bad_input(g, b):
    with pytest.raises(ValueError):
        jk.decay_exponent(g, b)


def test_exponent_interval_exact_and_noisy():
    g = np.array([4.0, 8.0, 16.0, 32.0])
    b = 2.0 / g**2
    assert jk.exponent_interval(g, b, [0.0] * 4) == pytest.approx((2.0, 2.0, 2.0))
    k, lo, hi = jk.exponent_interval(g, b, 0.05 * b, seed=1)
    assert k == pytest.approx(2.0) and lo < 2.0 < hi and hi - lo < 0.3
    with pytest.raises(ValueError):
        jk.exponent_interval(g, b, [-1.0] * 4)


def test_n_groups_exact():
    # multisets of 2 draws from 3 outcomes: {aa, bb, cc, ab, ac, bc}
    assert jk.n_groups_exact(3, 2) == 6
    assert jk.n_groups_exact(2, 5) == 6


def test_bias_grid_by_hand_for_two_samples():
    # rewards 0 or 1 with p = 1/2, G = 2, lam = 1. Groups {0,0}, {1,1} (prob 1/4 each): A = 0,
    # log Zhat = 0. Group {0,1} (prob 1/2): A = -1/2, 1/2 -> log Zhat = log cosh(1/2).
    # E[plain] = log cosh(1/2) / 2. Target: log E exp(-(r - 1/2)) = log cosh(1/2).
    grid = jk.bias_grid([0.0, 1.0], [0.5, 0.5], [1.0], [2])
    plain = grid[grid.estimator == "plain"].iloc[0]
    assert plain.logz_bias == pytest.approx(-0.5 * math.log(math.cosh(0.5)), rel=1e-12)
    assert plain.exact and plain.logz_se == 0.0
    # Jackknife on {0,1}: 2 log cosh(1/2) - (1/2)(-(-1/2) + -(1/2)) = 2 log cosh(1/2);
    # on {0,0}/{1,1}: 0. E = log cosh(1/2) = the target: zero bias at G = 2 for a two-point law.
    jack = grid[grid.estimator == "jackknife"].iloc[0]
    assert jack.logz_bias == pytest.approx(0.0, abs=1e-14)
    assert set(grid.columns) >= {"estimator", "lam", "G", "logz_bias", "weight_bias", "exact"}
    with pytest.raises(ValueError):
        jk.bias_grid([0.0, 1.0], [0.5, 0.5], [], [2])


def test_order_gain_on_a_real_distribution():
    # The jackknife's whole point (Eq. 4.3): O(1/G) -> O(1/G^2), so a gain near 1.
    grid = jk.bias_grid([0.0, 0.5, 1.0], [0.5, 0.3, 0.2], [1.0], [16, 32, 64])
    res = jk.order_gain(grid, 1.0)
    assert res["exact"] and res["lo"] == res["hi"] == res["gain"]
    assert res["plain"] == pytest.approx(1.0, abs=0.05)
    assert res["jackknife"] == pytest.approx(2.0, abs=0.1)
    assert res["gain"] == pytest.approx(1.0, abs=0.1)
    w = jk.order_gain(grid, 1.0, "weight_bias")
    assert w["gain"] == pytest.approx(1.0, abs=0.15)
    with pytest.raises(ValueError):
        jk.order_gain(grid, 0.3)
    with pytest.raises(ValueError):
        jk.order_gain(grid, 1.0, "nope")


def test_order_gain_with_monte_carlo_has_an_interval():
    grid = jk.bias_grid([0.0, 0.5, 1.0], [0.5, 0.3, 0.2], [1.0], [4, 8, 16], n_mc=200_000)
    assert not grid.exact.any() and (grid.logz_se > 0).all()
    res = jk.order_gain(grid, 1.0)
    assert not res["exact"] and res["lo"] < res["gain"] < res["hi"]


@pytest.mark.parametrize("jackknife", [True, False])
def test_onpolicy_gradients_agree(jackknife):
    rewards = np.array([[0.0, 1.0, 0.5, 0.25], [1.0, 1.0, 0.0, 0.5]])
    out = jk.onpolicy_gradients(rewards, 0.4, jackknife=jackknife)
    assert out["g_loss"].shape == (8, 5)
    assert out["max_abs"] > 1e-3  # a real gradient, so agreement means something
    assert out["max_abs_diff"] < 1e-12
    with pytest.raises(ValueError):
        jk.onpolicy_gradients(np.zeros(4), 0.4)


def test_large_lam_factor():
    rewards = np.array([[0.0, 1.0, 0.5, 0.2], [0.3, 0.3, 1.0, 0.0]])
    plain = jk.large_lam_factor(rewards, [1e6], jackknife=False).iloc[0]
    assert plain.factor == pytest.approx(1.0, rel=1e-5) and plain.residual < 1e-5
    jack = jk.large_lam_factor(rewards, [0.1, 1e6], jackknife=True)
    assert jack.iloc[1].factor == pytest.approx(4 / 3, rel=1e-5)  # G / (G - 1), G = 4
    assert jack.iloc[1].G_over_G_minus_1 == pytest.approx(4 / 3)
    assert jack.iloc[0].residual > 1e-3  # small lam: not proportional to GRPO's advantages
    with pytest.raises(ValueError):
        jk.large_lam_factor(np.ones((2, 3)), [1.0])
