"""frpo.analysis.baselines and frpo.analysis.downstream_rl on small hand-made inputs."""

import math

import numpy as np
import pytest

from frpo.analysis import baselines as bl
from frpo.analysis import downstream_rl as drl


def test_kept_at_common_reads_each_group_at_its_smallest_top_kl():
    # seed 0: GRPO reaches KL 0.4, SAM 0.2 -> common KL 0.2
    # GRPO at 0.2: halfway between (0.0, 1.0) and (0.4, 0.6) -> 0.8; SAM at its end 0.2 -> 0.7
    # seed 1 is its own group: only GRPO, common KL = its own top 0.1 -> its end value 0.5
    curves = {
        ("grpo", 0): ([0.0, 0.4], [1.0, 0.6]),
        ("sam", 0): ([0.0, 0.1, 0.2], [0.9, 0.8, 0.7]),
        ("grpo", 1): ([0.0, 0.1], [0.9, 0.5]),
    }
    rows = bl.kept_at_common(curves, ("method", "seed"), ("seed",))
    assert bl.pick(rows, method="grpo", seed=0) == pytest.approx(0.8)
    assert bl.pick(rows, method="sam", seed=0) == pytest.approx(0.7)
    assert bl.pick(rows, "kl_common", method="sam", seed=0) == pytest.approx(0.2)
    assert bl.pick(rows, method="grpo", seed=1) == pytest.approx(0.5)
    assert bl.pick(rows, "end", method="grpo", seed=0) == pytest.approx(0.6)
    assert bl.pick(rows, "end_kl", method="grpo", seed=0) == pytest.approx(0.4)


def test_kept_at_common_checks_names():
    with pytest.raises(ValueError, match="group field"):
        bl.kept_at_common({("grpo", 0): ([0.0], [1.0])}, ("method", "seed"), ("dataset",))
    with pytest.raises(ValueError, match="does not match"):
        bl.kept_at_common({("grpo",): ([0.0], [1.0])}, ("method", "seed"), ("seed",))


def test_pick_needs_exactly_one_row():
    rows = [{"m": "a", "kept": 1.0}, {"m": "a", "kept": 2.0}]
    with pytest.raises(ValueError, match="2 rows"):
        bl.pick(rows, m="a")
    with pytest.raises(ValueError, match="0 rows"):
        bl.pick(rows, m="b")


def test_scale_position_hand_values():
    assert bl.scale_position(0.5, 0.4, 0.6) == pytest.approx(0.5)  # halfway
    assert bl.scale_position(0.4, 0.4, 0.6) == pytest.approx(0.0)  # at GRPO
    assert bl.scale_position(0.7, 0.4, 0.6) == pytest.approx(1.5)  # beyond FRPO
    # FRPO below GRPO: SAM halfway between them is still 0.5 on the scale
    assert bl.scale_position(0.5, 0.6, 0.4) == pytest.approx(0.5)
    assert math.isnan(bl.scale_position(0.5, 0.4, 0.4))  # zero denominator
    assert math.isnan(bl.scale_position(0.5, 0.40, 0.41, min_gap=0.02))  # gap below resolution
    with pytest.raises(ValueError, match="min_gap"):
        bl.scale_position(0.5, 0.4, 0.6, min_gap=-1)
    with pytest.raises(ValueError, match="high"):
        bl.scale_position(0.5, 0.4, float("nan"))


def test_scale_over_seeds_drops_undefined_seeds_and_pools():
    # seed 0: (0.5-0.4)/(0.6-0.4) = 0.5; seed 1: (0.3-0.2)/(0.6-0.2) = 0.25; seed 2: gap 0 -> out
    res = bl.scale_over_seeds([0.5, 0.3, 0.9], [0.4, 0.2, 0.5], [0.6, 0.6, 0.5], [0, 1, 2])
    assert res["per_seed"][:2] == pytest.approx([0.5, 0.25])
    assert math.isnan(res["per_seed"][2])
    assert res["dropped"] == [2] and res["used"] == 2
    assert res["mean"] == pytest.approx(0.375)
    # t-interval of [0.5, 0.25]: half-width t_{0.975,1} * sd / sqrt(2) = 12.706 * 0.17678 / 1.4142
    assert res["hi"] - res["mean"] == pytest.approx(12.7062 * 0.125, rel=1e-4)
    # pooled: mean(sam - grpo) = (0.1 + 0.1 + 0.4)/3 = 0.2; mean(frpo - grpo) = (0.2+0.4+0)/3 = 0.2
    assert res["pooled"] == pytest.approx(1.0)


def test_scale_over_seeds_all_undefined_and_bad_shapes():
    res = bl.scale_over_seeds([0.5], [0.4], [0.4], [0])
    assert res["used"] == 0 and math.isnan(res["mean"]) and math.isnan(res["pooled"])
    with pytest.raises(ValueError, match="one length"):
        bl.scale_over_seeds([0.5, 0.1], [0.4], [0.6], [0])


def test_scaled_beta_only_changes_one_key_and_keeps_exact_values():
    betas = {"grpo": 0.1, "frpo-0.2": 1.0}
    out = bl.scaled_beta(betas, "grpo", 0.25)
    assert out == {"grpo": 0.025, "frpo-0.2": 1.0}
    assert bl.scaled_beta(betas, "grpo", 1.0)["grpo"] == 0.1  # scale 1 is the same run
    with pytest.raises(ValueError, match="no beta"):
        bl.scaled_beta(betas, "sam", 0.5)
    with pytest.raises(ValueError, match="> 0"):
        bl.scaled_beta(betas, "grpo", 0.0)


def test_start_end_change():
    rows = [{"step": 0, "a": 0.6}, {"step": 4, "a": 0.5}, {"step": 8, "a": 0.25}]
    out = drl.start_end(rows, ["a"])
    assert out == {"a/start": 0.6, "a/end": 0.25, "a/change": pytest.approx(-0.35)}
    with pytest.raises(ValueError, match="has no 'b'"):
        drl.start_end(rows, ["b"])


def test_per_method_orders_by_lam_and_averages_seeds():
    rows = [
        {"method": "frpo-0.2", "x": 1.0},
        {"method": "grpo", "x": 2.0},
        {"method": "grpo", "x": 4.0},
        {"method": "frpo-2", "x": 3.0},
    ]
    out = drl.per_method(rows, ["x"])
    assert [r["method"] for r in out] == ["grpo", "frpo-2", "frpo-0.2"]
    assert out[0]["x"] == pytest.approx(3.0) and out[0]["seeds"] == 2
    assert math.isnan(out[1]["x/lo"])  # one seed: no interval


def test_pareto_front_hand_example():
    pts = {"a": (1.0, 0.0), "b": (0.0, 1.0), "c": (0.5, 0.5), "d": (0.4, 0.4), "e": (1.0, -1.0)}
    # d is dominated by c; e by a (same x, lower y); a, b, c trade off
    assert drl.pareto_front(pts) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="not finite"):
        drl.pareto_front({"a": (float("nan"), 0.0)})


def test_lam_trend_signs():
    lams = [np.inf, 2.0, 0.5, 0.2]
    assert drl.lam_trend(lams, [0.1, 0.2, 0.3, 0.4]) == pytest.approx(
        -1.0
    )  # smaller lam keeps more
    assert drl.lam_trend(lams, [0.4, 0.3, 0.2, 0.1]) == pytest.approx(1.0)
    assert math.isnan(drl.lam_trend(lams[:2], [0.1, 0.2]))
    assert math.isnan(drl.lam_trend(lams, [0.3] * 4))
