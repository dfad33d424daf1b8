"""What the RL and SFT runners share: one train-and-save skeleton and its pieces.

:func:`train_and_save` is a training run's body (:func:`frpo.stages.rundir.run_once` calls it
with the run's temporary directory): seed torch with the spec's seed, load the start model's
tokenizer, let the runner build its trainer (:class:`Setup`: the TRL trainer, the trajectory
callback of a tracked run, the metrics the runner knows before training), train, then write into
the run directory

- ``model/``: the trained model (LoRA merged) and tokenizer (:func:`save_trained`);
- ``curves.csv`` / ``curves.json``: TRL's log history, one row per logged step;
- ``trajectory.csv`` / ``.json``: the tracked rows (:mod:`frpo.stages.tracking`), if tracked;

and drop the trainer's own output directory. Its metrics: the last logged value of every numeric
key under ``frpo/train/...``, ``frpo/steps``, and the runner's own. What differs between the
runners stays in them: the RL runner keeps the trained model for a resumed evaluation and
evaluates it on the main process (:mod:`frpo.stages.rlhf`); the SFT runner builds its mixed and
replayed data set (:mod:`frpo.stages.sft`).
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch
from peft import LoraConfig, PeftModel

from frpo.stages.backend import load_model, load_tokenizer
from frpo.stages.rundir import MODEL_DIR, write_json
from frpo.stages.tracking import TrajectoryCallback

ADAPTER_CONFIG = "adapter_config.json"  # what a saved PEFT adapter directory holds
TRAINER_DIR = "trainer"  # the trainer's own output directory inside the run's, dropped at the end


class Setup(NamedTuple):
    """What a runner builds to train (:func:`train_and_save`)."""

    trainer: Any
    """The TRL trainer, ready to ``train()``."""
    tracker: TrajectoryCallback | None = None
    """Its trajectory callback (one of the trainer's callbacks), None for an untracked run."""
    metrics: dict | None = None
    """Metrics the runner knows before training (data set sizes), added to the run's."""


def train_and_save(
    spec, start_path: str, tmp: Path, build: Callable[[Any], Setup]
) -> tuple[dict, Setup] | None:
    """Train ``spec`` from ``start_path`` with the trainer ``build(tokenizer)`` makes, and save
    the result into ``tmp`` (module docstring); ``(metrics, setup)`` on the main process, None
    on the others (they train along and write nothing)."""
    torch.manual_seed(spec.seed)
    tokenizer = load_tokenizer(start_path)
    setup = build(tokenizer)
    trainer = setup.trainer
    trainer.train()
    save_trained(trainer, tokenizer, tmp, start_path, spec.source)  # ZeRO-3: a collective
    if not trainer.args.should_save:
        return None
    history = trainer.state.log_history
    save_curves(history, tmp)
    shutil.rmtree(tmp / TRAINER_DIR, ignore_errors=True)
    if setup.tracker is not None:
        save_curves(setup.tracker.rows, tmp, "trajectory")
    metrics = {f"frpo/train/{k}": v for k, v in last_logged(history).items()}
    metrics["frpo/steps"] = trainer.state.global_step
    metrics.update(setup.metrics or {})
    return metrics, setup


def trajectory_callback(spec, backend, start_path: str, tokenizer) -> TrajectoryCallback | None:
    """The trajectory callback of a run with ``spec.track`` (None without): rewards and KLs to
    the start model and to pi_ref (:mod:`frpo.stages.tracking`)."""
    if spec.track is None:
        return None
    return TrajectoryCallback(
        backend,
        spec.track,
        load_model(start_path, source=spec.source),
        load_model(backend.base_model_path(), source=spec.source),
        tokenizer,
    )


def trainer_kwargs(spec, out_dir: Path) -> dict:
    """TrainingArguments shared by the RL and SFT runners (CPU-safe, no checkpoints, no hub)."""
    kw = dict(
        output_dir=str(out_dir),
        learning_rate=spec.lr,
        num_train_epochs=spec.epochs,
        max_steps=spec.max_steps,
        seed=spec.seed,
        data_seed=spec.seed,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        bf16=False,
        gradient_checkpointing=False,
        disable_tqdm=False,
    )
    if not torch.cuda.is_available():
        kw["use_cpu"] = True
    return kw


def lora_config(rank: int, alpha: int):
    """A LoRA adapter on every linear layer (None for rank 0: full fine-tuning)."""
    if rank <= 0:
        return None
    return LoraConfig(
        r=rank, lora_alpha=alpha or rank, target_modules="all-linear", task_type="CAUSAL_LM"
    )


def weights_sharded(trainer) -> bool:
    """True when DeepSpeed ZeRO-3 shards the trained weights across processes."""
    plugin = getattr(trainer.accelerator.state, "deepspeed_plugin", None)
    return plugin is not None and plugin.zero_stage == 3


def save_trained(trainer, tokenizer, run_dir: Path, start_path: str, source=None):
    """Save the trained model (LoRA merged) and tokenizer to ``run_dir/model`` from the main
    process; the model on the main process, None on the others.

    Every process of a launch calls this. Where each process holds the whole model (one process,
    DDP, ZeRO-2), the main process merges LoRA in memory and saves the model; the others hold
    the same weights and write nothing (under ZeRO-2 on 8 GPUs, 7 more copies of a 14.5 GB model
    would go to their scratch directories). Under DeepSpeed ZeRO-3 the weights are sharded:
    ``Trainer.save_model`` gathers them (a collective every process joins; the accelerate config
    sets ``zero3_save_16bit_model``) and the main process writes them; a LoRA run's adapter is
    then merged into the start model (``start_path``, loaded as ``source``'s models are) and the
    merged model written over it. Nothing whole is in memory then: None everywhere (the main
    process can load the saved directory).
    """
    out = Path(run_dir) / MODEL_DIR
    main = trainer.args.should_save  # the main process (Trainer.save_model's own test)
    if not weights_sharded(trainer):
        if not main:
            return None
        model = trainer.model
        if hasattr(model, "merge_and_unload"):
            model = model.merge_and_unload()
        model.eval()
        enable_kv_cache(model)
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        return model
    trainer.save_model(str(out))  # collective: every process gathers its shards
    if main:
        (out / "training_args.bin").unlink(missing_ok=True)  # Trainer's record, not the model's
        if (out / ADAPTER_CONFIG).is_file():
            merge_adapter(out, load_model(start_path, source=source))
        enable_kv_cache(model_dir=out)
        tokenizer.save_pretrained(out)
    return None


def enable_kv_cache(model=None, model_dir: Path | None = None) -> None:
    """Turn the KV cache back on in a trained model's config and generation config (in memory,
    or in the saved ``config.json`` / ``generation_config.json`` of ``model_dir``).

    The paper overrides train with ``use_cache=False`` (:mod:`frpo.harness.overrides`), and a
    saved model keeps it: every later generation from the saved model (evaluation, tracking,
    the benchmarks' answers, lm-eval's and EvalPlus's hf backends) would then recompute the
    whole sequence at every new token, quadratic in the answer's length.
    """
    if model is not None:
        model.config.use_cache = True
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.use_cache = True
    if model_dir is not None:
        for name in ("config.json", "generation_config.json"):
            path = Path(model_dir) / name
            if path.is_file():
                cfg = json.loads(path.read_text())
                if cfg.get("use_cache") is False:
                    cfg["use_cache"] = True
                    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def merge_adapter(model_dir: Path, base) -> None:
    """Merge the PEFT adapter saved in ``model_dir`` into ``base`` and save the merged model there
    (the adapter files are removed, so the directory loads as a plain model)."""
    model_dir = Path(model_dir)
    merged = PeftModel.from_pretrained(base, str(model_dir)).merge_and_unload()
    for f in model_dir.glob("adapter_*"):
        f.unlink()
    merged.save_pretrained(model_dir)


def save_curves(log_history: list[dict], run_dir: Path, name: str = "curves") -> None:
    """TRL's log history as ``<name>.json`` (verbatim) and ``<name>.csv`` (one row per log)."""
    run_dir = Path(run_dir)
    write_json(run_dir / f"{name}.json", log_history)
    write_rows(log_history, run_dir / f"{name}.csv")


def write_rows(rows: list[dict], path: Path) -> None:
    """Rows of dicts as CSV, the columns the union of keys in first-seen order."""
    cols: list[str] = []
    for row in rows:
        cols += [k for k in row if k not in cols]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=cols)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(row.get(k)) for k in cols})


def _cell(v):
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, dict | list):
        return json.dumps(v)
    return v


def last_logged(log_history: list[dict]) -> dict:
    """The last logged value of every numeric key (train summary rows included)."""
    out: dict = {}
    for row in log_history:
        for k, v in row.items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                out[k] = float(v)
    return out
