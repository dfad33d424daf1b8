"""Notebook 05: downstream SFT of every stage-1 model (Sec. 5.1; Figs. 3, 4, 7, 12; Table 1; C2-C4).

:func:`run` builds and runs (or reuses) the stage-1 runs, one tracked SFT run per (method,
dataset, seed), the SFT at a much larger learning rate (Fig. 12) and the evaluations of GRPO and
FRPO(lam_main) before and after SFT; :class:`DownstreamSFT` reads them:

- C2 (:meth:`DownstreamSFT.c2`): FRPO(lam_main) minus GRPO in kept refusal at the matched KL,
  per dataset, over ``main_seeds`` (:func:`frpo.experiments.matched.compare_primary`: the exact
  refusal mass on harmful requests where the world has it, the sampled safety reward beside it;
  the exact unsafe mass as a further check);
- C3 (:meth:`DownstreamSFT.c3`): FRPO(lam_main) minus GRPO in the downstream task score after SFT
  on that task, paired over ``main_seeds``;
- C4 (:meth:`DownstreamSFT.c4`): the lam that keeps most safety at the common KL of every
  method over the sweep's ``seeds``, with a bootstrap interval over seeds
  (:func:`frpo.analysis.downstream.best_lam_interval`), against the Taylor range
  lam* = std / sqrt(2 rho) (Remark 3.3).

The lam sweep (every method) runs at ``seeds``; GRPO and FRPO(lam_main), whose comparison is the
headline, at ``main_seeds`` as well (the power analysis of :mod:`frpo.power`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from frpo.analysis import downstream as ds
from frpo.experiments import evidence, matched
from frpo.experiments.runs import runner
from frpo.experiments.specs import Stage1Block, eval_specs, sft_specs
from frpo.recipes import method_key, sweep_methods
from frpo.stats import paired_difference

UNSAFE = "frpo/exact/harmful/unsafe_mass"
"""The toy world's exact unsafe mass on harmful prompts (lower is safer; no sampling noise)."""
EXACT_MASSES = ("frpo/exact/harmful/refusal_mass", UNSAFE)
TABLE1 = {
    "gsm8k acc": ds.TASK_SCORE["gsm8k"],
    "alpaca help": ds.TASK_SCORE["alpaca"],
    "refusal rate": "frpo/eval/safety/refusal_rate",
    "harmfulness": "frpo/eval/safety/harmfulness",
}
"""Table 1's columns: label -> evaluation metric."""
CLAIM_DATASETS = ("alpaca", "gsm8k")
"""Datasets whose C2 gap is claim evidence (``C2.<dataset>``)."""


def main_method(lam_main: float) -> str:
    return method_key("frpo", lam_main)


