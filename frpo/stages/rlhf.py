"""RL runner: stage-1 RLHF (GRPO, FRPO, GRPO+SAM) and downstream RL (a ``parent`` + tracking).

``run_rl(spec, profile) -> Path`` trains with TRL on the spec's tasks, then writes to its run
directory (:mod:`frpo.stages.rundir`):

- ``model/``: the trained model (LoRA merged) and tokenizer;
- ``curves.csv`` / ``curves.json``: TRL's log history (reward per reward function, reward std,
  KL, entropy, ``frpo/...`` metrics), one row per optimizer step;
- ``trajectory.csv`` / ``.json``: the tracked stage-1 rewards and KLs (when ``spec.track``);
- ``metrics.json``: final per-token KL to pi_ref and to the starting model, and the mean reward
  per task, on ``n_eval`` fixed held-out prompts per task (answers sampled with a fixed seed);
  plus the last logged training values under ``frpo/train/...``.

Under ``accelerate launch`` every process trains, and the main process alone saves the model and
evaluates it, with no collective after the others have returned. Training ends by keeping its
result beside the run (:func:`trained_path`), so an evaluation that fails never loses the trained
model: the next attempt evaluates it without training again.

CLI: ``python -m frpo.stages.rlhf --spec spec.json [--profile toy]`` (also under
``accelerate launch``, see :mod:`frpo.stages.launch`).
"""

from __future__ import annotations

import functools
import gc
import os
import shutil
import sys
from pathlib import Path

import torch
from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer

from frpo.harness.overrides import paper_trainer_overrides
from frpo.rewards.safety import local_scoring
from frpo.splits import HELDOUT, TRAIN
from frpo.stages.backend import check_columns, check_tasks, load_model, load_tokenizer
from frpo.stages.processes import (
    check_step_batch,
    cli_main,
    launched_gpus,
    launched_processes,
    per_process_batch,
)
from frpo.stages.rundir import (
    MODEL_DIR,
    is_complete,
    model_of,
    read_json,
    run_once,
    run_path,
    write_json,
)
from frpo.stages.sam import SAMGRPOTrainer
from frpo.stages.sampling import Samples, kl_to, mean_rewards, sample
from frpo.stages.sources import open_source
from frpo.stages.spec import RLSpec
from frpo.stages.training import (
    TRAINER_DIR,
    Setup,
    lora_config,
    train_and_save,
    trainer_kwargs,
    trajectory_callback,
)
from frpo.trainer import FRPOConfig, FRPOTrainer

EVAL_SEED = 4321  # sampling seed of the final held-out estimates (fixed across runs)


def build_rl_config(
    spec: RLSpec, out_dir: Path, n_gpus: int | None = None, n_processes: int | None = None
):
    """The GRPOConfig (or FRPOConfig) of ``spec``, built without training.

    ``spec.batch_size`` completions make one optimizer step across all processes: each of the
    ``n_processes`` processes (default: this launch's, :func:`frpo.stages.launch.
    launched_processes`) takes ``batch_size / n_processes`` (TRL's per-device batch; TRL's
    generation batch is ``per_device_train_batch_size * num_processes * steps_per_generation``,
    here ``batch_size``). A batch that does not divide is a ValueError.

    A ``hub`` source is paper scale: the config is updated with
    :func:`frpo.harness.overrides.paper_trainer_overrides` for ``n_gpus`` GPUs (default: this
    launch's, :func:`frpo.stages.launch.launched_gpus`), i.e. colocated vLLM generation, bf16,
    flash-attention 2 where it imports (else SDPA) and gradient checkpointing, and with
    ``vllm_importance_sampling_correction=False`` (FRPOTrainer refuses the correction: its loss
    has its own token ratio, see :mod:`frpo.trainer`; GRPO gets the same setting so that both
    methods sample and weight alike). ``toy`` and ``files`` sources get no override.
    """
    n_processes = launched_processes() if n_processes is None else n_processes
    kw = trainer_kwargs(spec, out_dir)
    kw.update(
        per_device_train_batch_size=per_process_batch(spec.batch_size, n_processes, "RL run"),
        gradient_accumulation_steps=1,
        steps_per_generation=1,
        num_generations=spec.num_generations,
        max_completion_length=spec.max_completion_length,
        temperature=spec.temperature,
        beta=spec.beta,
        scale_rewards=spec.scale_rewards,
        log_completions=False,
    )
    if spec.source.kind == "hub":
        kw.update(paper_trainer_overrides(launched_gpus() if n_gpus is None else n_gpus))
        kw["vllm_importance_sampling_correction"] = False
    if spec.method == "frpo":
        cfg = FRPOConfig(lam=spec.lam, baseline=spec.baseline, jackknife=spec.jackknife, **kw)
    else:
        cfg = GRPOConfig(**kw)
    check_step_batch(cfg.generation_batch_size, spec.batch_size, cfg.world_size, n_processes)
    return cfg


