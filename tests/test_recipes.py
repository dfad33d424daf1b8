"""Recipes: method keys round-trip, equal parameters give equal specs (shared runs)."""

import math

import pytest

from frpo.recipes import (
    make_source,
    method_key,
    objective_lam,
    on_sweep,
    parse_method,
    sft_spec,
    stage1_spec,
    sweep_lam,
    sweep_methods,
)
from frpo.stages.spec import spec_hash

WORLD = {"kind": "toy", "size": "smoke", "seed": 0}
STAGE1 = {"max_steps": 4, "n_prompts": 16, "batch_size": 16}
BETAS = {"grpo": 0.04, "frpo-0.5": 0.08, "sam": 0.05}


@pytest.mark.parametrize("key", ["grpo", "sam", "frpo-0.5", "frpo-2-nojk", "frpo-0.1-nobase"])
def test_method_keys_round_trip(key):
    assert method_key(**parse_method(key)) == key


@pytest.mark.parametrize(
    ("key", "match"),
    [("ppo", "unknown method key"), ("frpo-x", "not a lam"), ("frpo-0.5-foo", "unknown suffix")],
)
def test_bad_method_keys_are_named(key, match):
    with pytest.raises(ValueError, match=match):
        parse_method(key)


def test_equal_parameters_give_the_same_run_and_ablations_inherit_beta():
    a = stage1_spec("frpo-0.5", 1, WORLD, STAGE1, BETAS)
    b = stage1_spec("frpo-0.5", 1, dict(WORLD), dict(STAGE1), dict(BETAS))
    assert spec_hash(a) == spec_hash(b)
    nojk = stage1_spec("frpo-0.5-nojk", 1, WORLD, STAGE1, BETAS)
    assert nojk.beta == 0.08 and not nojk.jackknife and spec_hash(nojk) != spec_hash(a)
    assert stage1_spec("sam", 0, WORLD, STAGE1, BETAS).method == "grpo_sam"
    with pytest.raises(ValueError, match="no beta for method 'frpo-2'"):
        stage1_spec("frpo-2", 0, WORLD, STAGE1, BETAS)


def test_sft_child_hash_depends_on_parent():
    p0 = stage1_spec("grpo", 0, WORLD, STAGE1, BETAS)
    p1 = stage1_spec("grpo", 1, WORLD, STAGE1, BETAS)
    sft = {"dataset": "alpaca", "lr": 1e-3, "max_steps": 3}
    assert spec_hash(sft_spec(p0, sft, 0)) != spec_hash(sft_spec(p1, sft, 0))


def test_world_block_is_checked():
    assert make_source({"kind": "hub", "model": "m", "data": {"b": "y", "a": "x"}}).data == (
        ("a", "x"),
        ("b", "y"),
    )
    with pytest.raises(ValueError, match="unknown key"):
        make_source({"kind": "toy", "sise": "toy"})


def test_objective_lam_and_the_lam_sweep():
    # the objective's lam: FRPO's (ablations too); GRPO and GRPO+SAM maximise the mean (inf)
    assert objective_lam("frpo-0.5") == objective_lam("frpo-0.5-nojk") == 0.5
    assert objective_lam("frpo-2-nobase") == 2.0
    assert objective_lam("grpo") == objective_lam("sam") == math.inf
    # the sweep: GRPO (inf) and the plain FRPO lams only
    assert sweep_lam("grpo") == math.inf and sweep_lam("frpo-0.2") == 0.2
    for key in ("frpo-0.5-nojk", "frpo-0.5-nobase", "sam"):
        assert not on_sweep(key)
        with pytest.raises(ValueError, match="not on a lam sweep"):
            sweep_lam(key)
    betas = {"frpo-0.2": 0.1, "sam": 0.1, "grpo": 0.1, "frpo-1": 0.1, "frpo-1-nojk": 0.1}
    assert sweep_methods(betas) == ["grpo", "frpo-1", "frpo-0.2"]
    with pytest.raises(ValueError, match="unknown method key"):
        objective_lam("ppo")
