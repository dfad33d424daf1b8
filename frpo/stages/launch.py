"""Launch commands for multi-GPU runs.

A paper-profile run executes, for its spec saved as JSON::

    accelerate launch --config_file configs/accelerate/<file>.yaml \
        -m frpo.stages.<module> --spec <spec.json> --profile paper

with ``<module>`` its stage's runner module (:data:`frpo.stages.spec.STAGES`) and ``<file>``
the accelerate config with ``num_processes == n_gpus`` and the asked DeepSpeed ZeRO stage
(:func:`accelerate_config`; shipped: ``1gpu`` (ZeRO-2), ``4gpu_zero2``, ``8gpu_zero2``,
``8gpu_zero3``). ``launch_command`` returns that command (the paper profile's dry
run prints it); ``plan`` also writes the spec file.

CLI: ``python -m frpo.stages.launch --specs specs.json [--profile paper] [--n-gpus 8] [--zero 2]``
plans every spec of a JSON file (one spec, or a list as ``frpo.stages.sweep`` reads) and prints
one ``accelerate launch`` command per run; it runs nothing. A run's upstream run (its parent)
must be built before it is launched: list it first. The trainer's group layout is what makes
several processes exact (see :mod:`frpo.trainer`): every process gets ``batch_size / n_gpus``
completions of whole or split groups (:mod:`frpo.stages.processes`), and the FRPO coefficients
are computed on the gathered batch.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import yaml

from frpo.paths import repo_root, runs_dir
from frpo.stages.processes import per_process_batch
from frpo.stages.rundir import write_json
from frpo.stages.spec import BenchSpec, from_dict, run_name, stage_of, to_dict

CONFIG_DIR = "configs/accelerate"  # relative to the repository root, where commands run


def accelerate_configs(root: Path | None = None) -> dict[tuple[int, int], str]:
    """``{(num_processes, zero_stage): "configs/accelerate/<file>.yaml"}`` of the shipped files.

    Read from the files themselves (``num_processes``, ``deepspeed_config.zero_stage``), so a
    file name can never disagree with what it launches.
    """
    out: dict[tuple[int, int], str] = {}
    for path in sorted(((root or repo_root()) / CONFIG_DIR).glob("*.yaml")):
        cfg = yaml.safe_load(path.read_text()) or {}
        zero = (cfg.get("deepspeed_config") or {}).get("zero_stage")
        if zero is None:
            raise ValueError(f"{path}: no deepspeed_config.zero_stage (every config is DeepSpeed)")
        out[(int(cfg.get("num_processes", 1)), int(zero))] = f"{CONFIG_DIR}/{path.name}"
    return out


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
        parts = [
            "python",
            "-m",
            stage_of(spec).module,
            "--spec",
            str(spec_file),
            "--profile",
            profile,
        ]
        return shlex.join(parts)
    if n_gpus < 1:
        raise ValueError(f"n_gpus must be >= 1, got {n_gpus}")
    if hasattr(spec, "batch_size"):
        per_process_batch(spec.batch_size, n_gpus, run_name(spec))
    config = accelerate_config(n_gpus, zero)
    parts = ["accelerate", "launch", "--config_file", config]
    parts += ["-m", stage_of(spec).module, "--spec", str(spec_file), "--profile", profile]
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


def main(argv: list[str] | None = None) -> list[dict]:
    """Plan every spec of ``--specs`` (write its spec file) and print its launch command."""
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
    main(sys.argv[1:])
