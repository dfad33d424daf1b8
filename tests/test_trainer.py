"""FRPOConfig fields and defaults, refused layouts, TRL signature pins, beta = 0 and PEFT runs."""

import dataclasses
import inspect
import math

import pytest
import torch
from trl import GRPOConfig, GRPOTrainer

from frpo.trainer import FRPOConfig, FRPOTrainer, loss_scale_factor
from tests import _tiny

# The GRPOTrainer methods FRPOTrainer overrides or calls, as (name, kind, default) per parameter
# (TRL 1.16.0). If TRL changes one, the override may silently stop being called: fail loudly.
_P, _N = "POSITIONAL_OR_KEYWORD", "None"
EXPECTED_SIGNATURES = {
    "__init__": [
        ("self", _P, None), ("model", _P, None), ("reward_funcs", _P, _N), ("args", _P, _N),
        ("train_dataset", _P, _N), ("eval_dataset", _P, _N), ("processing_class", _P, _N),
        ("reward_processing_classes", _P, _N), ("callbacks", _P, _N),
        ("optimizers", _P, "(None, None)"), ("quantization_config", _P, _N),
        ("peft_config", _P, _N), ("tools", _P, _N), ("rollout_func", _P, _N),
        ("environment_factory", _P, _N),
    ],
    "_generate_and_score_completions": [("self", _P, None), ("inputs", _P, None)],
    "_compute_loss": [("self", _P, None), ("model", _P, None), ("inputs", _P, None)],
    "_get_per_token_logps_and_entropies": [
        ("self", _P, None), ("model", _P, None), ("input_ids", _P, None),
        ("attention_mask", _P, None), ("logits_to_keep", _P, None), ("batch_size", _P, _N),
        ("compute_entropy", _P, "False"), ("compute_aux_loss", _P, "False"),
        ("pixel_values", _P, _N), ("image_grid_thw", _P, _N), ("num_images", _P, _N),
        ("pixel_attention_mask", _P, _N), ("spatial_shapes", _P, _N), ("num_tiles", _P, _N),
        ("image_sizes", _P, _N), ("token_type_ids", _P, _N), ("mm_token_type_ids", _P, _N),
        ("image_position_ids", _P, _N),
    ],
}  # fmt: skip


def _describe(fn):
    return [
        (p.name, p.kind.name, None if p.default is inspect.Parameter.empty else repr(p.default))
        for p in inspect.signature(fn).parameters.values()
    ]


@pytest.mark.parametrize("name", sorted(EXPECTED_SIGNATURES))
def test_trl_signatures_unchanged(name):
    assert _describe(getattr(GRPOTrainer, name)) == EXPECTED_SIGNATURES[name], (
        f"GRPOTrainer.{name} changed signature; review FRPOTrainer before upgrading TRL"
    )


def test_overrides_are_the_pinned_methods():
    overridden = {
        n for n, v in vars(FRPOTrainer).items() if callable(v) and hasattr(GRPOTrainer, n)
    }
    assert overridden == {"__init__", "_generate_and_score_completions", "_compute_loss"}


def test_config_declares_only_its_fields_and_the_scale_rewards_default():
    own = {f.name for f in dataclasses.fields(FRPOConfig)} - {
        f.name for f in dataclasses.fields(GRPOConfig)
    }
    assert own == {"lam", "baseline", "jackknife", "loss_scale"}
    redeclared = [n for n in FRPOConfig.__annotations__ if n not in own]
    assert redeclared == ["scale_rewards"]
    fields = {f.name: f for f in dataclasses.fields(FRPOConfig)}
    for name in own | {"scale_rewards"}:
        assert fields[name].metadata.get("help"), name
    assert fields["scale_rewards"].default == "none"
    assert (fields["baseline"].default, fields["jackknife"].default) == (True, True)
    assert fields["loss_scale"].default == "max_lam_1"


def test_config_defaults_and_explicit_scale_rewards(tmp_path):
    cfg = FRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False)
    assert cfg.scale_rewards == "none" and cfg.lam == 1.0
    cfg = FRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, scale_rewards="group")
    assert cfg.scale_rewards == "group"  # an explicit value is kept


@pytest.mark.parametrize("bad", [dict(lam=0.0), dict(lam=-1.0), dict(loss_scale="lam")])
def test_config_rejects_bad_values(tmp_path, bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        FRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, **bad)


def test_loss_scale_factor_by_hand():
    # paper: (log Z - mean s) * max(lam, 1); frpo_loss carries lam, so the factor is max(lam,1)/lam
    assert loss_scale_factor(0.2, "max_lam_1") == pytest.approx(5.0)  # 1 / 0.2
    assert loss_scale_factor(2.0, "max_lam_1") == 1.0  # lam (log Z - mean s): frpo_loss itself
    assert loss_scale_factor(0.2, "none") == 1.0
    assert math.isclose(loss_scale_factor(1.0, "max_lam_1"), 1.0)


