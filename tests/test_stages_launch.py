"""Paper-scale plumbing without GPUs: accelerate configs, GPU count, the hub trainer configs,
the capped beta search step, and toy run names that must not move."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
import yaml

from frpo.book.profiles import load_profile
from frpo.harness.overrides import attention_implementation
from frpo.stages.beta_search import MAX_STEP, next_beta
from frpo.stages.launch import accelerate_config, launch_command
from frpo.stages.processes import launched_gpus, launched_processes
from frpo.stages.spec import EvalSpec, RLSpec, SFTSpec, Source, from_dict, run_name, to_dict

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
HUB = Source(
    kind="hub",
    model="mistralai/Mistral-7B-Instruct-v0.1",
    data=(("safety", "data/frpo_safety_train.parquet"),),
)


@pytest.mark.parametrize(("n", "zero"), [(1, 2), (4, 2), (8, 2), (8, 3)])
def test_every_command_names_an_existing_config_of_that_size(n, zero):
    spec = RLSpec(source=HUB, batch_size=64)
    for s in (spec, SFTSpec(source=HUB, parent=spec, batch_size=16), EvalSpec(source=HUB)):
        cmd = launch_command(s, "runs/paper/specs/x.json", n_gpus=n, zero=zero).split()
        path = ROOT / cmd[cmd.index("--config_file") + 1]
        cfg = yaml.safe_load(path.read_text())
        assert path.is_file()
        assert cfg["num_processes"] == n and cfg["deepspeed_config"]["zero_stage"] == zero
    assert accelerate_config(8) == "configs/accelerate/8gpu_zero2.yaml"
    assert accelerate_config(1) == "configs/accelerate/1gpu.yaml"


def test_missing_layouts_list_the_available_ones():
    with pytest.raises(ValueError, match=r"no accelerate config for 2 GPU\(s\) at ZeRO-2; avail"):
        accelerate_config(2)
    with pytest.raises(ValueError, match="4 GPU\\(s\\) ZeRO-2: configs/accelerate/4gpu_zero2"):
        accelerate_config(4, zero=3)
    with pytest.raises(ValueError, match="zero must be 2 or 3"):
        launch_command(RLSpec(), "x.json", n_gpus=8, zero=1)


def test_launched_processes(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert launched_processes() == 1  # a plain process, whatever GPUs it sees
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert launched_processes() == 4


def test_launched_gpus(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "8")
    assert launched_gpus() == 8
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert launched_gpus() == 2
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert launched_gpus() == 1  # one CPU process (the rehearsal of the paper path)


@pytest.mark.parametrize("method", ["grpo", "frpo"])
def test_a_hub_rl_config_has_the_paper_overrides(method, tmp_path, monkeypatch):
    from frpo.harness import capability
    from frpo.harness.overrides import paper_trainer_overrides

    monkeypatch.setattr(capability, "detect", lambda: capability.GPU_NODE)
    from frpo.stages.rlhf import build_rl_config
    from frpo.trainer import _unsupported_settings

    spec = RLSpec(source=HUB, method=method, lam=0.5, batch_size=64, beta=0.1)
    cfg = build_rl_config(spec, tmp_path, n_gpus=8)
    for key, value in paper_trainer_overrides(8).items():
        assert getattr(cfg, key) == value, key
    assert cfg.use_vllm and cfg.vllm_mode == "colocate" and cfg.bf16
    assert cfg.model_init_kwargs["attn_implementation"] == attention_implementation()
    assert cfg.model_init_kwargs["dtype"] == "bfloat16"  # LoRA on bf16 weights
    assert cfg.vllm_importance_sampling_correction is False
    assert cfg.beta == 0.1 and cfg.num_generations == 8
    assert _unsupported_settings(cfg) == []  # FRPOTrainer accepts it
    if method == "frpo":
        assert cfg.lam == 0.5 and cfg.scale_rewards == "none"


def test_toy_and_files_rl_configs_get_no_override(tmp_path):
    from frpo.stages.rlhf import build_rl_config

    cfg = build_rl_config(RLSpec(method="frpo", lam=0.5), tmp_path)
    assert not cfg.use_vllm and not cfg.bf16 and cfg.model_init_kwargs is None
    files = Source(kind="files", model=str(tmp_path), data=(("gsm8k", "g.jsonl"),))
    assert not build_rl_config(RLSpec(source=files), tmp_path).use_vllm


def test_a_hub_sft_config_is_bf16_autocast_with_fp32_weights_for_full_fine_tuning(
    tmp_path, monkeypatch
):
    from frpo.harness import capability
    from frpo.stages.sft import build_sft_config

    monkeypatch.setattr(capability, "detect", lambda: capability.GPU_NODE)
    cfg = build_sft_config(SFTSpec(source=HUB, lr=1e-6, batch_size=16, max_length=2048), tmp_path)
    assert cfg.bf16 and cfg.gradient_checkpointing
    assert cfg.model_init_kwargs == {
        "dtype": "float32",  # fp32 master weights; bf16 is the autocast compute
        "attn_implementation": attention_implementation(),
        "use_cache": False,
    }
    assert cfg.max_length == 2048 and cfg.learning_rate == 1e-6
    lora = SFTSpec(source=HUB, full=False, lora_rank=16, batch_size=16)
    assert build_sft_config(lora, tmp_path).model_init_kwargs["dtype"] == "bfloat16"
    assert not build_sft_config(SFTSpec(), tmp_path).bf16


def test_attention_is_flash_attn_where_it_imports_else_sdpa(monkeypatch, caplog):
    import logging
    import sys
    import types

    import transformers.utils

    from frpo.harness import overrides

    caplog.set_level(logging.INFO, logger=overrides.__name__)
    monkeypatch.setitem(sys.modules, "flash_attn", None)  # `import flash_attn` raises
    assert overrides.attention_implementation() == "sdpa"
    assert "flash-attn does not import" in caplog.text and "falls back to sdpa" in caplog.text
    assert overrides.paper_trainer_overrides(1)["model_init_kwargs"]["attn_implementation"] == (
        "sdpa"
    )
    monkeypatch.setitem(sys.modules, "flash_attn", types.ModuleType("flash_attn"))
    monkeypatch.setattr(transformers.utils, "is_flash_attn_2_available", lambda: False)
    caplog.clear()
    assert overrides.attention_implementation() == "sdpa"  # imports, but no CUDA device
    assert "transformers cannot use it" in caplog.text
    monkeypatch.setattr(transformers.utils, "is_flash_attn_2_available", lambda: True)
    caplog.clear()
    assert overrides.attention_implementation() == "flash_attention_2"
    assert "attention: flash_attention_2" in caplog.text


def _world(monkeypatch, n: int) -> None:
    """Make TrainingArguments see ``n`` processes (its ``world_size``, the number TRL and the
    Trainer multiply the per-device batch by), as under ``accelerate launch``, without GPUs."""
    from transformers import TrainingArguments

    monkeypatch.setattr(TrainingArguments, "world_size", property(lambda self: n))


@pytest.mark.parametrize("n", [1, 2, 4, 8])
@pytest.mark.parametrize("method", ["grpo", "frpo"])
def test_each_process_takes_the_batch_over_the_world_size_rl(n, method, tmp_path, monkeypatch):
    """Issue 10 row 1: TRL's generation batch (the completions of one optimizer step) is
    per_device_train_batch_size x processes x steps_per_generation; it must be the spec's."""
    from frpo.stages.rlhf import build_rl_config

    _world(monkeypatch, n)
    for source in (Source(), HUB):
        spec = RLSpec(source=source, method=method, lam=0.5, batch_size=128, num_generations=8)
        cfg = build_rl_config(spec, tmp_path, n_gpus=n, n_processes=n)
        assert cfg.world_size == n
        assert cfg.per_device_train_batch_size == 128 // n
        assert cfg.generation_batch_size == 128  # TRL's own arithmetic, read back
        assert cfg.steps_per_generation == cfg.gradient_accumulation_steps == 1


