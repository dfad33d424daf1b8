"""Run any spec, or a list of specs, resuming: complete runs are skipped, never redone.

``run_stage(spec, profile) -> Path`` builds the run a spec reads its model from first (its
``parent`` or ``model``, recursively), then the spec's own with its stage's runner
(:data:`frpo.stages.spec.STAGES`); ``run_sweep(specs, profile)`` runs a list in order with a
progress bar. Because each run is written atomically and named by the hash of its spec
(:mod:`frpo.stages.rundir`), killing a sweep and starting it again redoes only the run that was
in flight.

CLI: ``python -m frpo.stages.sweep --specs specs.json [--profile toy]`` (a JSON list of specs).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from frpo.stages import benchmarks, evaluate, rlhf, sft
from frpo.stages.spec import STAGES, from_dict, stage_of, upstream_of

_MODULES = {m.__name__: m for m in (rlhf, sft, evaluate, benchmarks)}
RUNNERS: dict[str, Callable[..., Path]] = {
    name: getattr(_MODULES[stage.module], stage.runner) for name, stage in STAGES.items()
}
"""Stage name -> its runner, ``runner(spec, profile) -> Path``, as :data:`STAGES` names it."""


def run_stage(spec, profile: str = "toy") -> Path:
    """The finished run directory of ``spec`` (running it, and its upstream runs, when needed)."""
    stage = stage_of(spec)
    upstream = upstream_of(spec)
    if upstream is not None:
        run_stage(upstream, profile)
    return RUNNERS[stage.name](spec, profile)


def run_sweep(specs: list, profile: str = "toy", progress: bool = True) -> list[Path]:
    """Run every spec in order (skipping complete ones); their directories."""
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