@dataclasses.dataclass
class DownstreamSFT:
    """The runs of notebook 05 (run directories keyed like their specs), read on demand."""

    methods: list[str]
    main: str
    lam_main: float
    seeds: list[int]
    """The lam sweep's seeds (every method; C4)."""
    main_seeds: list[int]
    """GRPO's and FRPO(lam_main)'s seeds (C2, C3, Table 1)."""
    datasets: list[str]
    high_dataset: str
    parent_dirs: dict
    sft_dirs: dict
    high_dirs: dict
    before_dirs: dict
    after_dirs: dict
    high_eval_dirs: dict
    stage1_std: float
    traj: pd.DataFrame
    bench_models: dict = dataclasses.field(default_factory=dict)
    """``{(stage, method, seed): run spec}``: GRPO and FRPO(lam_main) at ``main_seeds``, before
    ("stage-1") and after the C3 dataset's SFT ("after <dataset>"), for the paper's Table 1 and
    Figs. 4 and 7 benchmarks (:func:`frpo.stages.benchmarks.benchmark_frame`)."""

    def _pair_runs(self, d: str) -> tuple[list, list]:
        return (
            [self.sft_dirs[self.main, d, s] for s in self.main_seeds],
            [self.sft_dirs["grpo", d, s] for s in self.main_seeds],
        )

    def c2(self) -> dict[str, dict]:
        """Per dataset, FRPO(lam_main) against GRPO at the matched KL over ``main_seeds``
        (:func:`matched.compare_primary`: ``primary``, ``secondary`` and the metric ``y``)."""
        return {d: matched.compare_primary(*self._pair_runs(d)) for d in self.datasets}

    def c2_exact(self) -> dict[str, tuple]:
        """The C2 reading of the exact unsafe mass per dataset (empty when the world has none)."""
        if UNSAFE not in self.traj.columns:
            return {}
        return {d: matched.compare(*self._pair_runs(d), UNSAFE)["gap"] for d in self.datasets}

    def c2_table(self, c2: dict[str, dict]) -> pd.DataFrame:
        """One row per (dataset, seed): the primary matched reading and both runs' final KLs."""
        rows = []
        for d in self.datasets:
            ends = []
            for s in self.main_seeds:
                f = ds.read_trajectory(self.sft_dirs[self.main, d, s])[-1]
                g = ds.read_trajectory(self.sft_dirs["grpo", d, s])[-1]
                ends.append((f[ds.TRACK_KL_REF], g[ds.TRACK_KL_REF]))
            per_seed = matched.seed_rows(
                c2[d]["primary"], self.main_seeds, ("FRPO", "GRPO"), tags={"dataset": d}
            )
            for row, (fr, gr) in zip(per_seed, ends, strict=True):
                rows.append({**row, "end KL_ref FRPO": fr, "end KL_ref GRPO": gr})
        return pd.DataFrame(rows)

    def evaluations(self) -> pd.DataFrame:
        """Every evaluation, before SFT (``stage`` "before") and after (``after <dataset>``)."""
        b = ds.metrics_frame(self.before_dirs, ("method", "seed")).assign(stage="before")
        a = ds.metrics_frame(self.after_dirs, ("method", "dataset", "seed"))
        a["stage"] = "after " + a.dataset
        return pd.concat([b, a], ignore_index=True)

    def table1(self) -> pd.DataFrame:
        """Table 1's analogue: mean over seeds per (stage, method) of the :data:`TABLE1` columns."""
        evals = self.evaluations()
        present = {k: v for k, v in TABLE1.items() if v in evals.columns}
        table = evals.groupby(["stage", "method"])[list(present.values())].mean()
        table.columns = list(present)
        return table

    def c3_task(self) -> str:
        return "gsm8k" if "gsm8k" in self.datasets else self.datasets[0]

    def c3(self) -> tuple[float, float, float]:
        """Task score after SFT on the C3 task, FRPO(lam_main) minus GRPO, paired on seeds."""
        task = self.c3_task()
        score = ds.TASK_SCORE[task]
        a = ds.metrics_frame(self.after_dirs, ("method", "dataset", "seed"))
        f = a[(a.method == self.main) & (a.dataset == task)].set_index("seed")[score]
        g = a[(a.method == "grpo") & (a.dataset == task)].set_index("seed")[score]
        seeds = self.main_seeds
        return paired_difference(f.loc[seeds].tolist(), g.loc[seeds].tolist())

    def c4(self) -> dict:
        """The best lam at the common KL of every method over the sweep's seeds, its bootstrap
        interval over seeds, and the two Taylor ranges."""
        curves = {
            (m, d, s): ds.curve(ds.read_trajectory(self.sft_dirs[m, d, s]))
            for m in self.methods
            for d in self.datasets
            for s in self.seeds
        }
        kept = pd.DataFrame(ds.kept_at_common_kl(curves))
        records = kept.to_dict("records")
        best, by_lam = ds.best_lam(records)
        rho_lo, rho_hi = ds.kl_range([float(kl[-1]) for kl, _ in curves.values()])
        mean_len = ds.mean_response_length(list(self.parent_dirs.values()))
        return {
            "kept": kept,
            "best_lam": best,
            "interval": ds.best_lam_interval(records),
            "kept_by_lam": by_lam,
            "rho": (rho_lo, rho_hi),
            "mean_response_length": mean_len,
            "target": ds.taylor_target(self.stage1_std, rho_lo, rho_hi),
            "target_whole": ds.taylor_target(self.stage1_std, rho_lo * mean_len, rho_hi * mean_len),
        }

    def high_traj(self) -> pd.DataFrame:
        """The trajectories of the large-learning-rate SFT runs (columns ``method``, ``seed``)."""
        return ds.trajectory_frame(self.high_dirs, ("method", "seed"))

    def high_lr_table(self) -> pd.DataFrame:
        """Table 1's columns after the large-learning-rate SFT, mean over seeds per method."""
        he = ds.metrics_frame(self.high_eval_dirs, ("method", "seed"))
        present = {k: v for k, v in TABLE1.items() if v in self.evaluations().columns}
        keep = {k: v for k, v in present.items() if v in he.columns}
        table = he.groupby("method")[list(keep.values())].mean()
        table.columns = list(keep)
        return table

    def summary(self) -> pd.DataFrame:
        """The claim numbers with their intervals (C4: the best lam and the per-token range)."""
        c2, c3, c4 = self.c2(), self.c3(), self.c4()
        rows = [
            {
                "quantity": f"C2.{d} kept {matched.LABELS[r['y']]} gap at common KL",
                "value": r["primary"]["gap"][0],
                "lo": r["primary"]["gap"][1],
                "hi": r["primary"]["gap"][2],
            }
            for d, r in c2.items()
        ]
        rows.append(
            {
                "quantity": f"C3 {self.c3_task()} score gap after SFT",
                "value": c3[0],
                "lo": c3[1],
                "hi": c3[2],
            }
        )
        rows.append(
            {
                "quantity": "C4 best lam (bootstrap interval)",
                "value": c4["best_lam"],
                "lo": c4["interval"][0],
                "hi": c4["interval"][1],
            }
        )
        return pd.DataFrame(rows)

    def record(self, run_dir: str | Path, t_start: float) -> dict:
        """Write C2.<dataset>, C3, C4 and ``metrics.json`` into ``run_dir``; the metrics.

        ``t_start``: :func:`time.perf_counter` when the notebook started.
        """
        c2, c3, c4 = self.c2(), self.c3(), self.c4()
        for d in self.datasets:
            if d in CLAIM_DATASETS:
                matched.record_gap(
                    run_dir, f"C2.{d}", c2[d], f"FRPO(lam={self.lam_main:g}) minus GRPO"
                )
        task = self.c3_task()
        evidence.record(
            run_dir,
            "C3",
            c3,
            len(self.main_seeds),
            f"{task} task score ({ds.TASK_SCORE[task].rsplit('/', 1)[-1]}) after {task} SFT, "
            f"FRPO(lam={self.lam_main:g}) minus GRPO",
        )
        (rho_lo, rho_hi), whole = c4["rho"], c4["target_whole"]
        evidence.record(
            run_dir,
            "C4",
            (c4["best_lam"], *c4["interval"]),
            len(self.seeds),
            f"best lam by kept safety at the common per-token KL, 95% bootstrap interval over "
            f"seeds; Taylor range from std "
            f"{self.stage1_std:.3f} and per-token rho in [{rho_lo:.3f}, {rho_hi:.3f}]; with "
            f"whole-response rho (x{c4['mean_response_length']:.1f} tokens) the range is "
            f"[{whole[0]:.3g}, {whole[1]:.3g}]",
            target=c4["target"],
        )
        metrics = self._metrics(c2, c3, c4)
        metrics["wall_seconds"] = time.perf_counter() - t_start
        evidence.write_metrics(run_dir, metrics)
        return metrics

    def _metrics(self, c2: dict, c3: tuple, c4: dict) -> dict:
        table1, high = self.table1(), self.high_lr_table()
        return {
            "methods": self.methods,
            "lam_main": self.lam_main,
            "seeds": list(self.seeds),
            "main_seeds": list(self.main_seeds),
            "c2": {d: _c2_metrics(c2[d]) for d in self.datasets},
            "c2_exact_unsafe_gap": {d: list(v[:3]) for d, v in self.c2_exact().items()},
            "c3": {"task": self.c3_task(), "diff": c3[0], "interval": [c3[1], c3[2]]},
            "c4": {
                "best_lam": c4["best_lam"],
                "best_lam_interval": list(c4["interval"]),
                "kept_by_lam": {f"{k:g}": v for k, v in c4["kept_by_lam"].items()},
                "target_per_token": list(c4["target"]),
                "target_whole_response": list(c4["target_whole"]),
                "rho_range_per_token": list(c4["rho"]),
                "mean_response_length": c4["mean_response_length"],
            },
            "stage1_std": self.stage1_std,
            "table1": {f"{st}|{m}": row.to_dict() for (st, m), row in table1.iterrows()},
            "high_lr": {m: row.to_dict() for m, row in high.iterrows()},
        }