@pytest.mark.parametrize("n", [1, 2, 4, 8])
def test_each_process_takes_the_batch_over_the_world_size_sft(n, tmp_path, monkeypatch):
    from frpo.stages.sft import build_sft_config

    _world(monkeypatch, n)
    for source in (Source(), HUB):
        cfg = build_sft_config(SFTSpec(source=source, batch_size=16), tmp_path, n_processes=n)
        assert cfg.per_device_train_batch_size == 16 // n
        # transformers' step: train_batch_size (per device x GPUs per process) x accumulation
        # x world size (Trainer.get_total_train_batch_size without tensor/sequence parallelism)
        assert cfg.train_batch_size * cfg.gradient_accumulation_steps * cfg.world_size == 16


def test_a_batch_that_does_not_split_is_refused(tmp_path, monkeypatch):
    from frpo.stages.rlhf import build_rl_config
    from frpo.stages.sft import build_sft_config

    _world(monkeypatch, 3)
    with pytest.raises(ValueError, match=r"RL run: batch_size 32 does not split over 3 proc"):
        build_rl_config(RLSpec(batch_size=32), tmp_path, n_processes=3)
    with pytest.raises(ValueError, match=r"SFT run: batch_size 8 does not split over 3 .*or 2"):
        build_sft_config(SFTSpec(batch_size=8), tmp_path, n_processes=3)
    # split over 2 processes but the trainer sees 3: the step would not be the spec's
    with pytest.raises(ValueError, match="would take 48 examples a step, the spec asks for 32"):
        build_rl_config(RLSpec(batch_size=32), tmp_path, n_processes=2)


