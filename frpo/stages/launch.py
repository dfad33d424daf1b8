"""Launch commands for multi-GPU runs and the CLI every runner module shares.

A paper-profile run executes, for its spec saved as JSON::

    accelerate launch --config_file configs/accelerate/<n>gpu.yaml \
        -m frpo.stages.<module> --spec <spec.json> --profile paper

``launch_command`` returns that command (the paper profile's dry run prints it); ``plan`` also
writes the spec file. The trainer's group layout is what makes several processes exact (see
:mod:`frpo.trainer`): every process gets ``batch_size / n_gpus`` completions of whole or split
groups, and the FRPO coefficients are computed on the gathered batch.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from frpo.paths import runs_dir
from frpo.stages.rundir import write_json
from frpo.stages.spec import EvalSpec, RLSpec, SFTSpec, from_dict, run_name, to_dict

MODULES = {RLSpec: "frpo.stages.rlhf", SFTSpec: "frpo.stages.sft", EvalSpec: "frpo.stages.evaluate"}


def module_of(spec) -> str:
    """The ``frpo.stages`` module whose CLI runs ``spec``."""
    for cls, mod in MODULES.items():
        if isinstance(spec, cls):
            return mod
    raise ValueError(f"not a run spec: {type(spec).__name__}")


def launch_command(spec, spec_file: str | Path, n_gpus: int = 8, profile: str = "paper") -> str:
    """The shell command that runs ``spec`` (saved at ``spec_file``) on ``n_gpus`` GPUs."""
    if n_gpus < 1:
        raise ValueError(f"n_gpus must be >= 1, got {n_gpus}")
    if getattr(spec, "batch_size", n_gpus) % n_gpus:
        raise ValueError(f"batch_size {spec.batch_size} does not split over {n_gpus} GPUs")
    parts = ["accelerate", "launch", "--config_file", f"configs/accelerate/{n_gpus}gpu.yaml"]
    parts += ["-m", module_of(spec), "--spec", str(spec_file), "--profile", profile]
    return shlex.join(parts)


def plan(spec, profile: str = "paper", n_gpus: int = 8) -> dict:
    """Write ``spec`` to ``runs/<profile>/specs/<run_name>.json``; its file and command."""
    path = runs_dir(profile) / "specs" / f"{run_name(spec)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, to_dict(spec))
    return {
        "run": run_name(spec),
        "spec_file": str(path),
        "command": launch_command(spec, path, n_gpus, profile),
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