def _c2_metrics(both: dict) -> dict:
    """One dataset's C2 numbers for ``metrics.json``: primary and sampled readings."""
    gap = both["primary"]
    out = {
        "metric": both["y"],
        "gap": evidence.triple(gap["gap"]),
        "end_gap": evidence.triple(gap["end_gap"]),
        "kl_common": gap["kl_common"],
        "grid_gap": [g["grid_gap"] for g in gap["per_seed"]],
    }
    if both["secondary"] is not None:
        out["sampled_gap"] = evidence.triple(both["secondary"]["gap"])
    return out


def run(
    profile: str,
    run_dir: str | Path,
    block: Stage1Block,
    *,
    seeds: Sequence[int],
    main_seeds: Sequence[int],
    methods: Sequence[str],
    lam_main: float,
    sft: dict,
    track: dict,
    high_lr: dict,
    evaluation: dict,
    stage1_std_from: str,
    stage1_std_key: str,
) -> DownstreamSFT:
    """Build and run (or reuse) every run of the notebook, in this order: stage-1, SFT, SFT at
    the large learning rate, evaluations before, after, and after the large-lr SFT.

    ``methods``: stage-1 method keys (empty: GRPO and every plain FRPO lam of the betas), all at
    ``seeds``; GRPO and FRPO(lam_main) also at ``main_seeds``; the
    stage-1 reward std of the Taylor rule is ``stage1_std_key`` of the ``metrics.json`` of
    notebook ``stage1_std_from`` (a folder beside ``run_dir``; notebook 03 records it).
    """
    keys = list(methods) or sweep_methods(block.betas)
    main = main_method(lam_main)
    for need in ("grpo", main):
        if need not in keys:
            raise ValueError(f"method {need!r} is needed for C2/C3 but not among {keys}")
    stage1_std = ds.read_metric(
        Path(run_dir).parent / stage1_std_from / "metrics.json", stage1_std_key
    )
    pair = ("grpo", main)
    parents = {**block.specs(keys, seeds), **block.specs(pair, main_seeds)}
    sfts = sft_specs(parents, sft, track)
    hd = high_lr["dataset"]
    high_parents = {(m, s): parents[m, s] for m in pair for s in main_seeds[: high_lr["n_seeds"]]}
    highs = {
        (m, s): spec
        for (m, _, s), spec in sft_specs(
            high_parents, sft, track, datasets=[hd], lr=high_lr["lr"]
        ).items()
    }
    before = eval_specs({(m, s): parents[m, s] for m in pair for s in main_seeds}, evaluation)
    after = eval_specs(
        {(m, d, s): sfts[m, d, s] for m in pair for d in sft for s in main_seeds}, evaluation
    )

    c3 = "gsm8k" if "gsm8k" in sft else next(iter(sft))
    bench_models = {("stage-1", m, s): parents[m, s] for m in pair for s in main_seeds}
    bench_models |= {(f"after {c3}", m, s): sfts[m, c3, s] for m in pair for s in main_seeds}
    go = runner(profile, run_dir)
    parent_dirs = go(parents, "stage-1 runs")
    sft_dirs = go(sfts, "SFT runs")
    high_dirs = go(highs, f"SFT runs at lr {high_lr['lr']:g}")
    before_dirs = go(before, "evaluations before SFT")
    after_dirs = go(after, "evaluations after SFT")
    high_eval_dirs = go(eval_specs(highs, evaluation), "evaluations after the large-lr SFT")
    return DownstreamSFT(
        methods=keys,
        main=main,
        lam_main=lam_main,
        seeds=list(seeds),
        main_seeds=list(main_seeds),
        datasets=list(sft),
        high_dataset=hd,
        parent_dirs=parent_dirs,
        sft_dirs=sft_dirs,
        high_dirs=high_dirs,
        before_dirs=before_dirs,
        after_dirs=after_dirs,
        high_eval_dirs=high_eval_dirs,
        stage1_std=stage1_std,
        traj=ds.trajectory_frame(sft_dirs),
        bench_models=bench_models,
    )


def is_exact_world(traj: pd.DataFrame) -> bool:
    """Whether the trajectories carry the toy world's exact safety masses."""
    return all(c in traj.columns for c in EXACT_MASSES)


def finite_lams(by_lam: dict[float, float]) -> list[float]:
    return sorted(lam for lam in by_lam if math.isfinite(lam))