def test_without_a_gpu_a_hub_run_generates_with_transformers_in_float32(tmp_path, monkeypatch):
    """The capability checks, not the profile, switch vLLM and bf16 off (the CPU rehearsal)."""
    from frpo.harness import capability
    from frpo.stages.rlhf import build_rl_config

    cpu = capability.Capabilities(cuda=False, bf16=False, vllm=False)
    monkeypatch.setattr(capability, "detect", lambda: cpu)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    cfg = build_rl_config(RLSpec(source=HUB, method="frpo", lam=0.5, batch_size=64), tmp_path)
    assert not cfg.use_vllm and not cfg.bf16 and cfg.model_init_kwargs["dtype"] == "float32"
    assert cfg.gradient_checkpointing  # the rest of the paper settings stay


def test_next_beta_step_is_capped_at_a_factor_of_ten():
    assert MAX_STEP == 10.0
    # uncapped: KL = 0.02 beta^-0.5 meets 0.1 at beta = 0.04, within 10x of the best try 0.01
    assert next_beta([(0.01, 0.2), (1.0, 0.02)], 0.1) == pytest.approx(0.04, rel=1e-12)
    # nearly flat, both KLs above 0.1: the line meets it at log 0.2 + log(0.1/0.49)/slope with
    # slope = log(0.49/0.5)/log 2 = -0.0291, i.e. beta ~ 1e23; capped at 0.2 * 10
    assert next_beta([(0.1, 0.5), (0.2, 0.49)], 0.1) == pytest.approx(2.0, rel=1e-12)
    # nearly flat, both below: uncapped ~ 0.1 * exp(-160) ~ 3e-71; capped at 0.1 / 10
    assert next_beta([(0.1, 0.0101), (0.2, 0.0100)], 0.1) == pytest.approx(0.01, rel=1e-12)
    # the cap is around the try nearest the target (log distance), not the last one
    got = next_beta([(0.1, 0.0101), (0.2, 0.0100), (0.05, 0.0102)], 0.1)
    assert got == pytest.approx(0.005, rel=1e-12)
    assert math.isfinite(next_beta([(1e-3, 1e-12), (2e-3, 1e-12)], 0.1))


def test_known_toy_run_names_are_unchanged():
    """A stage-1 toy run's name (and so its cache) is pinned: a change to the spec fields or the
    hash shows up here. Deliberate changes update it and say why: scale_rewards entered the spec
    (GRPO follows the paper's unscaled advantages), so every toy run was recomputed."""
    spec = from_dict(
        {
            "stage": "rl",
            "baseline": True,
            "batch_size": 32,
            "beta": 0.1,
            "epochs": 1.0,
            "jackknife": True,
            "lam": 0.1,
            "lora_alpha": 0,
            "lora_rank": 0,
            "lr": 0.0002,
            "max_completion_length": 12,
            "max_steps": 60,
            "method": "frpo",
            "n_eval": 128,
            "n_prompts": 64,
            "num_generations": 8,
            "parent": None,
            "sam_rho": 0.05,
            "scale_rewards": "none",
            "seed": 0,
            "source": {
                "data": [],
                "kind": "toy",
                "model": "",
                "recipe": "effda4b9aaba",
                "seed": 0,
                "size": "toy",
            },  # fmt: skip
            "tasks": ["safety"],
            "temperature": 1.0,
            "track": None,
        }
    )
    assert run_name(spec) == "rl-frpo-lam0.1-beta0.1-safety-s0-af310c734a17"
    grpo = dataclasses.replace(spec, method="grpo", beta=0.02)
    assert run_name(grpo).startswith("rl-grpo-beta0.02-safety-s0-")


def _readme_stage1_recipe() -> str:
    """The Python of README's ``python - <<'PY' ... PY`` stage-1 recipe."""
    text = (ROOT / "README.md").read_text()
    return text.split("python - <<'PY'\n", 1)[1].split("\nPY\n", 1)[0]


