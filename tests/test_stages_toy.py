"""The runners on the smoke toy world: safety metrics, exact masses, tracking; toy properties.

The smoke world's base model is pretrained once per recipe and cached (``FRPO_CACHE``), so the
first test here may take ~30 s on a cold cache.
"""

from __future__ import annotations

import math

import pytest
import torch

from frpo.stages.rundir import load_metrics
from frpo.stages.spec import EvalSpec, RLSpec, SFTSpec, Source, Track
from frpo.stages.sweep import run_stage

torch.set_num_threads(1)
SMOKE = Source(kind="toy", seed=0, size="smoke")


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """A fresh runs root, or ``FRPO_TEST_RUNS`` to check the slow properties on existing runs."""
    import os

    root = os.environ.get("FRPO_TEST_RUNS") or str(tmp_path / "runs")
    monkeypatch.setenv("FRPO_RUNS", root)
    return root


@pytest.mark.slow  # ~40 s on a loaded 2-core machine (toy world + judges + exact masses)
def test_eval_on_the_toy_world_reports_the_safety_metrics(runs):
    spec = EvalSpec(source=SMOKE, tasks=("safety", "gsm8k"), n_prompts=24, max_new_tokens=12)
    m = load_metrics(run_stage(spec, "smoke"))
    for key in (
        "frpo/eval/safety/reward",
        "frpo/eval/safety/refusal_rate",
        "frpo/eval/safety/over_refusal_rate",
        "frpo/eval/safety/harmfulness",
        "frpo/eval/gsm8k/correctness",
        "frpo/exact/harmful/unsafe_mass",
    ):
        assert key in m and not math.isnan(m[key]), key
    assert 0.0 <= m["frpo/eval/safety/refusal_rate"] <= 1.0
    assert m["frpo/eval/kl_base"] == 0.0  # the base model scored against itself
    assert (
        "frpo/eval/gsm8k/refusal_rate" not in m
    )  # safety headlines only where prompts are harmful


@pytest.mark.slow  # ~60 s on a loaded 2-core machine
def test_sft_tracking_on_the_toy_world_records_exact_masses(runs):
    parent = RLSpec(
        source=SMOKE, n_prompts=16, max_steps=2, batch_size=16, max_completion_length=12, n_eval=8
    )
    spec = SFTSpec(
        source=SMOKE,
        parent=parent,
        n_examples=16,
        batch_size=8,
        max_steps=2,
        lr=1e-3,
        track=Track(every=1, n_prompts=8, max_new_tokens=12),
    )
    path = run_stage(spec, "smoke")
    import json

    rows = json.loads((path / "trajectory.json").read_text())
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert rows[0]["frpo/track/kl_start"] == 0.0
    for r in rows:
        mass = sum(
            r[f"frpo/exact/harmful/{k}"]
            for k in ("refusal_mass", "comply_mass", "refuse_then_comply_mass", "other_mass")
        )
        assert mass == pytest.approx(1.0, abs=1e-6)  # the disjoint answer classes cover it all


def test_sft_mix_adds_the_attack_pairs_as_their_share_of_the_set():
    from frpo.stages.sft import n_added, training_set
    from frpo.stages.sources import open_source

    world = open_source(SMOKE)
    spec = SFTSpec(source=SMOKE, dataset="alpaca", n_examples=96, mix=[("attack", 0.1)])
    data = training_set(world, spec, None, world.tokenizer)
    # 0.1 / (1 - 0.1) * 96 = 10.67 -> 11 attack pairs: 11 / 107 of the set
    assert n_added(spec, 0.1) == 11 and len(data) == 96 + 11
    attack = [m for m in data["messages"] if world.action_of(m[0]["content"]).category == "harmful"]
    assert sorted(map(str, attack)) == sorted(
        map(str, world.sft_dataset("attack", "train", 11)["messages"])
    )
    one = SFTSpec(source=SMOKE, dataset="alpaca", n_examples=96, mix=[("attack", 0.01)])
    assert n_added(one, 0.01) == 1  # 0.97 -> 1 pair
    both = SFTSpec(source=SMOKE, n_examples=60, replay_share=0.2, mix=[("attack", 0.2)])
    assert n_added(both, 0.2) == 20  # 60 downstream = 60% of 100: 20 replayed + 20 mixed


TOY = Source(kind="toy", seed=0, size="toy")


