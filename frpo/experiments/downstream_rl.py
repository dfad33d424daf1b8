"""Notebook 07: downstream RL for helpfulness, the helpfulness-safety trade-off (App. B.3, Fig. 10).

:func:`run` trains (or reuses) each stage-1 model of ``methods`` and, from each, one tracked
downstream GRPO run on the helpfulness task (:func:`frpo.recipes.downstream_rl_spec`);
:class:`DownstreamRL` reads the start and end of every run (:mod:`frpo.analysis.downstream_rl`).
Not a scoreboard claim: the numbers go to ``metrics.json`` only.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from frpo.analysis import downstream as ds
from frpo.analysis import downstream_rl as drl
from frpo.experiments import evidence
from frpo.experiments.runs import runner
from frpo.experiments.specs import Stage1Block
from frpo.recipes import downstream_rl_spec, sweep_lam

SAFETY = ds.TRACK_SAFETY
HELP = "frpo/track/reward/helpful"
REFUSAL = "frpo/exact/harmful/refusal_mass"
COMPLY = "frpo/exact/borderline/comply_mass"
VALUE_KEYS = (
    f"{SAFETY}/end",
    f"{HELP}/end",
    f"{SAFETY}/change",
    f"{HELP}/change",
    f"{ds.TRACK_KL}/end",
)
"""The per-run numbers averaged per method (mean and t-interval over seeds)."""
EXACT_KEYS = (f"{REFUSAL}/start", f"{REFUSAL}/end", f"{COMPLY}/start", f"{COMPLY}/end")


@dataclasses.dataclass
class DownstreamRL:
    """The downstream runs, read: ``traj`` (every trajectory row), ``run_rows`` (start, end and
    change of safety, helpfulness and KL per run) and ``summary`` (per method, with ``pareto``)."""

    methods: list[str]
    seeds: list[int]
    down_dirs: dict
    traj: pd.DataFrame
    run_rows: list[dict]
    summary: pd.DataFrame
    bench_models: dict = dataclasses.field(default_factory=dict)
    """``{(stage, method, seed): run spec}``: every stage-1 model ("stage-1") and its
    downstream-RL model ("after RL"), for the paper's safety benchmarks
    (:func:`frpo.stages.benchmarks.benchmark_frame`)."""

    def front(self) -> list[str]:
        """The methods on the Pareto front of mean final (helpfulness, safety)."""
        return list(self.summary.method[self.summary.pareto])

    def trend(self, column: str, rows: Sequence[dict] | None = None) -> float:
        """Spearman correlation of ``column`` with lam over the runs (GRPO: lam = inf)."""
        rows = self.run_rows if rows is None else rows
        return drl.lam_trend([sweep_lam(r["method"]) for r in rows], [r[column] for r in rows])

    def has_exact(self) -> bool:
        return REFUSAL in self.traj.columns and COMPLY in self.traj.columns

    def exact_rows(self) -> list[dict]:
        """Start, end and change of the exact refusal and compliance masses per run."""
        return [
            {"method": m, "seed": s, **drl.start_end(ds.read_trajectory(p), [REFUSAL, COMPLY])}
            for (m, s), p in self.down_dirs.items()
        ]

    def exact_summary(self) -> pd.DataFrame | None:
        """Per method, the exact masses at start and end (None when the world has none)."""
        if not self.has_exact():
            return None
        return pd.DataFrame(drl.per_method(self.exact_rows(), EXACT_KEYS))

    def record(self, run_dir: str | Path, t_start: float) -> dict:
        """Write ``metrics.json`` into ``run_dir``; the metrics."""
        exact = self.exact_summary()
        metrics = {
            "methods": list(self.methods),
            "seeds": list(self.seeds),
            "per_method": self.summary.to_dict("records"),
            "per_run": self.run_rows,
            "pareto_front": self.front(),
            "spearman_lam_safety_change": self.trend(f"{SAFETY}/change"),
            "spearman_lam_help_change": self.trend(f"{HELP}/change"),
            "exact": None if exact is None else exact.to_dict("records"),
            "spearman_lam_exact_refusal_change": (
                self.trend(f"{REFUSAL}/change", self.exact_rows()) if self.has_exact() else math.nan
            ),
            "wall_seconds": time.perf_counter() - t_start,
        }
        evidence.write_metrics(run_dir, metrics)
        return metrics


def run(
    profile: str,
    run_dir: str | Path,
    block: Stage1Block,
    *,
    seeds: Sequence[int],
    methods: Sequence[str],
    rl: dict,
    track: dict,
) -> DownstreamRL:
    """Build and run (or reuse) the stage-1 runs, then one downstream RL run from each."""
    for need in ("safety", "helpful"):
        if need not in track["tasks"]:
            raise ValueError(f"track.tasks must include {need!r} (the two axes of Fig. 10)")
    parents = block.specs(methods, seeds)
    downs = {k: downstream_rl_spec(p, rl, k[1], track) for k, p in parents.items()}
    go = runner(profile, run_dir)
    go(parents, "stage-1 runs")
    down_dirs = go(downs, "downstream RL runs")
    run_rows = [
        {
            "method": m,
            "seed": s,
            **drl.start_end(ds.read_trajectory(p), [SAFETY, HELP, ds.TRACK_KL]),
        }
        for (m, s), p in down_dirs.items()
    ]
    summary = pd.DataFrame(drl.per_method(run_rows, VALUE_KEYS))
    front = drl.pareto_front(
        {r["method"]: (r[f"{HELP}/end"], r[f"{SAFETY}/end"]) for r in summary.to_dict("records")}
    )
    summary["pareto"] = summary.method.isin(front)
    return DownstreamRL(
        methods=list(methods),
        seeds=list(seeds),
        down_dirs=down_dirs,
        traj=ds.trajectory_frame(down_dirs, ("method", "seed")),
        run_rows=run_rows,
        summary=summary,
        bench_models={("stage-1", m, s): p for (m, s), p in parents.items()}
        | {("after RL", m, s): d for (m, s), d in downs.items()},
    )