def test_launch_cli_plans_the_paper_stage1_runs(tmp_path, monkeypatch, capsys):
    """README's recipe, run as written: it covers every stage-1 run the notebooks sharing the
    paper's stage-1 block launch (the dry run's launch[stage1] lines: GRPO+SAM included, which
    notebook 09 trains), then the CLI plans one command per run."""
    import json
    import runpy

    from frpo.book.plan import stage1_block_specs
    from frpo.stages.launch import main

    monkeypatch.setenv("FRPO_RUNS", str(tmp_path / "runs"))
    (tmp_path / "profiles").symlink_to(ROOT / "profiles")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipe.py").write_text(_readme_stage1_recipe())
    runpy.run_path(str(tmp_path / "recipe.py"))
    written = [from_dict(d) for d in json.loads((tmp_path / "stage1.json").read_text())]
    notebooks = load_profile("paper").notebooks  # params: with the shared values they take
    wanted = {
        json.dumps(to_dict(d), sort_keys=True)
        for nb in notebooks.values()
        if nb.params.get("world", {}).get("data", {}).get("safety")
        for d in stage1_block_specs(nb.params)
    }
    have = {json.dumps(to_dict(s), sort_keys=True) for s in written}
    assert wanted and wanted <= have
    assert any(s.method == "grpo_sam" for s in written)
    plans = main(["--specs", str(tmp_path / "stage1.json"), "--n-gpus", "8"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(written)
    for spec, pl, line in zip(written, plans, lines, strict=True):
        assert line == pl["command"] and "configs/accelerate/8gpu_zero2.yaml" in line
        assert line.endswith(f"-m frpo.stages.rlhf --spec {pl['spec_file']} --profile paper")
        assert from_dict(json.loads(Path(pl["spec_file"]).read_text())) == spec
    assert written[0].source.kind == "hub" and written[0].max_completion_length == 2048


def test_models_load_in_bf16_for_a_hub_source_only(tmp_path, monkeypatch):
    """bf16 where the machine has a bf16 GPU (the capability check), float32 otherwise."""
    from test_stages_fixtures import build_model

    from frpo.harness import capability
    from frpo.judges import hf_cache
    from frpo.stages.backend import load_model

    path = build_model(tmp_path / "m")
    monkeypatch.setattr(hf_cache, "default_device", lambda: "cpu")  # only the dtype is asked
    cpu = capability.Capabilities(cuda=False, bf16=False, vllm=False)
    monkeypatch.setattr(capability, "detect", lambda: cpu)
    assert load_model(path, source=HUB).dtype == torch.float32
    monkeypatch.setattr(capability, "detect", lambda: capability.GPU_NODE)
    assert load_model(path, source=HUB).dtype == torch.bfloat16
    files = Source(kind="files", model=path)
    assert load_model(path, source=files).dtype == torch.float32
    assert load_model(path).dtype == torch.float32


@pytest.mark.parametrize("method", ["grpo", "grpo_sam", "frpo"])
def test_every_method_centres_rewards_without_std_scaling_by_default(method, tmp_path):
    """The paper's GRPO and FRPO both use A = r - group mean (Sec. 2, App. C.1)."""
    from frpo.stages.rlhf import build_rl_config
    from frpo.stages.spec import RLSpec

    cfg = build_rl_config(RLSpec(method=method, batch_size=8), tmp_path)
    assert cfg.scale_rewards == "none"
    grpo_std = build_rl_config(RLSpec(scale_rewards="group", batch_size=8), tmp_path)
    assert grpo_std.scale_rewards == "group"


def test_readme_downloads_every_hub_data_set_as_a_data_set():
    """`hf download <id>` fetches a model; data sets need --repo-type dataset. README's loop
    must name every hub data set of the paper profile and of lm-eval's paper benchmarks."""
    text = (ROOT / "README.md").read_text()
    loop = text.split("for d in ", 1)[1].split("; do", 1)[0]
    listed = set(loop.replace("\\", " ").split())
    assert 'hf download --repo-type dataset "$d"' in text
    notebooks = load_profile("paper").notebooks
    hub_ids = {
        v
        for nb in notebooks.values()
        for k, v in (nb.params.get("world") or {}).get("data", {}).items()
        if not k.startswith("judge.") and "/" in v and not v.startswith("data/")
    }
    harness = {"cais/mmlu", "google/IFEval", "openai/openai_humaneval", "HuggingFaceH4/MATH-500"}
    assert hub_ids | harness <= listed, sorted(hub_ids | harness - listed)
