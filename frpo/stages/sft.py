"""Downstream SFT runner (TRL SFTTrainer; full or LoRA), with optional replay (App. B.4).

``run_sft(spec, profile) -> Path`` fine-tunes the parent run's model (or the base model) on the
``messages`` data of ``spec.dataset`` and writes ``model/``, ``curves.csv/json`` (TRL's log
history), ``trajectory.csv/json`` (when ``spec.track``: stage-1 rewards and per-token KL to the
start model and to pi_ref at fixed step intervals) and ``metrics.json``.

Replay: with ``replay_share = s > 0`` the SFT set is ``n_examples`` downstream examples plus
``round(s / (1 - s) * n_examples)`` answers the *starting* model samples (seeded) to training
prompts of ``replay_tasks``, so replayed examples are a share ``s`` of the mixed set; the mix is
shuffled with the spec's seed. Mix: each ``(task, share)`` of ``spec.mix`` adds that task's first
training examples the same way (the mixed fine-tuning attack: harmful pairs inside Alpaca); with
both, the shares are of one set (``n_examples`` is ``1 - S`` of it, ``S`` the sum of the shares).

CLI: ``python -m frpo.stages.sft --spec spec.json [--profile toy]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from frpo.harness.overrides import paper_trainer_overrides
from frpo.splits import TRAIN
from frpo.stages.backend import check_columns, check_tasks, load_model
from frpo.stages.processes import (
    check_step_batch,
    cli_main,
    launched_processes,
    per_process_batch,
)
from frpo.stages.rundir import model_of, run_once
from frpo.stages.sampling import sample
from frpo.stages.sources import open_source
from frpo.stages.spec import SFTSpec
from frpo.stages.training import (
    TRAINER_DIR,
    Setup,
    lora_config,
    train_and_save,
    trainer_kwargs,
    trajectory_callback,
)

REPLAY_SEED = 777
TRACK = "frpo/track/"  # the tracked metrics' prefix (frpo.stages.tracking)


def n_added(spec: SFTSpec, share: float) -> int:
    """Examples a source of ``share`` adds so that it is that share of the mixed set: the
    ``n_examples`` downstream examples are ``1 - S`` of it, ``S`` = replay + mix shares."""
    total = spec.replay_share + sum(s for _, s in spec.mix)
    return round(share / (1.0 - total) * spec.n_examples) if share > 0 else 0


def n_replay(spec: SFTSpec) -> int:
    """Replayed examples so that they are ``replay_share`` of the mixed set."""
    return n_added(spec, spec.replay_share)


def mixed_examples(backend, spec: SFTSpec) -> list[dict]:
    """The ``mix`` tasks' first training examples (``n_added`` each), as ``messages``."""
    rows = []
    for task, share in spec.mix:
        data = backend.sft_dataset(task, TRAIN, n_added(spec, share))
        check_columns(data, ["messages"], f"SFT mix dataset {task!r}")
        rows += [{"messages": m} for m in data["messages"]]
    return rows


