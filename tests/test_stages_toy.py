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
    monkeypatch.setenv("FRPO_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


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