def trainer_class(spec: RLSpec):
    """GRPOTrainer, FRPOTrainer or SAMGRPOTrainer (with its rho bound)."""
    if spec.method == "frpo":
        return FRPOTrainer
    if spec.method == "grpo_sam":
        return functools.partial(SAMGRPOTrainer, sam_rho=spec.sam_rho)
    return GRPOTrainer


def training_prompts(backend, spec: RLSpec):
    """The spec's tasks' training prompts, concatenated (missing columns filled with None)."""
    rows = []
    for task in spec.tasks:
        data = backend.dataset(task, TRAIN, spec.n_prompts)
        check_columns(data, ["prompt"], f"RL dataset of task {task!r}")
        rows += data.to_list()
    keys = {k for r in rows for k in r}
    return Dataset.from_list([{k: r.get(k) for k in sorted(keys)} for r in rows])


def task_rewards(backend, tasks) -> list:
    """The reward functions of ``tasks``, each once (a function two tasks share counts once)."""
    funcs, seen = [], set()
    for task in tasks:
        for f in backend.reward_funcs(task):
            if id(f) not in seen:
                seen.add(id(f))
                funcs.append(f)
    return funcs


def held_out_metrics(backend, model, start, ref, tokenizer, tasks, n, max_new, prefix):
    """Mean reward per task and per-token KL(model || start), KL(model || ref) on held-out prompts.

    The prompts are the first ``n`` of each task's test split; answers are sampled with
    ``EVAL_SEED`` so equal models give equal numbers.
    """
    out: dict[str, float] = {}
    ids_p, ids_c = [], []
    for task in tasks:
        data = backend.dataset(task, HELDOUT, n)
        samples = sample(model, tokenizer, data["prompt"], max_new, seed=EVAL_SEED)
        for name, value in mean_rewards(backend.reward_funcs(task), data, samples).items():
            out[f"{prefix}/reward/{task}" + ("" if name == "total" else f"/{name}")] = value
        ids_p += samples.prompt_ids
        ids_c += samples.completion_ids
    pooled = Samples(ids_p, ids_c, [])
    out[f"{prefix}/kl_ref"] = kl_to(model, ref, pooled)
    out[f"{prefix}/kl_start"] = (
        kl_to(model, start, pooled) if start is not ref else out[f"{prefix}/kl_ref"]
    )
    return out


TRAINED_METRICS = "train_metrics.json"
"""Written last into a kept trained model's directory (:func:`trained_path`)."""


def trained_path(spec: RLSpec, profile: str) -> Path:
    """Where the trained model of ``spec``'s run is kept until the run is complete:
    ``.trained-<run_name>`` beside the run directory (:func:`frpo.stages.rundir.run_path`).

    Training ends by linking the model, curves and trajectory there (built under a temporary
    name, renamed into place, ``train_metrics.json`` inside), before the held-out evaluation
    starts. An evaluation that fails thus leaves the trained model in place (the run directory
    being built is deleted, this one is not), and the next attempt evaluates it instead of
    training again. It is removed once the run is complete.
    """
    final = run_path(spec, profile)
    return final.with_name(f".trained-{final.name}")


def is_trained(path: Path) -> bool:
    """A kept training result counts only once its ``train_metrics.json`` is there."""
    return (Path(path) / TRAINED_METRICS).is_file()


def run_rl(spec: RLSpec, profile: str = "toy") -> Path:
    """Run ``spec`` unless its run is complete; the run directory either way.

    Under ``accelerate launch`` every process trains; the main process alone saves the model
    and evaluates it (:func:`_run`). A downstream run's parent must be built
    (:func:`frpo.stages.rundir.model_of`; :func:`frpo.stages.sweep.run_stage` builds it first).
    """
    if not isinstance(spec, RLSpec):
        raise ValueError(f"run_rl needs an RLSpec, got {type(spec).__name__}")
    backend = open_source(spec.source)
    check_tasks(backend, spec.tasks)
    if spec.track is not None:
        check_tasks(backend, spec.track.tasks)
    start_path = model_of(spec, profile, backend)
    kept = trained_path(spec, profile)
    path = run_once(spec, profile, lambda tmp: _run(spec, backend, start_path, tmp, kept))
    if is_complete(path) and _main_process():
        shutil.rmtree(kept, ignore_errors=True)
    return path


