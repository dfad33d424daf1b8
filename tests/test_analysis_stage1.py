"""frpo.analysis.stage1 on small hand-made run directories (numbers worked out in comments)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml

from frpo.analysis import stage1 as s1


def _run(tmp_path, name, rewards, final, extra=None):
    """A fake finished RL run: one curves row per step (plus TRL's summary row) and metrics."""
    d = tmp_path / name
    d.mkdir()
    rows = []
    for step, r in enumerate(rewards, start=1):
        row = {"step": step, "reward": r, "reward_std": 0.5 - 0.1 * step, "entropy": 1.0 / step}
        row.update((extra or {}).get(step, {}))
        rows.append(row)
    rows.append({"step": len(rewards), "train_runtime": 3.0, "train_loss": 0.1})
    (d / "curves.json").write_text(json.dumps(rows))
    (d / "metrics.json").write_text(json.dumps(final))
    return d


def test_read_curves_drops_summary_row(tmp_path):
    d = _run(tmp_path, "a", [0.1, 0.2, 0.4], {"x": 1})
    c = s1.read_curves(d)
    assert list(c.index) == [1, 2, 3]
    assert "train_runtime" not in c.columns
    assert c.loc[3, "reward"] == 0.4
    with pytest.raises(ValueError, match="no curves.json"):
        s1.read_curves(tmp_path)


def _four_runs(tmp_path):
    # grpo seeds 0, 1: final rewards 0.8, 0.6; frpo-0.5 seeds 0, 1: 0.7, 0.7.
    runs = {
        ("grpo", 0): _run(tmp_path, "g0", [0.1, 0.3], {"r": 0.8, "kl": 0.1}),
        ("grpo", 1): _run(tmp_path, "g1", [0.3, 0.5], {"r": 0.6, "kl": 0.12}),
        ("frpo-0.5", 0): _run(tmp_path, "f0", [0.2, 0.2], {"r": 0.7, "kl": 0.09}),
        ("frpo-0.5", 1): _run(tmp_path, "f1", [0.4, 0.6], {"r": 0.7, "kl": 0.11}),
    }
    return s1.collect(runs)


def test_collect_long_tables(tmp_path):
    curves, finals = _four_runs(tmp_path)
    assert len(curves) == 8 and set(curves.columns) >= {"method", "seed", "step", "reward"}
    assert len(finals) == 4
    row = finals[(finals["method"] == "frpo-0.5") & (finals["seed"] == 1)].iloc[0]
    assert row["lam"] == 0.5 and row["r"] == 0.7 and row["kl"] == 0.11
    assert math.isinf(finals[finals["method"] == "grpo"]["lam"].iloc[0])


def test_tail_mean_and_per_method_mean(tmp_path):
    curves, _ = _four_runs(tmp_path)
    # reward_std = 0.5 - 0.1 * step: steps 1, 2 -> 0.4, 0.3; last 1 -> 0.3, last 2 -> 0.35.
    t1 = s1.tail_mean(curves, "reward_std", 1)
    assert np.allclose(t1["value"], 0.3)
    t2 = s1.tail_mean(curves, "reward_std", 2)
    assert np.allclose(t2["value"], 0.35)
    # reward, last step: grpo 0.3, 0.5 -> 0.4; frpo 0.2, 0.6 -> 0.4.
    means = s1.per_method_mean(s1.tail_mean(curves, "reward", 1))
    assert means == pytest.approx({"grpo": 0.4, "frpo-0.5": 0.4})
    with pytest.raises(ValueError, match="last must be"):
        s1.tail_mean(curves, "reward", 0)


def test_tail_mean_skips_steps_without_the_column(tmp_path):
    # frpo/ess logged at steps 1 and 3 only: the tail of 1 is step 3's value.
    d = _run(tmp_path, "a", [0.0, 0.0, 0.0], {}, extra={1: {"frpo/ess": 2.0}, 3: {"frpo/ess": 6.0}})
    curves, _ = s1.collect({("frpo-1", 0): d})
    assert s1.tail_mean(curves, "frpo/ess", 1)["value"].tolist() == [6.0]
    assert s1.tail_mean(curves, "frpo/ess", 5)["value"].tolist() == [4.0]


def test_paired_vs_and_worst(tmp_path):
    _, finals = _four_runs(tmp_path)
    diffs = s1.paired_vs(finals, "r", "grpo")
    row = diffs.iloc[0]
    # per seed: 0.7 - 0.8 = -0.1, 0.7 - 0.6 = 0.1 -> mean 0, sd 0.1414, half 12.706 * 0.1.
    assert row["method"] == "frpo-0.5" and row["n"] == 2
    assert row["diff"] == pytest.approx(0.0, abs=1e-12)
    assert row["hi"] == pytest.approx(1.27062047, rel=1e-6)
    assert s1.worst(diffs)["method"] == "frpo-0.5"


def test_paired_vs_pairs_only_shared_seeds_and_orders_by_lam():
    finals = pd.DataFrame(
        {
            "method": ["grpo", "grpo", "frpo-1", "frpo-0.1", "frpo-0.1"],
            "seed": [0, 1, 1, 0, 1],
            "y": [1.0, 2.0, 2.5, 0.0, 1.0],
        }
    )
    diffs = s1.paired_vs(finals, "y")
    assert diffs["method"].tolist() == ["frpo-1", "frpo-0.1"]  # decreasing lam
    one = diffs.iloc[0]  # only seed 1 shared: 2.5 - 2.0, no interval from one seed
    assert one["n"] == 1 and one["diff"] == pytest.approx(0.5) and math.isnan(one["lo"])
    assert diffs.iloc[1]["diff"] == pytest.approx(-1.0)  # (0 - 1), (1 - 2)
    assert s1.worst(diffs)["method"] == "frpo-0.1"
    with pytest.raises(ValueError, match="no rows of the reference"):
        s1.paired_vs(finals, "y", reference="sam")
    with pytest.raises(ValueError, match="share no seed"):
        s1.paired_vs(finals.iloc[[0, 2]].copy(), "y", methods=["frpo-1"])  # grpo s0, frpo-1 s1


def test_ratio_interval():
    # ratios 2, 4 -> mean 3, sd 1.414, half = 12.706 * 1.414 / 1.414 = 12.706.
    m, lo, hi = s1.ratio_interval([2.0, 8.0], [1.0, 2.0])
    assert m == pytest.approx(3.0) and hi - m == pytest.approx(12.7062047, rel=1e-6)
    with pytest.raises(ValueError, match="denominators"):
        s1.ratio_interval([1.0], [0.0])
    with pytest.raises(ValueError, match="equal 1-D shapes"):
        s1.ratio_interval([1.0, 2.0], [1.0])


def test_betas_literal_order_and_rounding():
    table = {"frpo-0.1": 0.001234567, "frpo-5": 0.05, "grpo": 0.04}
    text = s1.betas_literal(table, digits=3)
    assert text == '{"grpo": 0.04, "frpo-5": 0.05, "frpo-0.1": 0.00123}'
    exact = s1.betas_literal({**table, "frpo-1": 0.45988489632882196})
    assert exact == (
        '{"grpo": 0.04, "frpo-5": 0.05, "frpo-1": 0.45988489632882196, "frpo-0.1": 0.001234567}'
    )
    assert yaml.safe_load(exact)["frpo-1"] == 0.45988489632882196  # round-trips exactly


@pytest.mark.slow
def test_base_reference_is_deterministic_and_bounded():
    """Slow (builds the smoke world's base model once, ~20 s): the base numbers are the held-out
    estimator on pi_ref, deterministic (fixed sampling seed) and a mean of rewards in [0, 1]."""
    import torch

    torch.set_num_threads(1)
    world = {"kind": "toy", "size": "smoke", "seed": 0}
    stage1 = {"tasks": ["safety"], "n_eval": 8, "max_completion_length": 8}
    a = s1.base_reference(world, stage1)
    assert set(a) == {"frpo/base/reward/safety", "frpo/base/reward/safety/toy_safety_reward"}
    assert 0.0 <= a["frpo/base/reward/safety"] <= 1.0
    assert s1.base_reference(world, stage1) == a
    with pytest.raises(ValueError, match="lacks"):
        s1.base_reference(world, {"tasks": ["safety"]})
