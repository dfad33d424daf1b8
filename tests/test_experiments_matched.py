"""frpo.experiments.matched on hand-made tracked runs (numbers worked out in comments)."""

from __future__ import annotations

import json

import pytest

from frpo.analysis.downstream import TRACK_KL, TRACK_SAFETY
from frpo.experiments.matched import compare, seed_rows

T975_1 = 12.706204736174707  # Student t, 97.5% quantile, 1 degree of freedom


def _run(tmp_path, name, kls, ys):
    d = tmp_path / name
    d.mkdir()
    rows = [
        {"step": i, TRACK_KL: k, TRACK_SAFETY: y}
        for i, (k, y) in enumerate(zip(kls, ys, strict=True))
    ]
    (d / "trajectory.json").write_text(json.dumps(rows[::-1]))  # any order: read by step
    return d


def test_compare_two_seeds_by_hand(tmp_path):
    # seed 0: a = 1 - k at k 0, .2, .4; b = 1, .7, .5 at k 0, .1, .3 -> common KL 0.3,
    #   a(0.3) = 0.7, b(0.3) = 0.5: gap 0.2; end points 0.6 - 0.5 = 0.1
    # seed 1: a = 1, .9 at k 0, .1; b = 1, .6 at k 0, .2 -> common KL 0.1,
    #   a(0.1) = 0.9, b(0.1) = 0.8: gap 0.1; end points 0.9 - 0.6 = 0.3
    a = [
        _run(tmp_path, "a0", [0, 0.2, 0.4], [1, 0.8, 0.6]),
        _run(tmp_path, "a1", [0, 0.1], [1, 0.9]),
    ]
    b = [
        _run(tmp_path, "b0", [0, 0.1, 0.3], [1, 0.7, 0.5]),
        _run(tmp_path, "b1", [0, 0.2], [1, 0.6]),
    ]
    res = compare(a, b)
    assert res["kl_common"] == pytest.approx([0.3, 0.1])
    mean, lo, hi = res["gap"]
    # gaps 0.2, 0.1: mean 0.15, sd 0.0707, half-width t * sd / sqrt(2) = t * 0.05
    assert mean == pytest.approx(0.15)
    assert hi - mean == pytest.approx(T975_1 * 0.05) and mean - lo == pytest.approx(T975_1 * 0.05)
    assert res["end_gap"][0] == pytest.approx(0.2)
    rows = seed_rows(res, [0, 1], ("FRPO", "GRPO"), tags={"dataset": "alpaca"})
    assert list(rows[0]) == [
        "dataset",
        "seed",
        "common KL",
        "FRPO",
        "GRPO",
        "gap",
        "end gap",
        "end KL FRPO",
        "end KL GRPO",
    ]
    assert rows[1]["seed"] == 1 and rows[1]["FRPO"] == pytest.approx(0.9)
    assert rows[0]["end KL GRPO"] == pytest.approx(0.3)
    only = seed_rows(res, [0, 1], ("x", "y"), ("gap", "grid gap"))
    assert list(only[0]) == ["seed", "gap", "grid gap"]
    with pytest.raises(ValueError, match="unknown column"):
        seed_rows(res, [0, 1], ("x", "y"), ("kept",))


def test_compare_one_seed_has_no_interval_and_checks_lengths(tmp_path):
    a = [_run(tmp_path, "a", [0, 0.2], [1, 0.8])]
    b = [_run(tmp_path, "b", [0, 0.2], [1, 0.9])]
    mean, lo, hi = compare(a, b)["gap"]
    assert mean == pytest.approx(-0.1) and lo != lo and hi != hi  # nan: one seed
    with pytest.raises(ValueError, match="equal, non-zero"):
        compare(a, a + b)
