"""frpo.experiments.specs: spec sets keyed and ordered as their docstrings say, built through
frpo.recipes (so equal parameters give equal specs, i.e. the same run directories)."""

from __future__ import annotations

import pytest

from frpo.experiments.specs import Stage1Block, eval_specs, sft_specs
from frpo.recipes import sft_spec, stage1_spec

WORLD = {"kind": "toy", "size": "smoke", "seed": 0}
STAGE1 = {"tasks": ["safety"], "max_steps": 3, "n_prompts": 16, "batch_size": 16}
BETAS = {"grpo": 0.02, "frpo-0.5": 0.1, "sam": 0.002}
SFT = {
    "alpaca": {"lr": 1e-3, "max_steps": 4, "n_examples": 16},
    "gsm8k": {"lr": 2e-3, "max_steps": 4, "n_examples": 16},
}
BLOCK = Stage1Block(WORLD, STAGE1, BETAS)
TRACK = {"every": 2, "tasks": ["safety"], "n_prompts": 8, "max_new_tokens": 8}


def test_stage1_specs_methods_outer_seeds_inner_and_sam_rho():
    specs = BLOCK.specs(["grpo", "frpo-0.5-nojk", "sam"], [0, 1])
    assert list(specs) == [(m, s) for m in ("grpo", "frpo-0.5-nojk", "sam") for s in (0, 1)]
    assert specs["grpo", 1] == stage1_spec("grpo", 1, WORLD, STAGE1, BETAS)
    assert specs["frpo-0.5-nojk", 0].beta == 0.1  # an ablation takes its parent's beta
    assert specs["sam", 0].sam_rho == 0.05  # RLSpec's default
    custom = BLOCK.specs(["grpo", "sam"], [0], sam_rho=0.1)
    assert custom["sam", 0].sam_rho == 0.1 and custom["grpo", 0].sam_rho == 0.05


def test_sft_specs_insert_the_dataset_before_the_seed_in_notebook_order():
    parents = BLOCK.specs(["grpo", "frpo-0.5"], [0, 1])
    specs = sft_specs(parents, SFT, TRACK)
    expected = [(m, d, s) for m in ("grpo", "frpo-0.5") for d in SFT for s in (0, 1)]
    assert list(specs) == expected
    key = ("frpo-0.5", "gsm8k", 1)
    assert specs[key] == sft_spec(
        parents["frpo-0.5", 1], {"dataset": "gsm8k", **SFT["gsm8k"]}, 1, TRACK
    )
    high = sft_specs(parents, SFT, TRACK, datasets=["alpaca"], lr=1e-2)
    assert list(high) == [(m, "alpaca", s) for m in ("grpo", "frpo-0.5") for s in (0, 1)]
    assert all(spec.lr == 1e-2 and spec.seed == k[-1] for k, spec in high.items())
    with pytest.raises(ValueError, match="no SFT block for dataset"):
        sft_specs(parents, SFT, TRACK, datasets=["code"])


def test_sft_specs_keep_longer_parent_keys():
    parents = {
        ("grpo", 1.0, 0): stage1_spec("grpo", 0, WORLD, STAGE1, BETAS),
        ("grpo", 0.25, 0): stage1_spec("grpo", 0, WORLD, STAGE1, {"grpo": 0.005}),
    }
    specs = sft_specs(parents, SFT, None, datasets=["alpaca"])
    assert list(specs) == [("grpo", 1.0, "alpaca", 0), ("grpo", 0.25, "alpaca", 0)]
    assert specs["grpo", 0.25, "alpaca", 0].parent.beta == 0.005


def test_eval_specs_source_and_pi_ref():
    parents = BLOCK.specs(["grpo"], [0])
    assert BLOCK.reward_column == "frpo/final/reward/safety"
    block = {"tasks": ["safety"], "n_prompts": 8, "max_new_tokens": 8}
    ev = eval_specs(parents, block)
    assert ev["grpo", 0].model == parents["grpo", 0]
    assert ev["grpo", 0].source == parents["grpo", 0].source
    base = eval_specs({"pi_ref": None}, block, WORLD)
    assert base["pi_ref"].model is None and base["pi_ref"].source == parents["grpo", 0].source
    with pytest.raises(ValueError, match="pi_ref"):
        eval_specs({"pi_ref": None}, block)
