"""Launch commands for multi-GPU runs and the CLI every runner module shares.

A paper-profile run executes, for its spec saved as JSON::

    accelerate launch --config_file configs/accelerate/<file>.yaml \
        -m frpo.stages.<module> --spec <spec.json> --profile paper

where ``<file>`` is the accelerate config with ``num_processes == n_gpus`` and the asked DeepSpeed
ZeRO stage (:func:`accelerate_config`; shipped: ``1gpu`` (ZeRO-2), ``4gpu_zero2``,
``8gpu_zero2``, ``8gpu_zero3``). ``launch_command`` returns that command (the paper profile's dry
run prints it); ``plan`` also writes the spec file.

CLI: ``python -m frpo.stages.launch --specs specs.json [--profile paper] [--n-gpus 8] [--zero 2]``
plans every spec of a JSON file (one spec, or a list as ``frpo.stages.sweep`` reads) and prints
one ``accelerate launch`` command per run; it runs nothing. The trainer's group layout is what makes
several processes exact (see :mod:`frpo.trainer`): every process gets ``batch_size / n_gpus``
completions of whole or split groups, and the FRPO coefficients are computed on the gathered batch.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from frpo.paths import repo_root, runs_dir
from frpo.stages.rundir import write_json
from frpo.stages.spec import BenchSpec, EvalSpec, RLSpec, SFTSpec, from_dict, run_name, to_dict

MODULES = {
    RLSpec: "frpo.stages.rlhf",
    SFTSpec: "frpo.stages.sft",
    EvalSpec: "frpo.stages.evaluate",
    BenchSpec: "frpo.stages.benchmarks",
}


def module_of(spec) -> str:
    """The ``frpo.stages`` module whose CLI runs ``spec``."""
    for cls, mod in MODULES.items():
        if isinstance(spec, cls):
            return mod
    raise ValueError(f"not a run spec: {type(spec).__name__}")


CONFIG_DIR = "configs/accelerate"  # relative to the repository root, where commands run


def accelerate_configs(root: Path | None = None) -> dict[tuple[int, int], str]:
    """``{(num_processes, zero_stage): "configs/accelerate/<file>.yaml"}`` of the shipped files.

    Read from the files themselves (``num_processes``, ``deepspeed_config.zero_stage``), so a
    file name can never disagree with what it launches.
    """
    import yaml

    out: dict[tuple[int, int], str] = {}
    for path in sorted(((root or repo_root()) / CONFIG_DIR).glob("*.yaml")):
        cfg = yaml.safe_load(path.read_text()) or {}
        zero = (cfg.get("deepspeed_config") or {}).get("zero_stage")
        if zero is None:
            raise ValueError(f"{path}: no deepspeed_config.zero_stage (every config is DeepSpeed)")
        out[(int(cfg.get("num_processes", 1)), int(zero))] = f"{CONFIG_DIR}/{path.name}"
    return out


def launched_gpus() -> int:
    """Processes of this launch: ``WORLD_SIZE`` under ``accelerate launch``/torchrun, else
    ``torch.cuda.device_count()``, else 1 (one CPU process: the paper path rehearsed on CPU,
    :mod:`frpo.harness.capability` switches off what needs a GPU)."""
    import os

    import torch

    return int(os.environ.get("WORLD_SIZE") or 0) or torch.cuda.device_count() or 1


def launched_processes() -> int:
    """Processes of this launch: ``WORLD_SIZE`` under ``accelerate launch``/torchrun, else 1.

    This is the number TRL and transformers multiply the per-device batch by
    (``TrainingArguments.world_size``, the process group's size), so the runners divide a spec's
    ``batch_size`` by it (:func:`per_process_batch`).
    """
    import os

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


def accelerate_config(n_gpus: int, zero: int = 2, root: Path | None = None) -> str:
    """The accelerate config (relative path) for ``n_gpus`` processes at ZeRO stage ``zero``.

    ValueError, listing the shipped (GPUs, ZeRO stage) pairs, when no file matches.
    """
    if n_gpus < 1:
        raise ValueError(f"n_gpus must be >= 1, got {n_gpus}")
    if zero not in (2, 3):
        raise ValueError(f"zero must be 2 or 3 (DeepSpeed ZeRO stage), got {zero!r}")
    known = accelerate_configs(root)
    if (n_gpus, zero) not in known:
        have = ", ".join(f"{n} GPU(s) ZeRO-{z}: {f}" for (n, z), f in sorted(known.items()))
        raise ValueError(
            f"no accelerate config for {n_gpus} GPU(s) at ZeRO-{zero}; available: {have} "
            f"(add a file to {CONFIG_DIR}/ for another layout)"
        )
    return known[(n_gpus, zero)]


def launch_command(
    spec, spec_file: str | Path, n_gpus: int = 8, profile: str = "paper", zero: int = 2
) -> str:
    """The shell command that runs ``spec`` (saved at ``spec_file``) on ``n_gpus`` GPUs with
    DeepSpeed ZeRO stage ``zero`` (2, the paper's, by default; 3 where memory is short).

    A :class:`BenchSpec` runs in one plain process (``python -m frpo.stages.benchmarks``):
    lm-eval and EvalPlus start their own vLLM engines on the GPUs."""
    if isinstance(spec, BenchSpec):
        parts = ["python", "-m", module_of(spec), "--spec", str(spec_file), "--profile", profile]
        return shlex.join(parts)
    if n_gpus < 1:
        raise ValueError(f"n_gpus must be >= 1, got {n_gpus}")
    if hasattr(spec, "batch_size"):
        per_process_batch(spec.batch_size, n_gpus, run_name(spec))
    config = accelerate_config(n_gpus, zero)
    parts = ["accelerate", "launch", "--config_file", config]
    parts += ["-m", module_of(spec), "--spec", str(spec_file), "--profile", profile]
    return shlex.join(parts)


def plan(spec, profile: str = "paper", n_gpus: int = 8, zero: int = 2) -> dict:
    """Write ``spec`` to ``runs/<profile>/specs/<run_name>.json``; its file and command."""
    path = runs_dir(profile) / "specs" / f"{run_name(spec)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, to_dict(spec))
    return {
        "run": run_name(spec),
        "spec_file": str(path),
        "command": launch_command(spec, path, n_gpus, profile, zero),
    }


def cli_main(argv, spec_cls, runner):
    """``--spec file.json [--profile p]``: load the spec (it must be a ``spec_cls``) and run it."""
    import json

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


def main(argv: list[str] | None = None) -> list[dict]:
    """Plan every spec of ``--specs`` (write its spec file) and print its launch command."""
    import json

    parser = argparse.ArgumentParser(
        prog="python -m frpo.stages.launch",
        description="write spec files and print the accelerate launch command of each run",
    )
    parser.add_argument("--specs", required=True, help="JSON file: one spec or a list of specs")
    parser.add_argument("--profile", default="paper")
    parser.add_argument("--n-gpus", type=int, default=8)
    parser.add_argument("--zero", type=int, default=2, choices=(2, 3))
    args = parser.parse_args(argv)
    data = json.loads(Path(args.specs).read_text())
    specs = [from_dict(d) for d in (data if isinstance(data, list) else [data])]
    plans = [plan(s, args.profile, args.n_gpus, args.zero) for s in specs]
    for p in plans:
        print(p["command"])
    return plans


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