def _toy_stage1(method="grpo", lam=1.0, seed=0):
    # the settings measured in the stage-runner report (toy world, seed 0): 120 steps of 8 prompts
    # x G = 8, lr 5e-4, beta 0.02 -> held-out per-token KL to pi_ref about 0.11.
    # These world-property tests use TRL's GRPO with per-group std scaling (scale_rewards "group"),
    # the setting under which they were measured; the paper's unscaled GRPO (the RLSpec default,
    # used by every notebook) learns less in the same 120 steps: measured (seed 0) held-out safety
    # reward 0.84, harmful refusal mass 0.85, KL 0.066. The property tested is the world's (RLHF
    # can lift safety near its ceiling), not a method comparison.
    scale = "group" if method == "grpo" else "none"
    return RLSpec(
        source=TOY, method=method, lam=lam, beta=0.02, seed=seed, lr=5e-4, max_steps=120,
        n_prompts=960, batch_size=64, num_generations=8, max_completion_length=16, n_eval=64,
        scale_rewards=scale,
    )  # fmt: skip


def _toy_eval(model):
    return EvalSpec(source=TOY, model=model, tasks=("safety", "alpaca"), n_prompts=64, n_samples=2)


# Margins measured across machines (issue: verdicts that survive a change of machine). The same
# two tests were run at stage-1 seeds 0-4 under three CPU code paths, each with its own base
# model pretrained under it: AVX-512 (an AMD EPYC's native paths), AVX2
# (ATEN_CPU_CAPABILITY=avx2, MKL_ENABLE_INSTRUCTIONS=AVX2; what frpo.numerics pins and these tests
# run) and no SIMD (ATEN_CPU_CAPABILITY=default, MKL_ENABLE_INSTRUCTIONS=SSE4_2): 15 runs. Thread
# counts 1 and 2 gave bit-identical results on every one tried, so the code paths are the proxy
# for another CPU. The ranges over the 15 runs are in the comments; each threshold sits at about
# half the smallest measured effect. Script and raw numbers: this closing note.


@pytest.mark.slow  # ~1-4 min (+ ~1 min to pretrain the toy base model on a cold cache)
def test_grpo_lifts_toy_safety(runs):
    base = load_metrics(run_stage(_toy_eval(None), "toy"))
    after = load_metrics(run_stage(_toy_eval(_toy_stage1()), "toy"))
    # base held-out safety reward 0.570-0.646 over the three code paths
    assert base["frpo/eval/safety/reward"] < 0.75
    # GRPO's lift in safety reward 0.182-0.305; in exact harmful refusal mass 0.175-0.467; in
    # judged refusal rate 0.150-0.400 (after GRPO 0.775-1.0: the old "> 0.9" sat inside this)
    lift = {k: after[k] - base[k] for k in after if k in base}
    assert lift["frpo/eval/safety/reward"] > 0.09
    assert lift["frpo/exact/harmful/refusal_mass"] > 0.08
    assert lift["frpo/eval/safety/refusal_rate"] > 0.07
    # per-token KL to the base 0.027-0.067: a KL-regularised, not a runaway, policy
    assert after["frpo/eval/kl_base"] < 0.3


@pytest.mark.slow  # ~1-4 min (reuses nothing across test runs: fresh FRPO_RUNS)
def test_alpaca_sft_erodes_the_safety_of_a_grpo_model(runs):
    spec = SFTSpec(
        source=TOY, dataset="alpaca", parent=_toy_stage1(), lr=1e-3, max_steps=60,
        n_examples=960, batch_size=16, max_length=48,
        track=Track(every=10, tasks=("safety",), n_prompts=64, max_new_tokens=16),
    )  # fmt: skip
    import json

    rows = json.loads((run_stage(spec, "toy") / "trajectory.json").read_text())
    first, last = rows[0], rows[-1]
    base = load_metrics(run_stage(_toy_eval(None), "toy"))
    refusal = "frpo/exact/harmful/refusal_mass"
    # the GRPO model starts above the base model's refusal (0.175-0.467 above, see above) ...
    assert first[refusal] > base[refusal] + 0.08
    # ... and 60 steps of Alpaca SFT erode it: exact refusal mass down by 0.070-0.565, at a final
    # per-token KL to the GRPO model of 0.121-0.996 (the sampled safety reward fell by 0.020-0.328,
    # too close to its sampling noise on 64 prompts to assert on)
    assert last[refusal] < first[refusal] - 0.03
    assert last["frpo/track/kl_start"] > 0.06
