"""frpo.analysis.downstream on hand-made trajectories (numbers worked out in comments)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from frpo.analysis import downstream as ds

# Two hand-made trajectories (per-token KL, kept reward):
#   a: y = 1 - k on [0, 0.4]                       points at k = 0, 0.2, 0.4
#   b: y = 1 - 3k on [0, 0.1], 0.7 - (k - 0.1) on [0.1, 0.3]   points at k = 0, 0.1, 0.3
KL_A, Y_A = np.array([0.0, 0.2, 0.4]), np.array([1.0, 0.8, 0.6])
KL_B, Y_B = np.array([0.0, 0.1, 0.3]), np.array([1.0, 0.7, 0.5])


def test_common_kl_is_the_largest_kl_every_trajectory_reaches():
    assert ds.common_kl([KL_A, KL_B]) == 0.3  # min(0.4, 0.3)
    assert ds.common_kl([[0.0, 0.5, 0.2], [0.0, 0.3]]) == 0.3  # the max, not the last point
    with pytest.raises(ValueError, match="at least one"):
        ds.common_kl([])
    with pytest.raises(ValueError, match="trajectory 1"):
        ds.common_kl([[0.1], [float("nan")]])


def test_matched_gap_by_hand():
    g = ds.matched_gap(KL_A, Y_A, KL_B, Y_B)
    assert g["kl_common"] == 0.3
    assert g["a"] == pytest.approx(0.7)  # 1 - 0.3
    assert g["b"] == pytest.approx(0.5)  # b's last point
    assert g["gap"] == pytest.approx(0.2)
    assert g["end_gap"] == pytest.approx(0.1)  # 0.6 - 0.5, at different KLs (0.4 vs 0.3)
    assert (g["end_kl_a"], g["end_kl_b"]) == (0.4, 0.3)
    # a - b = 2k on [0, 0.1] and 0.2 on [0.1, 0.3]; grid 0, 0.03, ..., 0.3:
    # gaps 0, .06, .12, .18 then seven times 0.2 -> 1.76 / 11 = 0.16
    assert g["grid_gap"] == pytest.approx(0.16)


def test_gap_is_antisymmetric_and_reads_non_monotone_kl_in_kl_order():
    g1, g2 = ds.matched_gap(KL_A, Y_A, KL_B, Y_B), ds.matched_gap(KL_B, Y_B, KL_A, Y_A)
    assert g1["gap"] == pytest.approx(-g2["gap"])
    # the same points listed out of KL order give the same reading
    perm = [2, 0, 1]
    g3 = ds.matched_gap(KL_A[perm], Y_A[perm], KL_B, Y_B)
    assert g3["gap"] == pytest.approx(g1["gap"])


def test_grid_gap_nan_without_overlap_and_bad_grid():
    assert math.isnan(ds.grid_mean_gap([0.5, 0.6], [1.0, 1.0], [0.0, 0.1], [1.0, 1.0]))
    with pytest.raises(ValueError, match="n_grid"):
        ds.grid_mean_gap(KL_A, Y_A, KL_B, Y_B, n_grid=1)


def test_paired_gaps_over_two_seeds():
    # seed 0: gap 0.2 (above); seed 1: a shifted up by 0.2 -> gap 0.4.
    out = ds.paired_gaps([(KL_A, Y_A, KL_B, Y_B), (KL_A, Y_A + 0.2, KL_B, Y_B)])
    mean, lo, hi = out["gap"]
    assert mean == pytest.approx(0.3)
    # sd = 0.1414, se = 0.1, t_{0.975, 1} = 12.7062
    assert hi - mean == pytest.approx(12.7062 * 0.1, rel=1e-4)
    assert lo == pytest.approx(2 * mean - hi)
    assert out["end_gap"][0] == pytest.approx(0.2)  # (0.1 + 0.3) / 2
    assert out["kl_common"] == [0.3, 0.3]
    one = ds.paired_gaps([(KL_A, Y_A, KL_B, Y_B)])
    assert one["gap"][0] == pytest.approx(0.2) and math.isnan(one["gap"][1])
    with pytest.raises(ValueError):
        ds.paired_gaps([])


def test_kept_at_common_kl_and_best_lam():
    curves = {
        # dataset d, seed 0: common KL = min(0.4, 0.3, 0.6) = 0.3
        ("grpo", "d", 0): (KL_B, Y_B),  # 0.5 at 0.3
        ("frpo-1", "d", 0): (KL_A, Y_A),  # 0.7 at 0.3
        ("frpo-0.2", "d", 0): ([0.0, 0.6], [1.0, 0.4]),  # 1 - k -> 0.7 at 0.3 (tie with lam 1)
        # dataset e, seed 0: common KL = 0.2
        ("grpo", "e", 0): ([0.0, 0.2], [0.5, 0.5]),
        ("frpo-1", "e", 0): ([0.0, 0.4], [0.5, 0.1]),  # 0.3 at 0.2
        ("frpo-0.2", "e", 0): ([0.0, 0.2], [0.3, 0.3]),
    }
    rows = ds.kept_at_common_kl(curves)
    kept = {(r["method"], r["dataset"]): r["kept"] for r in rows}
    assert {r["kl_common"] for r in rows if r["dataset"] == "d"} == {0.3}
    assert {r["kl_common"] for r in rows if r["dataset"] == "e"} == {0.2}
    assert kept[("frpo-0.2", "d")] == pytest.approx(0.7)
    assert kept[("frpo-1", "e")] == pytest.approx(0.3)
    best, means = ds.best_lam(rows)
    # means: inf (0.5 + 0.5) / 2 = 0.5; 1: (0.7 + 0.3) / 2 = 0.5; 0.2: (0.7 + 0.3) / 2 = 0.5
    assert means == pytest.approx({0.2: 0.5, 1.0: 0.5, math.inf: 0.5})
    assert best == 0.2  # ties go to the smaller lam
    # GRPO alone on top: inf
    rows2 = [dict(r, kept=r["kept"] + (1.0 if r["method"] == "grpo" else 0.0)) for r in rows]
    assert ds.best_lam(rows2)[0] == math.inf
    with pytest.raises(ValueError, match="nan"):
        ds.best_lam([{"lam": 1.0, "kept": float("nan")}])


def test_taylor_target_and_kl_range():
    lo, hi = ds.taylor_target(0.07, 0.02, 0.3)  # the paper's Fig. 3 right
    assert lo == pytest.approx(0.07 / math.sqrt(0.6))  # 0.0904
    assert hi == pytest.approx(0.35)
    with pytest.raises(ValueError, match="rho_lo"):
        ds.taylor_target(0.07, 0.3, 0.02)
    assert ds.kl_range([0.3, 0.05, 0.1]) == (0.05, 0.3)
    assert ds.kl_range([0.1, -0.001, 0.0, 0.2]) == (0.1, 0.2)  # noise at 0 left out
    with pytest.raises(ValueError, match="no run reached"):
        ds.kl_range([0.0, -0.001])


def test_read_trajectory_and_metrics(tmp_path):
    rows = [{"step": 5, "frpo/track/kl_start": 0.1}, {"step": 0, "frpo/track/kl_start": 0.0}]
    (tmp_path / "trajectory.json").write_text(json.dumps(rows))
    got = ds.read_trajectory(tmp_path)
    assert [r["step"] for r in got] == [0, 5]
    assert ds.column(got, ds.TRACK_KL).tolist() == [0.0, 0.1]
    with pytest.raises(ValueError, match="step 0"):
        ds.column(got, ds.TRACK_SAFETY)
    with pytest.raises(ValueError, match="no trajectory.json"):
        ds.read_trajectory(tmp_path / "nope")
    (tmp_path / "metrics.json").write_text(json.dumps({"stage1_std": 0.25}))
    assert ds.read_metric(tmp_path, "stage1_std") == 0.25
    with pytest.raises(ValueError, match="has no 'x'"):
        ds.read_metric(tmp_path, "x")


def test_trajectory_frame_and_mean_length(tmp_path):
    runs = {}
    for m, kl in (("grpo", 0.2), ("frpo-0.2", 0.1)):
        d = tmp_path / m
        d.mkdir()
        rows = [{"step": 0, ds.TRACK_KL: 0.0}, {"step": 4, ds.TRACK_KL: kl}]
        (d / "trajectory.json").write_text(json.dumps(rows))
        (d / "metrics.json").write_text(json.dumps({ds.MEAN_LENGTH: 8.0 if m == "grpo" else 10.0}))
        runs[(m, "gsm8k", 0)] = d
    df = ds.trajectory_frame(runs)
    assert len(df) == 4
    assert df.loc[df.method == "grpo", ds.TRACK_KL].tolist() == [0.0, 0.2]
    assert set(df.lam) == {math.inf, 0.2}
    with pytest.raises(ValueError, match="does not match"):
        ds.trajectory_frame({("grpo",): tmp_path / "grpo"})
    assert ds.mean_response_length(list(runs.values())) == 9.0


def test_metrics_frame(tmp_path):
    runs = {}
    for i, m in enumerate(("grpo", "frpo-0.2")):
        d = tmp_path / m
        d.mkdir()
        (d / "metrics.json").write_text(json.dumps({ds.TASK_SCORE["gsm8k"]: 0.25 * i}))
        runs[(m, 0)] = d
    df = ds.metrics_frame(runs, ("method", "seed"))
    assert df.set_index("method")[ds.TASK_SCORE["gsm8k"]].to_dict() == {
        "grpo": 0.0,
        "frpo-0.2": 0.25,
    }
    with pytest.raises(ValueError, match="does not match"):
        ds.metrics_frame(runs, ("method",))


def test_best_lam_interval_bootstraps_over_seeds():
    from frpo.analysis.downstream import best_lam_interval

    def rows(kept_by_seed):
        return [
            {"lam": lam, "seed": s, "dataset": "alpaca", "kept": k}
            for s, by_lam in kept_by_seed.items()
            for lam, k in by_lam.items()
        ]

    # lam 0.2 keeps most in every seed: every redraw picks it
    same = rows({s: {0.2: 0.8, 1.0: 0.6, math.inf: 0.5} for s in range(4)})
    assert best_lam_interval(same) == (0.2, 0.2)
    # seeds disagree (two favour 0.2, two GRPO): redraws pick either, the interval holds both
    split = rows(
        {0: {0.2: 0.9, math.inf: 0.5}, 1: {0.2: 0.9, math.inf: 0.5}}
        | {2: {0.2: 0.4, math.inf: 0.6}, 3: {0.2: 0.4, math.inf: 0.6}}
    )
    lo, hi = best_lam_interval(split, n_boot=500, seed=1)
    assert (lo, hi) == (0.2, math.inf)
    assert best_lam_interval(split, n_boot=500, seed=1) == (lo, hi)  # fixed seed: reproducible
    with pytest.raises(ValueError, match="at least one row"):
        best_lam_interval([])