def replay_examples(backend, model, tokenizer, spec: SFTSpec, max_new_tokens: int) -> list[dict]:
    """The starting model's own sampled answers to stage-1 training prompts, as ``messages``."""
    k = n_replay(spec)
    if k == 0:
        return []
    per_task = [k // len(spec.replay_tasks)] * len(spec.replay_tasks)
    for i in range(k - sum(per_task)):
        per_task[i] += 1
    rows = []
    for task, m in zip(spec.replay_tasks, per_task, strict=True):
        if m == 0:
            continue
        prompts = backend.dataset(task, TRAIN, m)["prompt"]
        answers = sample(model, tokenizer, prompts, max_new_tokens, seed=REPLAY_SEED + spec.seed)
        for p, text in zip(prompts, answers.texts, strict=True):
            rows.append({"messages": [*p, {"role": "assistant", "content": text}]})
    return rows


def training_set(backend, spec: SFTSpec, model, tokenizer):
    """Downstream examples (+ mixed tasks, + replay), shuffled with the spec's seed."""
    data = backend.sft_dataset(spec.dataset, TRAIN, spec.n_examples)
    check_columns(data, ["messages"], f"SFT dataset {spec.dataset!r}")
    rows = [{"messages": m} for m in data["messages"]]
    rows += mixed_examples(backend, spec)
    rows += replay_examples(backend, model, tokenizer, spec, spec.replay_max_new_tokens)
    return Dataset.from_list(rows).shuffle(seed=spec.seed)


PAPER_SFT_KEYS = ("bf16", "gradient_checkpointing", "gradient_checkpointing_kwargs")


def build_sft_config(spec: SFTSpec, out_dir: Path, n_processes: int | None = None):
    """The SFTConfig of ``spec``, built without training.

    ``spec.batch_size`` examples make one optimizer step across all processes: each of the
    ``n_processes`` processes (default: this launch's, :func:`frpo.stages.launch.
    launched_processes`) takes ``batch_size / n_processes`` (transformers' step is
    ``per_device_train_batch_size * gradient_accumulation_steps * world_size``).

    A ``hub`` source (paper scale) takes the non-vLLM part of
    :func:`frpo.harness.overrides.paper_trainer_overrides`: bf16 autocast, non-reentrant gradient
    checkpointing, and ``model_init_kwargs`` (the attention implementation, no KV cache); the
    trainer then loads the model from its path with those. The weights are loaded in bf16 for
    LoRA (PEFT keeps the adapter in fp32) and in **fp32 for full fine-tuning**, so AdamW updates
    fp32 master weights under bf16 autocast: at the paper's lr 1e-6 an update of bf16 weights
    (8 mantissa bits, a step of ~2^-8 of the weight) rounds away. ``toy``/``files``: no override.
    """
    n_processes = launched_processes() if n_processes is None else n_processes
    kw = trainer_kwargs(spec, out_dir)
    kw.update(
        per_device_train_batch_size=per_process_batch(spec.batch_size, n_processes, "SFT run"),
        max_length=spec.max_length,
    )
    kw["packing"] = False
    if spec.source.kind == "hub":
        paper = paper_trainer_overrides(1)  # n_gpus only checks vLLM's tensor parallelism
        kw.update({k: paper[k] for k in PAPER_SFT_KEYS})
        init = dict(paper["model_init_kwargs"])
        if spec.lora_rank == 0:  # full fine-tuning: fp32 master weights, bf16 autocast
            init["dtype"] = "float32"
        kw["model_init_kwargs"] = init
    cfg = SFTConfig(**kw)
    step = cfg.train_batch_size * cfg.gradient_accumulation_steps * cfg.world_size
    check_step_batch(step, spec.batch_size, cfg.world_size, n_processes)
    return cfg


def run_sft(spec: SFTSpec, profile: str = "toy") -> Path:
    """Run ``spec`` unless its run is complete; the run directory either way. Its parent must
    be built (:func:`frpo.stages.rundir.model_of`; :func:`frpo.stages.sweep.run_stage` builds
    it first)."""
    if not isinstance(spec, SFTSpec):
        raise ValueError(f"run_sft needs an SFTSpec, got {type(spec).__name__}")
    backend = open_source(spec.source)
    mixed = [task for task, _ in spec.mix]
    check_tasks(
        backend,
        [spec.dataset, *mixed, *spec.replay_tasks] if spec.replay_share else [spec.dataset, *mixed],
    )
    if spec.track is not None:
        check_tasks(backend, spec.track.tasks)
    start_path = model_of(spec, profile, backend)
    return run_once(spec, profile, lambda tmp: _train(spec, backend, start_path, tmp))


def _train(spec: SFTSpec, backend, start_path: str, tmp: Path) -> dict | None:
    """Train on every process (:func:`frpo.stages.training.train_and_save`); the main process
    gets the training metrics, the data set's make-up and the last tracked values."""

    def build(tokenizer) -> Setup:
        hub = spec.source.kind == "hub"  # paper scale: SFTTrainer loads the model from its path
        model = None if hub and n_replay(spec) == 0 else load_model(start_path, source=spec.source)
        train = training_set(backend, spec, model, tokenizer)
        tracker = trajectory_callback(spec, backend, start_path, tokenizer)
        trainer = SFTTrainer(
            model=start_path if hub else model,
            args=build_sft_config(spec, tmp / TRAINER_DIR),
            train_dataset=train,
            processing_class=tokenizer,
            peft_config=lora_config(spec.lora_rank, spec.lora_alpha),
            callbacks=[] if tracker is None else [tracker],
        )
        made = {"frpo/n_train": len(train), "frpo/n_replay": n_replay(spec)}
        made.update({f"frpo/n_mix/{t}": n_added(spec, s) for t, s in spec.mix})
        return Setup(trainer, tracker, made)

    trained = train_and_save(spec, start_path, tmp, build)
    if trained is None:
        return None
    metrics, setup = trained
    if setup.tracker is not None:
        last = setup.tracker.rows[-1]
        metrics.update(
            {
                f"frpo/final_track/{k.removeprefix(TRACK)}": v
                for k, v in last.items()
                if k.startswith(TRACK)
            }
        )
    return metrics


def main(argv: list[str] | None = None) -> Path:
    return cli_main(argv, SFTSpec, run_sft)


if __name__ == "__main__":
    main(sys.argv[1:])
