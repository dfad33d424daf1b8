"""frpo.analysis.sweep: settings grid, Wilson/Welch intervals, robust bound, reward matrix."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from datasets import Dataset
from scipy import stats

from frpo.analysis import sweep as sw

LRS = {"full": [1, 2, 3, 4, 5, 6], "lora": [10, 20, 30, 40, 50, 60]}


def test_all_settings_is_the_papers_72_grid():
    s = sw.all_settings(LRS)
    assert len(s) == 72  # 3 modes x 6 lrs x 2 epochs x 2 datasets
    keys = {(x["mode"], x["lr_index"], x["epochs"], x["dataset"]) for x in s}
    assert len(keys) == 72
    assert {x["lr"] for x in s if x["mode"] == "full"} == {1.0, 2.0, 3.0, 4.0, 5.0, 6.0}
    assert {x["lr"] for x in s if x["mode"] == "lora32"} == {10.0, 20.0, 30.0, 40.0, 50.0, 60.0}
    assert {x["lora_rank"] for x in s} == {0, 16, 32}
    with pytest.raises(ValueError, match="'lora'"):
        sw.all_settings({"full": LRS["full"]})
    with pytest.raises(ValueError, match="6 positive"):
        sw.all_settings({"full": [1, 2], "lora": LRS["lora"]})


def test_sample_settings_is_seeded_and_distinct():
    s = sw.all_settings(LRS)
    a, b = sw.sample_settings(s, 48, seed=0), sw.sample_settings(s, 48, seed=0)
    assert a == b
    assert len({json.dumps(x, sort_keys=True) for x in a}) == 48
    assert sw.sample_settings(s, 48, seed=1) != a
    assert len(sw.sample_settings(s, 72, seed=0)) == 72
    assert sw.sample_settings(s, 20, seed=0) == a[:20]  # nested: a smaller draw is a prefix
    with pytest.raises(ValueError, match="n_settings"):
        sw.sample_settings(s, 73, seed=0)


def test_sft_overrides():
    assert sw.sft_overrides({"lora_rank": 0, "lr": 1e-4, "epochs": 2}) == {
        "lr": 1e-4,
        "epochs": 2.0,
        "max_steps": -1,
        "full": True,
        "lora_rank": 0,
        "lora_alpha": 0,
    }
    o = sw.sft_overrides({"lora_rank": 16, "lr": 1e-3, "epochs": 1})
    assert (o["full"], o["lora_rank"], o["lora_alpha"]) == (False, 16, 16)


def test_wilson_interval_by_hand():
    # 5 / 10: z = 1.95996, centre = 0.5 + z^2/20 = 0.69207, half = z sqrt(0.025 + z^2/400)
    # = 0.364594, den = 1 + z^2/10 = 1.38415 -> [0.23659, 0.76341]
    p, lo, hi = sw.wilson_interval(5, 10)
    assert p == 0.5
    assert (lo, hi) == pytest.approx((0.23659, 0.76341), abs=2e-5)
    # all successes: the upper end is exactly 1, the lower n / (n + z^2)
    p, lo, hi = sw.wilson_interval(4, 4)
    assert p == 1.0 and hi == pytest.approx(1.0)
    z2 = stats.norm.ppf(0.975) ** 2
    assert lo == pytest.approx(4 / (4 + z2))
    with pytest.raises(ValueError):
        sw.wilson_interval(3, 2)
    with pytest.raises(ValueError):
        sw.wilson_interval(0.5, 2)


def test_coverage_counts_the_threshold_as_inside():
    c = sw.coverage([0.1, 0.3, 0.31, 0.05], threshold=0.3)
    assert (c["k"], c["n"], c["share"]) == (3, 4, 0.75)
    assert c["lo"] < 0.75 < c["hi"]
    with pytest.raises(ValueError):
        sw.coverage([])


def test_welch_difference_matches_scipy_and_edges():
    a, b = [0.1, 0.4, 0.2], [0.9, 0.7, 0.8, 0.95]
    diff, lo, hi = sw.welch_difference(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert diff == pytest.approx(np.mean(a) - np.mean(b))
    assert (lo, hi) == pytest.approx((ref.low, ref.high))
    assert all(math.isnan(v) for v in sw.welch_difference([], [1.0, 2.0]))
    d, lo, hi = sw.welch_difference([1.0], [0.0, 2.0])
    assert d == 0.0 and math.isnan(lo) and math.isnan(hi)


def test_collapse_splits_at_the_threshold():
    kls = [0.1, 0.2, 0.5, 0.6, 0.3]
    helpf = [0.8, 0.9, 0.1, 0.3, 0.7]
    c = sw.collapse(helpf, kls, threshold=0.3)
    assert (c["n_beyond"], c["n_within"]) == (2, 3)
    assert c["diff"] == pytest.approx(0.2 - 0.8)  # beyond (0.1, 0.3) minus within (.8, .9, .7)
    none_beyond = sw.collapse([0.5, 0.6], [0.1, 0.2])
    assert math.isnan(none_beyond["diff"]) and none_beyond["n_beyond"] == 0
    with pytest.raises(ValueError):
        sw.collapse([0.1], [0.1, 0.2])


def test_whole_response_kl_and_predicted_robust_by_hand():
    assert sw.whole_response_kl([0.1, 0.2], 8.0).tolist() == pytest.approx([0.8, 1.6])
    with pytest.raises(ValueError):
        sw.whole_response_kl(0.1, 0.0)
    # one prompt, rewards {0, 1} uniform: Q = (q, 1 - q) has E r = 1 - q and
    # KL(Q || U) = log 2 - H(q). At q = 0.8, rho = log 2 - H(0.8) = 0.192745 -> value 0.2.
    h = -(0.8 * math.log(0.8) + 0.2 * math.log(0.2))
    rho = math.log(2) - h
    out = sw.predicted_robust([[0.0, 1.0]], [0.0, rho, -1e-4, 10.0])
    assert out[0] == pytest.approx(0.5)  # rho = 0: the mean
    assert out[1] == pytest.approx(0.2, abs=1e-9)
    assert out[2] == pytest.approx(0.5)  # noise below 0 read as 0
    assert out[3] == pytest.approx(0.0)  # the ball holds the all-on-minimum policy
    with pytest.raises(ValueError, match="n_prompts"):
        sw.predicted_robust([0.0, 1.0], [0.1])


class _Backend:
    """Two held-out prompts; the reward is the answer's length in words (plus a constant)."""

    def dataset(self, task, split, n):
        assert split == "heldout"
        rows = [{"prompt": [{"role": "user", "content": f"q{i}"}], "bonus": i} for i in range(3)]
        return Dataset.from_list(rows[:n])

    def reward_funcs(self, task):
        def words(prompts, completions, bonus=None, **kw):
            return [
                len(c[0]["content"].split()) + b for c, b in zip(completions, bonus, strict=True)
            ]

        def half(prompts, completions, **kw):
            return [0.5] * len(completions)

        return [words, half]


