"""Run any spec, or a list of specs, resuming: complete runs are skipped, never redone.

``run_stage(spec, profile) -> Path`` dispatches on the spec's type; ``run_sweep(specs, profile)``
runs a list in order with a progress bar. Because each run is written atomically and named by the
hash of its spec (:mod:`frpo.stages.rundir`), killing a sweep and starting it again redoes only the
run that was in flight.

CLI: ``python -m frpo.stages.sweep --specs specs.json [--profile toy]`` (a JSON list of specs).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from frpo.stages.spec import BenchSpec, EvalSpec, RLSpec, SFTSpec, from_dict


def run_stage(spec, profile: str = "toy") -> Path:
    """The finished run directory of ``spec`` (running it, and its parents, when needed)."""
    if isinstance(spec, RLSpec):
        from frpo.stages.rlhf import run_rl

        return run_rl(spec, profile)
    if isinstance(spec, SFTSpec):
        from frpo.stages.sft import run_sft

        return run_sft(spec, profile)
    if isinstance(spec, EvalSpec):
        from frpo.stages.evaluate import run_eval

        return run_eval(spec, profile)
    if isinstance(spec, BenchSpec):
        from frpo.stages.benchmarks import run_bench

        return run_bench(spec, profile)
    raise ValueError(f"not a run spec: {type(spec).__name__}")


def run_sweep(specs: list, profile: str = "toy", progress: bool = True) -> list[Path]:
    """Run every spec in order (skipping complete ones); their directories."""
    from tqdm.auto import tqdm

    return [run_stage(s, profile) for s in tqdm(specs, desc="runs", disable=not progress)]


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(prog="python -m frpo.stages.sweep", description=__doc__)
    parser.add_argument("--specs", required=True, help="JSON file holding a list of specs")
    parser.add_argument("--profile", default="toy")
    args = parser.parse_args(argv)
    specs = [from_dict(d) for d in json.loads(Path(args.specs).read_text())]
    paths = run_sweep(specs, args.profile)
    for p in paths:
        print(p)
    return paths


if __name__ == "__main__":
    main(sys.argv[1:])