@pytest.mark.parametrize(
    "layout, culprit",
    [
        (dict(num_iterations=2), "num_iterations=2"),
        (dict(gradient_accumulation_steps=1, steps_per_generation=2), "steps_per_generation=2"),
        (
            dict(gradient_accumulation_steps=3, steps_per_generation=2),
            "gradient_accumulation_steps",
        ),
        (dict(loss_type="grpo"), "loss_type"),
        (dict(top_entropy_quantile=0.5), "top_entropy_quantile"),
        (dict(entropy_coef=0.01), "entropy"),
        (dict(importance_sampling_level="sequence"), "importance_sampling_level"),
    ],
)
def test_refused_layouts_and_settings(tmp_path, layout, culprit):
    args = _tiny.exact_config(str(tmp_path), per_device_train_batch_size=4, **layout)
    with pytest.raises(ValueError, match=culprit):
        FRPOTrainer(model="never-loaded", reward_funcs=_tiny.target_fraction_reward, args=args)


def test_refuses_plain_grpo_config(tmp_path):
    args = GRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False)
    with pytest.raises(ValueError, match="FRPOConfig"):
        FRPOTrainer(model="never-loaded", reward_funcs=_tiny.target_fraction_reward, args=args)


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    torch.set_num_threads(1)
    return _tiny.build_tiny(tmp_path_factory.mktemp("tiny"), hidden_size=32, num_layers=2,
                            intermediate_size=64)  # fmt: skip


def test_several_generations_per_step_accepted_and_metrics_logged(tiny_path, tmp_path):
    model, tok = _tiny.load_tiny(tiny_path)
    args = _tiny.exact_config(str(tmp_path), per_device_train_batch_size=4, learning_rate=1e-3,
                              gradient_accumulation_steps=2, steps_per_generation=1,
                              max_steps=2)  # fmt: skip
    trainer = FRPOTrainer(model=model, reward_funcs=_tiny.target_fraction_reward, args=args,
                          train_dataset=_tiny.prompt_dataset(32), processing_class=tok)  # fmt: skip
    trainer.train()
    logged = trainer.state.log_history[0]
    for name in ["log_z", "max_weight", "ess", "clip_frac", "loss_on_policy", "n_groups"]:
        assert math.isfinite(logged[f"frpo/{name}"]), name
    assert logged["frpo/n_groups"] == 1.0  # one group of 4 per generation batch
    assert 1.0 <= logged["frpo/ess"] <= 4.0 and 0.25 <= logged["frpo/max_weight"] <= 1.0


def test_peft_lora_model_trains(tiny_path, tmp_path):
    from peft import LoraConfig

    model, tok = _tiny.load_tiny(tiny_path)
    args = _tiny.exact_config(str(tmp_path), per_device_train_batch_size=8, learning_rate=1e-2,
                              beta=0.1, max_steps=1)  # fmt: skip
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    trainer = FRPOTrainer(model=model, reward_funcs=_tiny.target_fraction_reward, args=args,
                          train_dataset=_tiny.prompt_dataset(32), processing_class=tok,
                          peft_config=lora)  # fmt: skip
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    after = dict(trainer.model.named_parameters())
    moved = {n for n in before if not torch.equal(before[n], after[n].detach())}
    assert moved and all("lora_" in n for n in moved)  # only the adapter moves
    assert "kl" in trainer.state.log_history[0]  # reference = base model with adapter disabled


def test_groups_with_one_live_completion_leave_the_jackknifed_loss(tiny_path, tmp_path):
    # max_completion_length=2 truncates most completions; mask_truncated_completions zeroes their
    # masks, so some groups keep < 2 live rows (Eq. 4.3 undefined); they leave the loss.
    model, tok = _tiny.load_tiny(tiny_path)
    args = _tiny.exact_config(str(tmp_path), per_device_train_batch_size=32, learning_rate=1e-3,
                              max_completion_length=2, mask_truncated_completions=True,
                              max_steps=2)  # fmt: skip
    trainer = FRPOTrainer(model=model, reward_funcs=_tiny.target_fraction_reward, args=args,
                          train_dataset=_tiny.prompt_dataset(64), processing_class=tok)  # fmt: skip
    trainer.train()
    n_groups = [h["frpo/n_groups"] for h in trainer.state.log_history if "frpo/n_groups" in h]
    assert len(n_groups) == 2 and min(n_groups) < 8  # 8 prompts a step, some left out
    assert all(math.isfinite(h.get("loss", 0.0)) for h in trainer.state.log_history)


def test_evaluate_reports_the_frpo_loss_value(tiny_path, tmp_path):
    model, tok = _tiny.load_tiny(tiny_path)
    args = _tiny.exact_config(str(tmp_path), per_device_train_batch_size=8,
                              per_device_eval_batch_size=8, lam=0.5)  # fmt: skip
    trainer = FRPOTrainer(model=model, reward_funcs=_tiny.target_fraction_reward, args=args,
                          train_dataset=_tiny.prompt_dataset(8),
                          eval_dataset=_tiny.prompt_dataset(2, seed=1),
                          processing_class=tok)  # fmt: skip
    metrics = trainer.evaluate()
    # one eval batch of 2 prompts x G = 4: the loss is max(lam, 1)/lam * frpo_loss (beta = 0)
    value = metrics["eval_frpo/loss_on_policy"]
    assert value != 0.0
    assert metrics["eval_loss"] == pytest.approx(loss_scale_factor(0.5, "max_lam_1") * value)
