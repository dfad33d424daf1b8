"""The notebooks' evidence, from frpo.experiments, on hand-made run directories.

Each experiment object is built from constructed runs (what the runners write: ``curves.json``,
``metrics.json``, ``trajectory.json``) instead of trained ones; the claim values its ``record``
writes are worked out by hand in the comments.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from frpo.analysis import downstream_rl as drl
from frpo.analysis import stage1 as s1
from frpo.analysis.downstream import (
    MEAN_LENGTH,
    TASK_SCORE,
    TRACK_KL,
    TRACK_KL_REF,
    TRACK_SAFETY,
    read_trajectory,
)
from frpo.claims import load_evidence
from frpo.experiments import (
    baseline_ablation,
    baselines,
    downstream_rl,
    downstream_sft,
    finetuning_sweep,
    math_code,
    rlhf_safety,
)
from frpo.experiments.downstream_rl import HELP
from frpo.experiments.specs import Stage1Block

T975_1 = 12.706204736174707  # Student t, 97.5%, 1 degree of freedom: half-width t * sd / sqrt(2)


def _write(d, name, obj):
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(json.dumps(obj))
    return d


def _rl_run(d, rewards, entropies, final):
    rows = [
        {"step": i + 1, "reward": r, "reward_std": 0.1 * (i + 1), "entropy": e, "kl": 0.01}
        for i, (r, e) in enumerate(zip(rewards, entropies, strict=True))
    ]
    _write(d, "curves.json", rows + [{"step": len(rows), "train_runtime": 1.0}])
    return _write(d, "metrics.json", final)


def _trajectory(d, kls, ys, extra=None):
    rows = [
        {"step": i, TRACK_KL: k, TRACK_KL_REF: 2 * k, TRACK_SAFETY: y, **(extra or {})}
        for i, (k, y) in enumerate(zip(kls, ys, strict=True))
    ]
    return _write(d, "trajectory.json", rows)


def _evidence(tmp_path):
    return load_evidence(tmp_path)


def test_c1_is_lam_mains_paired_difference_with_the_worst_lam_beside(tmp_path):
    # final held-out rewards: grpo 0.8, 0.6; frpo-1 0.7, 0.7 (diffs -0.1, +0.1: mean 0);
    # frpo-0.5 0.6, 0.5 (diffs -0.2, -0.1: mean -0.15, sd 0.0707) -> worst lam 0.5;
    # lam_main 1: C1 is frpo-1's difference (mean 0, sd 0.1414), the worst lam's beside it
    finals = {"grpo": [0.8, 0.6], "frpo-1": [0.7, 0.7], "frpo-0.5": [0.6, 0.5]}
    runs = {
        (m, s): _rl_run(
            tmp_path / "rl" / f"{m}-{s}",
            [0.1, 0.2, 0.3],
            [1.0, 0.9, 0.8],
            {"frpo/final/reward/safety": r, "frpo/final/kl_ref": 0.03 + 0.01 * s},
        )
        for m, rs in finals.items()
        for s, r in enumerate(rs)
    }
    curves, fin = s1.collect(runs)
    exp = rlhf_safety.RLHFSafety(
        methods=list(finals),
        seeds=[0, 1],
        main_seeds=[0, 1],
        main="frpo-1",
        betas={"grpo": 0.02, "frpo-1": 0.1, "frpo-0.5": 0.2},
        tail=2,
        reward_col="frpo/final/reward/safety",
        runs=runs,
        curves=curves,
        finals=fin,
        base_reward=0.5,
        diffs=s1.paired_vs(fin, "frpo/final/reward/safety", "grpo", ["frpo-1", "frpo-0.5"]),
    )
    out = tmp_path / "nb" / "03_rlhf_safety"
    out.mkdir(parents=True)
    metrics = exp.record(out)
    ev = _evidence(tmp_path / "nb")["C1"]
    assert ev.value == pytest.approx(0.0, abs=1e-12) and ev.seeds == 2
    assert ev.interval == pytest.approx((-T975_1 * 0.1, T975_1 * 0.1))
    assert ev.detail.startswith("held-out safety reward, frpo-1 minus GRPO")
    assert "worst lam of the sweep 0.5" in ev.detail and "[0.030, 0.040]" in ev.detail
    worst = ev.secondary
    assert worst["value"] == pytest.approx(-0.15) and "0.5" in worst["what"]
    assert worst["interval"] == pytest.approx([-0.15 - T975_1 * 0.05, -0.15 + T975_1 * 0.05])
    assert metrics["c1_worst_lam"] == 0.5
    # reward_std over the last 2 steps: 0.2, 0.3 -> 0.25 for every run
    assert metrics["grpo_reward_std"] == pytest.approx(0.25)
    assert json.loads((out / "metrics.json").read_text())["c1_paired_diff"]["frpo-1"][
        0
    ] == pytest.approx(0)
    check = exp.check_table()
    assert check.iloc[0, 0] == 0.5 and check.iloc[1, 0] == pytest.approx(0.7)


def test_c5_entropy_ratio_and_reward_gap(tmp_path):
    # tail 2 entropies: with 1.0, 1.0 -> 1.0 (seed 0), 2.0 (seed 1); without 1.5 (s0), 5.0 (s1)
    # ratios 1.5, 2.5 -> mean 2.0, sd 0.707; held-out rewards: with 0.8, 0.7; without 0.5, 0.6
    ent = {("frpo-0.5", 0): [1.0, 1.0], ("frpo-0.5", 1): [2.0, 2.0]}
    ent |= {("frpo-0.5-nobase", 0): [1.0, 2.0], ("frpo-0.5-nobase", 1): [4.0, 6.0]}
    reward = {("frpo-0.5", 0): 0.8, ("frpo-0.5", 1): 0.7}
    reward |= {("frpo-0.5-nobase", 0): 0.5, ("frpo-0.5-nobase", 1): 0.6}
    runs = {
        k: _rl_run(
            tmp_path / "rl" / f"{k[0]}-{k[1]}",
            [0.1, 0.2],
            e,
            {"frpo/final/reward/safety": reward[k], "frpo/final/kl_ref": 0.05},
        )
        for k, e in ent.items()
    }
    curves, finals = s1.collect(runs)
    exp = baseline_ablation.BaselineAblation(
        lam=0.5,
        seeds=[0, 1],
        tail=2,
        with_b="frpo-0.5",
        without_b="frpo-0.5-nobase",
        betas={"frpo-0.5": 0.2, "frpo-0.5-nobase": 0.2},
        reward_col="frpo/final/reward/safety",
        curves=curves,
        finals=finals,
    )
    out = tmp_path / "nb" / "04"
    out.mkdir(parents=True)
    exp.record(out)
    ev = _evidence(tmp_path / "nb")
    assert ev["C5.entropy"].value == pytest.approx(2.0)
    assert ev["C5.entropy"].interval[1] == pytest.approx(2.0 + T975_1 * 0.5)
    assert ev["C5.reward"].value == pytest.approx(0.2)  # (0.3 + 0.1) / 2
    assert exp.table().loc["frpo-0.5-nobase", "final entropy"] == pytest.approx(3.25)


def _downstream_sft(tmp_path):
    """GRPO and FRPO(0.2), two datasets, two seeds; every SFT run tracked at KL 0, 0.1, 0.2.

    Kept safety at KL 0.2: GRPO 0.6 everywhere; FRPO 0.8 (seed 0) and 0.7 (seed 1).
    """
    root = tmp_path / "runs"
    y_frpo = {0: [1.0, 0.9, 0.8], 1: [1.0, 0.85, 0.7]}
    sft_dirs, after, before, parents = {}, {}, {}, {}
    score = TASK_SCORE["gsm8k"]
    for m in ("grpo", "frpo-0.2"):
        for s in (0, 1):
            parents[m, s] = _write(root / "rl" / f"{m}{s}", "metrics.json", {MEAN_LENGTH: 5.0})
            before[m, s] = _write(root / "eval" / f"b{m}{s}", "metrics.json", {score: 0.1})
            for d in ("alpaca", "gsm8k"):
                ys = [1.0, 0.8, 0.6] if m == "grpo" else y_frpo[s]
                sft_dirs[m, d, s] = _trajectory(root / "sft" / f"{m}{d}{s}", [0, 0.1, 0.2], ys)
                # C3: gsm8k score after gsm8k SFT: FRPO 0.5, 0.4; GRPO 0.3, 0.3 -> 0.15
                value = {("frpo-0.2", 0): 0.5, ("frpo-0.2", 1): 0.4}.get((m, s), 0.3)
                after[m, d, s] = _write(
                    root / "eval" / f"a{m}{d}{s}", "metrics.json", {score: value}
                )
    high = {("grpo", 0): sft_dirs["grpo", "alpaca", 0]}
    return downstream_sft.DownstreamSFT(
        methods=["grpo", "frpo-0.2"],
        main="frpo-0.2",
        lam_main=0.2,
        seeds=[0, 1],
        main_seeds=[0, 1],
        datasets=["alpaca", "gsm8k"],
        high_dataset="alpaca",
        parent_dirs=parents,
        sft_dirs=sft_dirs,
        high_dirs=high,
        before_dirs=before,
        after_dirs=after,
        high_eval_dirs={("grpo", 0): after["grpo", "alpaca", 0]},
        stage1_std=0.2,
        traj=pd.DataFrame(),
    )


def test_c2_c3_c4_of_the_downstream_sft(tmp_path):
    exp = _downstream_sft(tmp_path)
    out = tmp_path / "nb" / "05"
    out.mkdir(parents=True)
    metrics = exp.record(out, 0.0)
    ev = _evidence(tmp_path / "nb")
    # C2: gaps 0.2, 0.1 at the common KL 0.2 -> mean 0.15, half-width t * 0.05
    for d in ("alpaca", "gsm8k"):
        assert ev[f"C2.{d}"].value == pytest.approx(0.15)
        assert ev[f"C2.{d}"].interval[0] == pytest.approx(0.15 - T975_1 * 0.05)
        assert "(mean 0.200)" in ev[f"C2.{d}"].detail
    assert ev["C3"].value == pytest.approx(0.15)
    # C4: kept at KL 0.2, mean over datasets and seeds: lam 0.2 -> 0.75, GRPO (inf) -> 0.6;
    # target lam* = 0.2 / sqrt(2 * 0.2) = 0.316 (every run ends at KL 0.2); lam 0.2 keeps more in
    # every seed, so every bootstrap redraw picks it: the interval is (0.2, 0.2)
    assert ev["C4"].value == 0.2 and ev["C4"].interval == (0.2, 0.2)
    assert ev["C2.alpaca"].secondary is None  # no exact masses: the sampled reward is primary
    assert ev["C4"].target == pytest.approx((0.2 / math.sqrt(0.4),) * 2)
    assert metrics["c4"]["kept_by_lam"] == pytest.approx({"0.2": 0.75, "inf": 0.6})
    assert metrics["c4"]["target_whole_response"][0] == pytest.approx(0.2 / math.sqrt(2.0))
    assert metrics["c2_exact_unsafe_gap"] == {}  # no exact masses in these trajectories
    table = exp.c2_table(exp.c2())
    assert table.loc[0, "end KL_ref FRPO"] == pytest.approx(0.4)  # 2 x the final KL


def test_downstream_sft_needs_grpo_and_the_main_lam():
    with pytest.raises(ValueError, match="'frpo-0.2' is needed"):
        downstream_sft.run(
            "smoke",
            "unused",
            Stage1Block({}, {}, {"grpo": 0.1, "frpo-1": 0.1}),
            seeds=[0],
            main_seeds=[0],
            methods=[],
            lam_main=0.2,
            sft={},
            track={},
            high_lr={},
            evaluation={},
            stage1_std_from="03",
            stage1_std_key="x",
        )


def test_c8_and_replay_of_the_baselines(tmp_path):
    # every trajectory at KL 0, 0.2; kept at 0.2: grpo 0.5, frpo 0.9, sam 0.6 (seed 0) and
    # grpo 0.5, frpo 0.7, sam 0.6 (seed 1) -> scale 0.25, 0.5: mean 0.375
    root = tmp_path / "runs"
    kept = {
        0: {"grpo": 0.5, "frpo-0.2": 0.9, "sam": 0.6},
        1: {"grpo": 0.5, "frpo-0.2": 0.7, "sam": 0.6},
    }
    sft = {
        (m, s): _trajectory(root / f"{m}{s}", [0, 0.2], [1.0, kept[s][m]])
        for s in (0, 1)
        for m in ("grpo", "frpo-0.2", "sam")
    }
    # replay: +0.1 over the plain SFT for both seeds
    replay = {
        (m, s): _trajectory(root / f"r{m}{s}", [0, 0.2], [1.0, kept[s][m] + 0.1])
        for s in (0, 1)
        for m in ("grpo",)
    }
    parents = {k: _write(root / f"p{k}", "metrics.json", {"frpo/final/kl_ref": 0.03}) for k in sft}
    for k in parents:
        (parents[k] / "metrics.json").write_text(
            json.dumps({"frpo/final/kl_ref": 0.03, "frpo/final/reward/safety": 0.9})
        )

    class _Spec:
        beta = 0.02

    exp = baselines.Baselines(
        main="frpo-0.2",
        lam_main=0.2,
        seeds=[0, 1],
        dataset="alpaca",
        sam_rho=0.05,
        min_gap=0.03125,
        replay={"share": 0.1, "methods": ["grpo"]},
        budget_scales=[1.0],
        parents={k: _Spec() for k in sft},
        parent_dirs=parents,
        sft_dirs=sft,
        replay_dirs=replay,
        budget_parents={("grpo", 1.0, 0): _Spec()},
        budget_parent_dirs={("grpo", 1.0, 0): parents["grpo", 0]},
        budget_sft_dirs={("grpo", 1.0, 0): sft["grpo", 0]},
        times={},
    )
    out = tmp_path / "nb" / "09"
    out.mkdir(parents=True)
    metrics = exp.record(out, 0.0)
    ev = _evidence(tmp_path / "nb")
    # sam - grpo: 0.1, 0.1 -> 0.1 (no spread); frpo - sam: 0.3, 0.1 -> 0.2, sd 0.1414
    assert ev["C8.sam_vs_grpo"].value == pytest.approx(0.1) and ev["C8.sam_vs_grpo"].seeds == 2
    assert ev["C8.frpo_vs_sam"].value == pytest.approx(0.2)
    assert ev["C8.frpo_vs_sam"].interval[1] == pytest.approx(0.2 + T975_1 * 0.1)
    assert "sampled reward +0.375 over 2 seeds" in ev["C8.sam_vs_grpo"].detail  # (0.25 + 0.5) / 2
    assert metrics["c8"]["pooled"] == pytest.approx(1 / 3)  # mean(sam-grpo) / mean(frpo-grpo)
    assert metrics["replay"]["gain"]["grpo"][0] == pytest.approx(0.1)
    assert list(metrics["replay"]["per_seed"][0]) == [
        "method",
        "seed",
        "common KL",
        "replay",
        "plain",
        "gap",
        "end KL replay",
        "end KL plain",
    ]


def test_c7_of_math_then_code(tmp_path):
    # math acc after: frpo 0.5, 0.3; grpo 0.2, 0.2 -> 0.2; code gain: frpo 0.1, 0.1; grpo 0.2, 0.0
    joined = pd.DataFrame(
        {
            "method": ["frpo-2", "frpo-2", "grpo", "grpo"],
            "seed": [0, 1, 0, 1],
            "math acc/after": [0.5, 0.3, 0.2, 0.2],
            "code acc/gain": [0.1, 0.1, 0.2, 0.0],
            "math reward/after": [0.6, 0.4, 0.3, 0.3],
        }
    )
    finals = pd.DataFrame(
        {
            "method": ["grpo", "frpo-2"],
            "seed": [0, 0],
            math_code.REWARD_COL: [0.3, 0.4],
            "frpo/final/kl_ref": [0.1, 0.2],
        }
    )
    exp = math_code.MathThenCode(
        methods=["grpo", "frpo-2"],
        main="frpo-2",
        lam_main=2.0,
        seeds=[0, 1],
        n_prompts=112,
        curves=pd.DataFrame(),
        finals=finals,
        joined=joined,
        base=pd.Series(dtype=float),
    )
    c = exp.contrasts()
    assert c["C7.math"][0] == pytest.approx(0.2) and c["C7.math"][3] == 2
    assert c["C7.code"][0] == pytest.approx(0.0)
    assert exp.kl_ratio() == pytest.approx(2.0)


def test_c9_coverage_and_collapse(tmp_path, monkeypatch):
    # four settings: KLs 0.1, 0.2, 0.5, 0.7 -> 2 of 4 within 0.3; helpfulness 0.8, 0.6 within,
    # 0.2, 0.4 beyond -> collapse 0.3 - 0.7 = -0.4
    table = pd.DataFrame(
        {
            "setting": [0, 1, 2, 3],
            "method": ["grpo"] * 4,
            "seed": [0] * 4,
            "kl": [0.1, 0.2, 0.5, 0.7],
            "helpfulness": [0.8, 0.6, 0.2, 0.4],
            "safety": [0.9, 0.8, 0.5, 0.4],
        }
    )
    exp = finetuning_sweep.FinetuningSweep(
        models=["grpo"],
        lam_main=0.2,
        sweep_seeds=[0],
        settings=[{}] * 4,
        settings_seed=0,
        kl_threshold=0.3,
        parent_dirs={},
        bound_dirs={},
        backend=None,
        run_dir=tmp_path,
        table=table,
        helpful_before={"grpo": 0.7},
    )
    floors = table.assign(predicted_whole=0.5, predicted_token=0.6)
    monkeypatch.setattr(exp, "robust_floor", lambda: (floors, {("grpo", 0): 5.0}))
    out = tmp_path / "nb" / "06"
    out.mkdir(parents=True)
    metrics = exp.record(out, 0.0)
    ev = _evidence(tmp_path / "nb")
    assert ev["C9.coverage"].value == 0.5 and ev["C9.coverage"].seeds == 4
    assert ev["C9.collapse"].value == pytest.approx(-0.4)
    assert ev["C9.collapse"].detail.endswith("Welch t-interval")
    assert metrics["bound_holds_share_whole_response"] == 0.75  # safety 0.9, 0.8, 0.5 >= 0.5
    assert metrics["mean_response_length"] == {"grpo|0": 5.0}


def test_downstream_rl_metrics(tmp_path):
    # safety end - start: grpo -0.5, -0.3, -0.4; frpo-0.5 -0.1, -0.2, 0.0 (smaller lam keeps more)
    root = tmp_path / "runs"
    change = {"grpo": [-0.5, -0.3, -0.4], "frpo-0.5": [-0.1, -0.2, 0.0]}
    dirs = {
        (m, s): _trajectory(root / f"{m}{s}", [0, 0.1], [0.9, 0.9 + c], {HELP: 0.5})
        for m, cs in change.items()
        for s, c in enumerate(cs)
    }
    keys = [downstream_rl.SAFETY, HELP, TRACK_KL]
    rows = [
        {"method": m, "seed": s, **drl.start_end(read_trajectory(p), keys)}
        for (m, s), p in dirs.items()
    ]
    summary = pd.DataFrame(drl.per_method(rows, downstream_rl.VALUE_KEYS))
    summary["pareto"] = [False, True]
    exp = downstream_rl.DownstreamRL(
        methods=list(change),
        seeds=[0, 1, 2],
        down_dirs=dirs,
        traj=pd.DataFrame(columns=["method"]),
        run_rows=rows,
        summary=summary,
    )
    out = tmp_path / "nb" / "07"
    out.mkdir(parents=True)
    metrics = exp.record(out, 0.0)
    assert metrics["pareto_front"] == ["frpo-0.5"]
    assert metrics["spearman_lam_safety_change"] < 0  # larger lam, larger loss
    assert metrics["exact"] is None
    assert (
        json.loads((out / "metrics.json").read_text())["spearman_lam_exact_refusal_change"] is None
    )


def test_c2_reads_the_exact_refusal_mass_where_the_world_has_it(tmp_path):
    # the same runs with an exact refusal mass tracked: FRPO keeps 0.9 / 0.8 at KL 0.2, GRPO 0.4
    # (gaps 0.5, 0.4: mean 0.45); the sampled reward's gap (0.15) is shown beside it
    exp = _downstream_sft(tmp_path)
    exact = {0: [1.0, 0.95, 0.9], 1: [1.0, 0.9, 0.8]}
    for (m, _d, s), path in exp.sft_dirs.items():
        rows = read_trajectory(path)
        ys = [1.0, 0.7, 0.4] if m == "grpo" else exact[s]
        for row, y in zip(rows, ys, strict=True):
            row["frpo/exact/harmful/refusal_mass"] = y
        (path / "trajectory.json").write_text(json.dumps(rows))
    out = tmp_path / "nb" / "05"
    out.mkdir(parents=True)
    exp.record(out, 0.0)
    ev = _evidence(tmp_path / "nb")["C2.alpaca"]
    assert ev.value == pytest.approx(0.45) and ev.detail.startswith("exact refusal mass")
    assert ev.secondary["what"] == "sampled safety reward"
    assert ev.secondary["value"] == pytest.approx(0.15)
