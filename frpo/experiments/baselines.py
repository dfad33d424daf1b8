"""Notebook 09: GRPO+SAM (Fig. 6, claim C8), replay at downstream time (Fig. 11) and the stage-1
KL budget (Fig. 15), all read after notebook 05's downstream SFT on one dataset.

:func:`run` builds and runs (or reuses) the stage-1 runs of GRPO, FRPO(lam_main) and GRPO+SAM and
one tracked SFT run from each, the replay SFT runs, and stage-1 runs at scaled betas with their
SFT runs; :class:`Baselines` reads them at common KLs (:mod:`frpo.analysis.baselines`,
:mod:`frpo.experiments.matched`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from frpo.analysis import baselines as bl
from frpo.analysis import downstream as ds
from frpo.experiments import evidence, matched
from frpo.experiments.runs import runner
from frpo.experiments.specs import Stage1Block, sft_specs
from frpo.recipes import method_key

REPLAY_COLUMNS = ("common KL", "a", "b", "gap", "end KL a", "end KL b")


def _curve(path) -> tuple:
    return ds.curve(ds.read_trajectory(path))


@dataclasses.dataclass
class Baselines:
    """The runs of notebook 09, keyed ``(method, seed)`` (``(method, scale, seed)`` for the
    budget runs)."""

    main: str
    lam_main: float
    seeds: list[int]
    dataset: str
    sam_rho: float
    min_gap: float
    replay: dict
    budget_scales: list[float]
    parents: dict
    parent_dirs: dict
    sft_dirs: dict
    replay_dirs: dict
    budget_parents: dict
    budget_parent_dirs: dict
    budget_sft_dirs: dict
    times: dict[str, float]

    def sft_traj(self) -> pd.DataFrame:
        """The trajectories of the GRPO, FRPO and SAM SFT runs (columns ``method``, ``seed``)."""
        return ds.trajectory_frame(self.sft_dirs, ("method", "seed"))

    def kept(self) -> list[dict]:
        """Per SFT run of GRPO, FRPO and SAM: kept safety at the common KL of its seed."""
        curves = {k: _curve(p) for k, p in self.sft_dirs.items()}
        return bl.kept_at_common(curves, ("method", "seed"), ("seed",))

    def c8(self, rows: list[dict]) -> dict:
        """SAM on the GRPO (0) to FRPO (1) scale per seed, then over seeds
        (:func:`frpo.analysis.baselines.scale_over_seeds`)."""
        sam, grpo, frpo = (
            [bl.pick(rows, method=m, seed=s) for s in self.seeds]
            for m in ("sam", "grpo", self.main)
        )
        return bl.scale_over_seeds(sam, grpo, frpo, self.seeds, self.min_gap)

    def c8_table(self, rows: list[dict], c8: dict) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "seed": self.seeds,
                "common KL": [
                    bl.pick(rows, "kl_common", method="grpo", seed=s) for s in self.seeds
                ],
                "GRPO": [bl.pick(rows, method="grpo", seed=s) for s in self.seeds],
                "SAM": [bl.pick(rows, method="sam", seed=s) for s in self.seeds],
                "FRPO": [bl.pick(rows, method=self.main, seed=s) for s in self.seeds],
                "SAM on scale": c8["per_seed"],
            }
        )

    def stage1_table(self) -> pd.DataFrame:
        """Every stage-1 run's beta, final KL to pi_ref and held-out safety reward."""
        return pd.DataFrame(
            [
                {
                    "method": m,
                    "seed": s,
                    "beta": self.parents[m, s].beta,
                    "stage1 KL": ds.read_metric(self.parent_dirs[m, s], "frpo/final/kl_ref"),
                    "stage1 safety": ds.read_metric(
                        self.parent_dirs[m, s], "frpo/final/reward/safety"
                    ),
                }
                for m, s in self.parents
            ]
        )

    def replay_gaps(self) -> dict[str, dict]:
        """Per method: SFT with minus without replay at the pair's common KL, over seeds."""
        return {
            m: matched.compare(
                [self.replay_dirs[m, s] for s in self.seeds],
                [self.sft_dirs[m, s] for s in self.seeds],
            )
            for m in self.replay["methods"]
        }

    def replay_rows(self, gaps: dict[str, dict]) -> list[dict]:
        rows = []
        for m, res in gaps.items():
            rows += matched.seed_rows(
                res, self.seeds, ("replay", "plain"), REPLAY_COLUMNS, {"method": m}
            )
        return rows

    def budget_rows(self) -> list[dict]:
        """Per budget run: kept safety at the common KL of its seed, beta, stage-1 KL/safety."""
        curves = {k: _curve(p) for k, p in self.budget_sft_dirs.items()}
        rows = bl.kept_at_common(curves, ("method", "scale", "seed"), ("seed",))
        for r in rows:
            key = (r["method"], r["scale"], r["seed"])
            r["beta"] = self.budget_parents[key].beta
            r["stage1 KL"] = ds.read_metric(self.budget_parent_dirs[key], "frpo/final/kl_ref")
            r["stage1 safety"] = ds.read_metric(
                self.budget_parent_dirs[key], "frpo/final/reward/safety"
            )
        return rows

    def summary(self) -> pd.DataFrame:
        """C8 and the replay gains with their intervals."""
        c8 = self.c8(self.kept())
        rows = [
            {
                "quantity": "C8 SAM on the GRPO-FRPO scale",
                "value": c8["mean"],
                "lo": c8["lo"],
                "hi": c8["hi"],
            }
        ]
        for m, r in self.replay_gaps().items():
            mean, lo, hi = r["gap"]
            rows.append({"quantity": f"replay gain {m}", "value": mean, "lo": lo, "hi": hi})
        return pd.DataFrame(rows)

    def record(self, run_dir: str | Path, t_start: float) -> dict:
        """Write C8 (when a seed is usable) and ``metrics.json`` into ``run_dir``; the metrics."""
        rows = self.kept()
        c8 = self.c8(rows)
        if c8["used"]:
            means = pd.DataFrame(rows).groupby("method")["kept"].mean()
            evidence.record(
                run_dir,
                "C8",
                (c8["mean"], c8["lo"], c8["hi"]),
                c8["used"],
                f"SAM (rho {self.sam_rho:g}) kept safety at the common per-token KL after "
                f"{self.dataset} SFT, (sam - grpo) / (frpo{self.lam_main:g} - grpo) per seed; "
                f"seeds left out for |frpo - grpo| <= {self.min_gap:g}: {c8['dropped']}; "
                f"pooled {c8['pooled']:+.3f}; mean kept grpo {means['grpo']:.3f}, sam "
                f"{means['sam']:.3f}, frpo {means[self.main]:.3f}",
            )
        gaps = self.replay_gaps()
        metrics = {
            "seeds": list(self.seeds),
            "lam_main": self.lam_main,
            "dataset": self.dataset,
            "sam_beta": self.parents["sam", self.seeds[0]].beta,
            "sam_rho": self.sam_rho,
            "c8": {**c8, "min_gap": self.min_gap},
            "stage1": self.stage1_table().to_dict("records"),
            "kept_at_common_kl": rows,
            "replay": {
                "share": self.replay["share"],
                "gain": {m: list(r["gap"]) for m, r in gaps.items()},
                "per_seed": self.replay_rows(gaps),
            },
            "budget": {"scales": self.budget_scales, "rows": self.budget_rows()},
            "times": self.times,
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
    lam_main: float,
    sam_rho: float,
    dataset: str,
    sft: dict,
    track: dict,
    min_gap: float,
    replay: dict,
    budget: dict,
) -> Baselines:
    """Build and run (or reuse) every run of the notebook, in this order: stage-1 (GRPO,
    FRPO(lam_main), SAM), their SFT, the replay SFT, the budget stage-1 runs and their SFT.

    GRPO+SAM takes the betas' ``sam`` entry, or GRPO's beta when the table has none.
    """
    if dataset not in sft:
        raise ValueError(f"dataset {dataset!r} has no entry in sft {sorted(sft)}")
    main = method_key("frpo", lam_main)
    betas = block.betas
    with_sam = dataclasses.replace(block, betas={**betas, "sam": betas.get("sam", betas["grpo"])})
    parents = with_sam.specs(["grpo", main, "sam"], seeds, sam_rho=sam_rho)

    def sfts_of(parent_specs, **overrides):
        specs = sft_specs(parent_specs, sft, track, datasets=[dataset], **overrides)
        return {(*k[:-2], k[-1]): spec for k, spec in specs.items()}

    replay_parents = {(m, s): parents[m, s] for m in replay["methods"] for s in seeds}
    scales = [1.0, *budget["scales"]]
    b_parents = {
        (m, scale, s): dataclasses.replace(block, betas=bl.scaled_beta(betas, m, scale)).specs(
            [m], [s]
        )[m, s]
        for m in budget["methods"]
        for scale in scales
        for s in budget["seeds"]
    }
    times, t0 = {}, time.perf_counter()

    run = runner(profile, run_dir)

    def go(specs, label, timer):
        out = run(specs, label)
        if timer:
            times[timer] = time.perf_counter() - t0 - sum(times.values())
        return out

    parent_dirs = go(parents, "stage-1 runs", "stage-1")
    sft_dirs = go(sfts_of(parents), "SFT runs", "SFT")
    replay_dirs = go(
        sfts_of(
            replay_parents,
            replay_share=replay["share"],
            replay_max_new_tokens=block.stage1["max_completion_length"],
        ),
        "replay SFT runs",
        "replay SFT",
    )
    b_parent_dirs = go(b_parents, "stage-1 runs at scaled betas", None)
    b_sft_dirs = go(sfts_of(b_parents), "SFT runs of the scaled betas", "budget")
    return Baselines(
        main=main,
        lam_main=lam_main,
        seeds=list(seeds),
        dataset=dataset,
        sam_rho=sam_rho,
        min_gap=min_gap,
        replay=dict(replay),
        budget_scales=scales,
        parents=parents,
        parent_dirs=parent_dirs,
        sft_dirs=sft_dirs,
        replay_dirs=replay_dirs,
        budget_parents=b_parents,
        budget_parent_dirs=b_parent_dirs,
        budget_sft_dirs=b_sft_dirs,
        times=times,
    )