def _main_process() -> bool:
    """Rank 0 of a launch (``RANK`` unset or 0): the process that writes the run directory, as
    :func:`frpo.stages.rundir.run_once` decides."""
    return int(os.environ.get("RANK", "0")) == 0


def _run(spec: RLSpec, backend, start_path: str, tmp: Path, kept: Path) -> dict:
    """Train into ``tmp`` and keep the result at ``kept`` (unless a previous attempt did), then
    evaluate on the main process; the other processes return ``{}`` after training."""
    if is_trained(kept):  # an earlier attempt trained, then its evaluation failed
        if not _main_process():
            return {}
        _link_tree(kept, tmp, skip={TRAINED_METRICS})
    else:
        trained = _train(spec, backend, start_path, tmp)
        if trained is None:  # not the main process: it trained along and wrote nothing
            return {}
        _keep(tmp, kept, trained)
    gc.collect()  # the trainer (policy, optimizer, generation engine) is gone: free its memory
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    metrics = read_json(kept / TRAINED_METRICS)
    try:
        metrics.update(_evaluate(spec, backend, start_path, tmp))
    except Exception as exc:
        exc.add_note(
            f"the trained model is kept in {kept}: running the same spec again evaluates it "
            "without training"
        )
        raise
    return metrics


def _keep(tmp: Path, kept: Path, train_metrics: dict) -> None:
    """Hard-link ``tmp``'s training artefacts to ``kept`` (built aside, renamed into place)."""
    partial = kept.with_name(kept.name + ".partial")  # only rank 0, under the run's lock, builds
    shutil.rmtree(partial, ignore_errors=True)
    _link_tree(tmp, partial, skip={"spec.json"})
    write_json(partial / TRAINED_METRICS, train_metrics)
    shutil.rmtree(kept, ignore_errors=True)
    os.rename(partial, kept)


def _link_tree(src: Path, dst: Path, skip: set[str]) -> None:
    """Every file under ``src`` (but the top-level names in ``skip``) hard-linked under ``dst``
    (copied where the file system has no hard links): no second copy of a model on disk."""

    def link(a, b):
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    dst.mkdir(parents=True, exist_ok=True)
    for item in sorted(Path(src).iterdir()):
        if item.name in skip:
            continue
        if item.is_dir():
            shutil.copytree(item, dst / item.name, copy_function=link, dirs_exist_ok=True)
        else:
            link(item, dst / item.name)


def _train(spec: RLSpec, backend, start_path: str, tmp: Path) -> dict | None:
    """Train on every process (:func:`frpo.stages.training.train_and_save`); the main process
    writes ``model/``, curves and trajectory to ``tmp`` and gets the training metrics, the
    others get None."""

    def build(tokenizer) -> Setup:
        # paper scale: TRL loads the policy (and pi_ref for the KL) from the path itself, with
        # the config's model_init_kwargs (bf16, flash-attention 2 or SDPA); a loaded model
        # ignores them
        model = start_path if spec.source.kind == "hub" else load_model(start_path)
        tracker = trajectory_callback(spec, backend, start_path, tokenizer)
        trainer = trainer_class(spec)(
            model=model,
            reward_funcs=task_rewards(backend, spec.tasks),
            args=build_rl_config(spec, tmp / TRAINER_DIR),
            train_dataset=training_prompts(backend, spec),
            processing_class=tokenizer,
            peft_config=lora_config(spec.lora_rank, spec.lora_alpha),
            callbacks=[] if tracker is None else [tracker],
        )
        return Setup(trainer, tracker)

    trained = train_and_save(spec, start_path, tmp, build)
    return None if trained is None else trained[0]


def _evaluate(spec: RLSpec, backend, start_path: str, tmp: Path) -> dict:
    """Held-out rewards and KLs of the model saved in ``tmp/model``, on this process alone.

    The other processes of a launch have returned by now, so nothing here may wait for them:
    rewards that gather onto rank 0 score locally (:func:`frpo.rewards.safety.local_scoring`).
    """
    tokenizer = load_tokenizer(start_path)
    final = load_model(str(tmp / MODEL_DIR), source=spec.source).eval()
    ref_path = str(backend.base_model_path())
    ref = load_model(ref_path, source=spec.source)
    start = ref if spec.parent is None else load_model(start_path, source=spec.source)
    with local_scoring():
        return held_out_metrics(
            backend,
            final,
            start,
            ref,
            tokenizer,
            spec.tasks,
            spec.n_eval,
            spec.max_completion_length,
            "frpo/final",
        )


def main(argv: list[str] | None = None) -> Path:
    return cli_main(argv, RLSpec, run_rl)


if __name__ == "__main__":
    main(sys.argv[1:])
