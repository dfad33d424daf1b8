"""Recipes: method keys round-trip, equal parameters give equal specs (shared runs)."""

import pytest

from frpo.recipes import make_source, method_key, parse_method, sft_spec, stage1_spec
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
