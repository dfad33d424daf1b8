"""The fine-tuning attack study's wiring (frpo.analysis.attacks) and both C10 evidence writers."""

import json

import numpy as np
import pandas as pd
import pytest

from frpo.analysis import attacks
from frpo.analysis import worst_case as wc
from frpo.claims import load_evidence
from frpo.recipes import sft_spec, stage1_spec

WORLD = {"kind": "toy", "size": "smoke", "seed": 0}
STAGE1 = {"tasks": ["safety"], "max_steps": 3, "n_prompts": 16, "batch_size": 16}
BETAS = {"grpo": 0.04, "frpo-0.2": 0.04}
TRACK = {"every": 6, "tasks": ["safety"], "n_prompts": 8, "max_new_tokens": 8}
ALPACA = {"lr": 1e-3, "max_steps": 24, "n_examples": 96, "batch_size": 8, "max_length": 64}
ATTACK = {
    "lrs": [3e-4, 1e-3],
    "lr_main": 1e-3,
    "sft": {"dataset": "attack", "max_steps": 12, "n_examples": 32, "batch_size": 8},
    "track_every": 2,
}
MIXED = {"shares": [0.0, 0.1], "task": "attack", "sft": {"dataset": "alpaca", **ALPACA}}


def test_attack_specs_and_the_share_zero_run_is_notebook_05s():
    specs = attacks.attack_specs(
        WORLD, STAGE1, BETAS, ["grpo", "frpo-0.2"], [0, 1], ATTACK, MIXED, TRACK
    )
    assert len(specs) == 2 * 2 * (2 + 2)
    parent = stage1_spec("frpo-0.2", 1, WORLD, STAGE1, BETAS)
    harmful = specs["frpo-0.2", "harmful SFT, lr 0.001", 1]
    assert harmful.parent == parent and harmful.dataset == "attack" and harmful.lr == 1e-3
    assert harmful.track.every == 2 and harmful.seed == 1 and harmful.mix == ()
    # share 0 is notebook 05's Alpaca run, spec for spec (so the same run directory)
    alone = specs["frpo-0.2", "alpaca + 0% harmful", 1]
    assert alone == sft_spec(parent, {"dataset": "alpaca", **ALPACA}, 1, TRACK)
    mixed = specs["frpo-0.2", "alpaca + 10% harmful", 1]
    assert mixed.mix == (("attack", 0.1),) and mixed.track.every == 6


def write_run(path, kl, safety, unsafe):
    path.mkdir(parents=True)
    rows = [
        {
            "step": i,
            "frpo/track/kl_start": k,
            "frpo/track/reward/safety": y,
            "frpo/exact/harmful/unsafe_mass": u,
        }
        for i, (k, y, u) in enumerate(zip(kl, safety, unsafe, strict=True))
    ]
    (path / "trajectory.json").write_text(json.dumps(rows))
    return path


def fake_runs(tmp_path):
    """FRPO keeps 0.1 more safety than GRPO at every KL (+0.01 x seed); GRPO drifts further."""
    runs = {}
    for seed in range(3):
        for method, top, lift in (("grpo", 0.6, 0.0), ("frpo-0.2", 0.4, 0.1 + 0.01 * seed)):
            kl = np.linspace(0.0, top, 4)
            runs[method, "harmful SFT, lr 0.001", seed] = write_run(
                tmp_path / f"{method}-{seed}", kl, 0.8 - kl + lift, 0.1 + kl - lift
            )
    return runs


def test_matched_gaps_reads_both_runs_at_their_common_kl(tmp_path):
    gaps = attacks.matched_gaps(
        fake_runs(tmp_path), "frpo-0.2", ys=(attacks.TRACK_SAFETY, attacks.UNSAFE, attacks.REFUSAL)
    )
    assert set(gaps["y"]) == {attacks.TRACK_SAFETY, attacks.UNSAFE}  # no refusal column tracked
    row = gaps.set_index("y").loc[attacks.TRACK_SAFETY]
    assert row["gap"] == pytest.approx(0.11) and row["lo"] < 0.11 < row["hi"]
    assert row["kl_common"] == pytest.approx(0.4) and row["n"] == 3
    assert row["reference"] == pytest.approx(0.8 - 0.4)
    assert gaps.set_index("y").loc[attacks.UNSAFE, "gap"] == pytest.approx(-0.11)


def test_record_attack_writes_c10_attack(tmp_path):
    runs = fake_runs(tmp_path)
    result = {
        "gaps": attacks.matched_gaps(runs, "frpo-0.2", ys=(attacks.TRACK_SAFETY, attacks.UNSAFE)),
        "main_setting": "harmful SFT, lr 0.001",
    }
    attacks.record_attack(tmp_path / "nb", result, 0.2)
    ev = load_evidence(tmp_path)["C10.attack"]
    assert ev.value == pytest.approx(0.11) and ev.seeds == 3 and ev.interval[0] < 0.11
    assert "exact unsafe mass gap -0.110" in ev.detail


def test_record_worst_writes_the_sampled_gap_of_lam_main(tmp_path):
    rng = np.random.default_rng(0)

    def fake(level, seed):
        r = np.clip(level + 0.1 * rng.standard_normal((4, 6)), 0, 1)
        return {
            "rewards": r.tolist(),
            "category": ["harmful", "borderline", "harmful", "harmless"],
            "exact": {k: [0.25] * 4 for k in wc.MASS_KEYS},
        }

    measured = {(m, s): fake(lv, s) for m, lv in (("grpo", 0.5), ("frpo-0.2", 0.7)) for s in (0, 1)}
    runs = pd.DataFrame(
        [
            {"method": m, "sampled_std": wc.within_prompt_std(v["rewards"])}
            for (m, _), v in measured.items()
        ]
    )
    targets = wc.targeted_rhos(runs, ["grpo", "frpo-0.2"])
    assert targets["grpo"] == 0.0 and targets["frpo-0.2"] > 0
    result = {"paired": wc.paired_at_targets(measured, targets)}
    row = wc.record_worst(tmp_path / "nb", result, 0.2)
    ev = load_evidence(tmp_path)["C10.worst"]
    assert ev.value == pytest.approx(row["diff"]) and ev.seeds == 2
    assert ev.value > 0  # the FRPO stand-in's rewards are higher everywhere
    assert "exact bracket's gaps: lower bounds +0.000" in ev.detail  # equal class masses
