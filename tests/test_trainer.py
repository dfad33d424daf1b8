"""FRPOConfig fields and defaults, refused layouts, TRL signature pins, beta = 0 and PEFT runs."""

import dataclasses
import inspect
import math

import _tiny
import pytest
import torch
from trl import GRPOConfig, GRPOTrainer

from frpo.trainer import FRPOConfig, FRPOTrainer, loss_scale_factor

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
    "_calculate_rewards": [
        ("self", _P, None), ("inputs", _P, None), ("prompts", _P, None),
        ("completions", _P, None), ("completion_ids_list", _P, None),
    ],
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
    assert overridden == {
        "__init__",
        "_calculate_rewards",
        "_generate_and_score_completions",
        "_compute_loss",
    }


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


def test_config_defaults(tmp_path):
    cfg = FRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False)
    assert cfg.scale_rewards == "none" and cfg.lam == 1.0
    cfg = FRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, scale_rewards=False)
    assert cfg.scale_rewards == "none"  # TRL's False is "none"


@pytest.mark.parametrize("scale", ["group", "batch", True])
def test_std_scaling_is_refused_by_config_and_spec_with_one_reason(tmp_path, scale):
    from frpo.losses import reward_scaling_problem
    from frpo.stages.spec import RLSpec

    with pytest.raises(ValueError) as config_err:
        FRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, scale_rewards=scale)
    assert "refused for FRPO" in str(config_err.value) and "own scale" in str(config_err.value)
    assert str(config_err.value) == reward_scaling_problem({True: "group"}.get(scale, scale))
    if isinstance(scale, str):  # RLSpec takes TRL's strings only
        with pytest.raises(ValueError) as spec_err:
            RLSpec(method="frpo", scale_rewards=scale)
        assert str(spec_err.value) == str(config_err.value)
        assert RLSpec(method="grpo", scale_rewards=scale).scale_rewards == scale
    with pytest.raises(ValueError, match="normalize_then_sum.*std"):
        FRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False,
                   multi_objective_aggregation="normalize_then_sum")  # fmt: skip


@pytest.mark.parametrize(
    "bad",
    [dict(lam=0.0), dict(lam=-1.0), dict(lam=math.inf), dict(lam=math.nan),
     dict(loss_scale="lam")],
)  # fmt: skip
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


def _parity_reward(prompts, completions, completion_ids, **kwargs):
    """None when the token ids sum to 0 mod 4, NaN when to 1 mod 4, else the target fraction."""
    out = []
    for ids, value in zip(completion_ids, _tiny.target_fraction_reward(
            prompts, completions, completion_ids), strict=True):  # fmt: skip
        rest = sum(ids) % 4
        out.append(None if rest == 0 else math.nan if rest == 1 else value)
    return out


def _reference_coefficients(batch, lam):
    """Plain float64 loop: d frpo_loss / d s_i at s = 1 (baseline, jackknife) over the groups'
    scored live rows only (Eq. 4.1-4.3, closed form of frpo.losses._group_log_z at s = 1);
    unscored and empty rows get 0. The advantages are TRL's (float32 rewards, centred over the
    scored rows; checked here against the rewards recomputed from the completions)."""
    ids = batch["completion_ids"].tolist()
    mask = batch["completion_mask"].tolist()
    rewards = _parity_reward(None, None, [[t for t, m in zip(r, k, strict=True) if m]
                                          for r, k in zip(ids, mask, strict=True)])  # fmt: skip
    groups: dict[int, list[int]] = {}
    for i, gid in enumerate(_tiny.prompt_group_ids([batch]).tolist()):
        scored = rewards[i] is not None and not math.isnan(rewards[i]) and sum(mask[i]) > 0
        if scored:
            groups.setdefault(gid, []).append(i)
    groups = {g: rows for g, rows in groups.items() if len(rows) >= 2}
    coef = [0.0] * len(ids)
    adv = batch["advantages"].tolist()
    for rows in groups.values():
        g = len(rows)
        mean = sum(rewards[i] for i in rows) / g
        for i in rows:
            assert adv[i] == pytest.approx(rewards[i] - mean, rel=1e-6, abs=1e-7)
        w = [math.exp(-adv[i] / lam) for i in rows]
        total = sum(w)
        for a, i in enumerate(rows):
            loo = sum(w[a] / (total - w[b]) for b in range(g) if b != a)
            c = g * w[a] / total - (g - 1) / g * loo
            coef[i] = (lam * c - lam / g) / len(groups)
    return torch.tensor(coef, dtype=torch.float64), rewards


def test_rows_without_a_reward_do_not_move_the_policy(tiny_path, tmp_path):
    model, tok = _tiny.load_tiny(tiny_path, torch.float64)
    args = _tiny.exact_config(str(tmp_path), per_device_train_batch_size=16, lam=0.5)
    trainer = _tiny.recording_trainer_class()(
        model=model, reward_funcs=_parity_reward, args=args,
        train_dataset=_tiny.prompt_dataset(16), processing_class=tok,
    )  # fmt: skip
    trainer.train()
    (batch,) = trainer.recorded
    want, rewards = _reference_coefficients(batch, 0.5)
    unscored = [i for i, r in enumerate(rewards) if r is None or math.isnan(r)]
    assert any(r is None for r in rewards) and any(r is not None and math.isnan(r)
                                                   for r in rewards)  # fmt: skip
    got = batch["frpo_coef"]
    assert torch.all(got[unscored] == 0.0)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-15)
    assert want.abs().max() > 1e-3


def test_an_infinite_reward_is_refused_where_it_appears(tiny_path, tmp_path):
    def broken_reward(prompts, completions, completion_ids, **kwargs):
        return [math.inf if i == 3 else 0.5 for i in range(len(prompts))]

    model, tok = _tiny.load_tiny(tiny_path)
    args = _tiny.exact_config(str(tmp_path), per_device_train_batch_size=8)
    trainer = FRPOTrainer(model=model, reward_funcs=broken_reward, args=args,
                          train_dataset=_tiny.prompt_dataset(8), processing_class=tok)  # fmt: skip
    with pytest.raises(ValueError, match=r"reward function 'broken_reward' returned inf for "
                       r"completion 3 of this generation batch \(prompt \["):  # fmt: skip
        trainer.train()