def test_reward_matrix_scores_the_saved_samples(tmp_path):
    rows = [
        {"task": "safety", "prompt": [{"role": "user", "content": "q0"}], "sampled": ["a", "a b"]},
        {"task": "safety", "prompt": [{"role": "user", "content": "q1"}], "sampled": ["", "a b c"]},
        {"task": "gsm8k", "prompt": "other", "sampled": ["x"]},
    ]
    (tmp_path / "completions.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    m = sw.reward_matrix(tmp_path, _Backend(), "safety")
    # words + bonus (prompt index) + 0.5
    assert m.tolist() == [[1.5, 2.5], [1.5, 4.5]]
    with pytest.raises(ValueError, match="no completions of task"):
        sw.reward_matrix(tmp_path, _Backend(), "alpaca")
    rows[1]["prompt"] = [{"role": "user", "content": "zz"}]
    (tmp_path / "completions.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(ValueError, match="prompts differ"):
        sw.reward_matrix(tmp_path, _Backend(), "safety")


def test_bound_by_kl_regions():
    kept = [0.5, 0.7, 0.6, 0.2, 0.4]
    pred = [0.6, 0.5, 0.5, 0.3, 0.1]
    kls = [0.0, 0.1, 0.3, 1.0, 5.0]  # regions: (-inf, .02] (.02, .3] (.3, inf)
    rows = sw.bound_by_kl(kept, pred, kls)
    assert [(r["n"], r["holds"]) for r in rows] == [(1, 0), (2, 2), (2, 1)]
    assert rows[0]["min_margin"] == pytest.approx(-0.1)
    assert rows[1]["mean_margin"] == pytest.approx(0.15)  # (0.2 + 0.1) / 2
    assert rows[2]["min_margin"] == pytest.approx(-0.1)
    empty = sw.bound_by_kl([0.5], [0.4], [0.1], edges=(0.5, 1.0))
    assert empty[1]["n"] == 0 and math.isnan(empty[1]["min_margin"])
    with pytest.raises(ValueError, match="increase"):
        sw.bound_by_kl([0.5], [0.4], [0.1], edges=(0.3, 0.02))
    with pytest.raises(ValueError, match="one length"):
        sw.bound_by_kl([0.5, 0.1], [0.4], [0.1])
