"""``save_trained``: the whole-model path and the ZeRO-3 path, on CPU; only the main process
writes.

Under ZeRO-3 the runner saves through ``Trainer.save_model`` (which gathers the shards; here, on
one CPU process, it writes the same files without gathering) and merges a LoRA adapter into the
start model afterwards. Both paths must give the weights of an in-memory ``merge_and_unload``.
"""

from __future__ import annotations

import copy

import pytest
import torch
from _tiny import build_tiny, load_tiny

from frpo.stages import training
from frpo.stages.rundir import MODEL_DIR


def _lora_trainer(tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import Trainer, TrainingArguments

    start = build_tiny(tmp_path / "start", hidden_size=32, num_layers=2, intermediate_size=64)
    model, tokenizer = load_tiny(start)
    # init_lora_weights=False: random B, so the merge moves the weights (a zero B would hide a
    # merge that never happened)
    lora = LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False)
    peft_model = get_peft_model(model, lora)
    args = TrainingArguments(output_dir=str(tmp_path / "trainer"), use_cpu=True, report_to="none")
    trainer = Trainer(model=peft_model, args=args, processing_class=tokenizer)
    expected = copy.deepcopy(peft_model).merge_and_unload().state_dict()
    return trainer, tokenizer, start, expected


def _assert_same_weights(model, expected):
    got = model.state_dict()
    assert sorted(got) == sorted(expected)
    for name, tensor in expected.items():
        torch.testing.assert_close(got[name], tensor, rtol=0, atol=1e-6, msg=name)


def test_whole_model_path_merges_in_memory_and_saves(tmp_path):
    trainer, tokenizer, start, expected = _lora_trainer(tmp_path)
    assert not training.weights_sharded(trainer)  # no DeepSpeed on a CPU process
    model = training.save_trained(trainer, tokenizer, tmp_path / "run", start)
    _assert_same_weights(model, expected)
    reloaded, _ = load_tiny(str(tmp_path / "run" / MODEL_DIR))
    _assert_same_weights(reloaded, expected)


def test_zero3_path_saves_through_the_trainer_then_merges_the_adapter(tmp_path, monkeypatch):
    trainer, tokenizer, start, expected = _lora_trainer(tmp_path)
    monkeypatch.setattr(training, "weights_sharded", lambda _trainer: True)
    assert training.save_trained(trainer, tokenizer, tmp_path / "run", start) is None
    out = tmp_path / "run" / MODEL_DIR
    assert not list(out.glob("adapter_*")), "the adapter files must go once merged"
    assert not (out / "training_args.bin").exists()
    reloaded, tok = load_tiny(str(out))
    _assert_same_weights(reloaded, expected)
    assert tok.get_vocab() == tokenizer.get_vocab()


def test_whole_model_worker_processes_write_nothing(tmp_path, monkeypatch):
    """DDP / ZeRO-2: every process holds the whole model, only the main one saves it (issue 10
    row 12: under ZeRO-2 on 8 GPUs the 7 others each wrote the merged 14.5 GB model)."""
    trainer, tokenizer, start, _ = _lora_trainer(tmp_path)
    monkeypatch.setattr(type(trainer.args), "should_save", property(lambda self: False))
    assert not training.weights_sharded(trainer)
    assert training.save_trained(trainer, tokenizer, tmp_path / "run", start) is None
    assert not (tmp_path / "run").exists()


def test_zero3_worker_processes_write_nothing(tmp_path, monkeypatch):
    trainer, tokenizer, start, _ = _lora_trainer(tmp_path)
    monkeypatch.setattr(training, "weights_sharded", lambda _trainer: True)
    monkeypatch.setattr(type(trainer.args), "should_save", property(lambda self: False))
    assert training.save_trained(trainer, tokenizer, tmp_path / "run", start) is None
    assert not (tmp_path / "run" / MODEL_DIR).exists()


@pytest.mark.parametrize("stage, expected", [(2, False), (3, True)])
def test_weights_sharded_reads_the_deepspeed_stage(stage, expected):
    class Plugin:
        zero_stage = stage

    class State:
        deepspeed_plugin = Plugin()

    class Accelerator:
        state = State()

    class FakeTrainer:
        accelerator = Accelerator()

    assert training.weights_sharded(FakeTrainer()) is expected


@pytest.mark.parametrize("sharded", [False, True])
def test_a_saved_model_generates_with_its_kv_cache(tmp_path, monkeypatch, sharded):
    """Trained with use_cache=False (the paper overrides' model_init_kwargs), a model is saved
    with the cache on: otherwise every later generation from it (evaluations, benchmarks)
    recomputes the whole sequence at each new token."""
    import json

    trainer, tokenizer, start, _ = _lora_trainer(tmp_path)
    base = trainer.model.get_base_model()
    base.config.use_cache = False
    base.generation_config.use_cache = False
    monkeypatch.setattr(training, "weights_sharded", lambda _trainer: sharded)
    model = training.save_trained(trainer, tokenizer, tmp_path / "run", start)
    out = tmp_path / "run" / MODEL_DIR
    for name in ("config.json", "generation_config.json"):
        assert json.loads((out / name).read_text())["use_cache"] is True, name
    if model is not None:
        assert model.config.use_cache and model.generation_config.use_cache
