"""Paper-scale SFT precision (issue 10 row 7): full fine-tuning keeps fp32 master weights.

The paper fine-tunes downstream with AdamW at lr 1e-6 (Alpaca) and 6e-6 (GSM8K). Adam's first
step moves every weight with a clear gradient by about lr (m / sqrt(v) = sign(g)), i.e. 1e-6,
far below bf16's resolution near a typical weight (|w| ~ 0.02: a bf16 step of 2^-7 * 2^-6 ~ 1e-4;
fp32's is ~2e-9). So the hub SFT config loads fp32 weights and trains under bf16 autocast; this
test runs one step of TRL's SFTTrainer with that very config on a tiny local model (CPU) and
checks the weights moved by lr, and that bf16 weights (the old config) would not have moved.
"""

from __future__ import annotations

import pytest
import torch
from test_stages_fixtures import build_model

from frpo.harness import capability
from frpo.stages.spec import SFTSpec, Source

torch.set_num_threads(1)
HUB = Source(kind="hub", model="mistralai/Mistral-7B-Instruct-v0.1", data=())
LR = 1e-6


@pytest.fixture(autouse=True)
def gpu_node_config(monkeypatch):
    """The configs a GPU node gets (bf16 autocast); the step itself runs on the CPU."""
    monkeypatch.setattr(capability, "detect", lambda: capability.GPU_NODE)


def _one_step(tmp_path, path, dtype=None):
    """One SFTTrainer step with the hub config of a full fine-tuning spec; (before, after)."""
    from datasets import Dataset
    from trl import SFTTrainer

    from frpo.harness import capability
    from frpo.stages.backend import load_model, load_tokenizer
    from frpo.stages.sft import build_sft_config

    spec = SFTSpec(source=HUB, lr=LR, batch_size=4, max_steps=1, max_length=32)
    # the config a bf16 GPU node builds (the capability checks decide bf16; bf16 autocast runs on
    # this CPU too), so the fp32-master-weight step is the one a GPU would take
    real = capability.detect
    capability.detect = lambda: capability.GPU_NODE
    try:
        cfg = build_sft_config(spec, tmp_path / f"trainer-{dtype}")
    finally:
        capability.detect = real
    if dtype is not None:
        cfg.model_init_kwargs["dtype"] = dtype
    before = {k: v.float() for k, v in load_model(path).state_dict().items()}
    rows = [
        [{"role": "user", "content": f"add {i} and 2"}, {"role": "assistant", "content": "moon"}]
        for i in range(4)
    ]
    trainer = SFTTrainer(
        model=path,
        args=cfg,
        train_dataset=Dataset.from_dict({"messages": rows}),
        processing_class=load_tokenizer(path),
    )
    trainer.train()
    after = {k: v.detach().float() for k, v in trainer.model.state_dict().items()}
    return cfg, before, after


def _steps(before, after) -> torch.Tensor:
    return torch.cat([(after[k] - before[k]).abs().flatten() for k in before])


def test_a_full_fine_tuning_step_at_lr_1e6_moves_the_weights_by_lr(tmp_path):
    path = build_model(tmp_path / "m")
    cfg, before, after = _one_step(tmp_path, path)
    assert cfg.model_init_kwargs["dtype"] == "float32" and cfg.bf16  # fp32 master, bf16 autocast
    assert cfg.learning_rate == LR and cfg.weight_decay == 0.0
    step = _steps(before, after)
    moved = step > 0
    # Adam's first step is lr * g / (|g| + eps): lr for every |g| >> eps = 1e-8. Measured: all
    # weights moved, median step 1.0002e-6, largest 1.013e-6
    assert moved.float().mean() > 0.9, f"only {moved.float().mean():.2%} of the weights moved"
    assert abs(step[moved].median().item() - LR) < 0.05 * LR, step[moved].median()
    assert step.max() < 1.5 * LR


def test_the_same_step_on_bf16_weights_rounds_away(tmp_path):
    """The control: the old config (bf16 weights) loses the step; the test above can fail."""
    path = build_model(tmp_path / "m")
    _, before, after = _one_step(tmp_path, path, dtype="bfloat16")
    bf16_before = {k: v.to(torch.bfloat16).float() for k, v in before.items()}
    moved = (_steps(bf16_before, after) > 0).float().mean()
    # measured: 2.7% moved (weights within ~1e-4 of zero, e.g. the zero-initialised biases,
    # where bf16's spacing is below 1e-6); the other 97% kept their value
    assert moved < 0.1, f"{moved:.2%} of bf16 weights moved"
