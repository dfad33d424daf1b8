"""What a launched stage run needs: its command line, its processes, each one's share of a batch.

A runner module runs one spec file from the command line (:func:`cli_main`: ``python -m
frpo.stages.rlhf --spec spec.json --profile paper``, also under ``accelerate launch``, see
:mod:`frpo.stages.launch`). Under ``accelerate launch`` the step's batch is split over the
launch's processes (:func:`per_process_batch`), and the runners check that the library's batch
per step is the spec's (:func:`check_step_batch`).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from frpo.stages.spec import from_dict


def launched_gpus() -> int:
    """Processes of this launch: ``WORLD_SIZE`` under ``accelerate launch``/torchrun, else
    ``torch.cuda.device_count()``, else 1 (one CPU process: the paper path rehearsed on CPU,
    :mod:`frpo.harness.capability` switches off what needs a GPU)."""
    return int(os.environ.get("WORLD_SIZE") or 0) or torch.cuda.device_count() or 1


def launched_processes() -> int:
    """Processes of this launch: ``WORLD_SIZE`` under ``accelerate launch``/torchrun, else 1.

    This is the number TRL and transformers multiply the per-device batch by
    (``TrainingArguments.world_size``, the process group's size), so the runners divide a spec's
    ``batch_size`` by it (:func:`per_process_batch`).
    """
    n = int(os.environ.get("WORLD_SIZE") or 1)
    if n < 1:
        raise ValueError(f"WORLD_SIZE must be >= 1, got {n}")
    return n


def per_process_batch(batch_size: int, n_processes: int, what: str = "run") -> int:
    """``batch_size / n_processes``: each process's share of a step's batch.

    A spec's ``batch_size`` is the whole step (completions for RL, examples for SFT); TRL and
    transformers take a *per-device* batch and multiply it by the number of processes
    (GRPOConfig: ``generation_batch_size = per_device_train_batch_size * num_processes *
    steps_per_generation``; Trainer: ``per_device * grad_accum * world_size``). ValueError, naming
    the sizes that would work, when it does not divide.
    """
    if n_processes < 1:
        raise ValueError(f"the number of processes must be >= 1, got {n_processes}")
    if batch_size % n_processes:
        fits = [n for n in (1, 2, 4, 8, 16) if batch_size % n == 0]
        raise ValueError(
            f"{what}: batch_size {batch_size} does not split over {n_processes} processes (each "
            f"process takes batch_size / processes); use a batch_size that is a multiple of "
            f"{n_processes}, or launch {' or '.join(map(str, fits))} processes"
        )
    return batch_size // n_processes


def check_step_batch(got: int, batch_size: int, world_size: int, n_processes: int) -> None:
    """ValueError unless the library's batch per optimizer step (``got``) is the spec's."""
    if got != batch_size:
        raise ValueError(
            f"the trainer would take {got} examples a step, the spec asks for {batch_size} "
            f"(split over {n_processes} processes; the trainer sees {world_size}): run one "
            "process per GPU (`accelerate launch`, see frpo.stages.launch; for one GPU set "
            "CUDA_VISIBLE_DEVICES)"
        )


def cli_main(argv, spec_cls, runner):
    """``--spec file.json [--profile p]``: load the spec (it must be a ``spec_cls``) and run it
    with ``runner(spec, profile)``; its upstream run must be built (:func:`frpo.stages.rundir.
    model_of` names the command that builds it)."""
    parser = argparse.ArgumentParser(description=f"run one {spec_cls.__name__} from a JSON file")
    parser.add_argument("--spec", required=True, help="JSON file written by plan() or to_dict()")
    parser.add_argument("--profile", default="toy")
    args = parser.parse_args(argv)
    spec = from_dict(json.loads(Path(args.spec).read_text()))
    if not isinstance(spec, spec_cls):
        raise ValueError(f"{args.spec} holds a {type(spec).__name__}, not a {spec_cls.__name__}")
    path = runner(spec, args.profile)
    print(path)
    return path
