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
from frpo.stats import paired_difference

REPLAY_COLUMNS = ("common KL", "a", "b", "gap", "end KL a", "end KL b")


def _curve(path, y: str = ds.TRACK_SAFETY) -> tuple:
    return ds.curve(ds.read_trajectory(path), y)


C8_PARTS = {"C8.sam_vs_grpo": ("sam", "grpo"), "C8.frpo_vs_sam": (None, "sam")}
"""C8's two paired parts (rules in :mod:`frpo.claims`): (a, b) read a - b; None is FRPO."""


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

    def kept(self, y: str = ds.TRACK_SAFETY) -> list[dict]:
        """Per SFT run of GRPO, FRPO and SAM: tracked metric ``y`` (default the sampled safety
        reward) at the common KL of its seed."""
        curves = {k: _curve(p, y) for k, p in self.sft_dirs.items()}
        return bl.kept_at_common(curves, ("method", "seed"), ("seed",))

    def c8_parts(self) -> dict[str, dict]:
        """C8's two parts, paired over seeds at each seed's common KL of the three runs: on the
        primary metric (:func:`frpo.experiments.matched.primary_metric`) and the sampled safety
        reward beside it. ``{key: {"y", "primary", "secondary"}}`` with ``(mean, lo, hi)``s."""
        y = matched.primary_metric(next(iter(self.sft_dirs.values())))
        rows = {y: self.kept(y), ds.TRACK_SAFETY: self.kept()}
        out = {}
        for key, (a, b) in C8_PARTS.items():
            a = a or self.main
            est = {
                metric: paired_difference(
                    [bl.pick(r, method=a, seed=s) for s in self.seeds],
                    [bl.pick(r, method=b, seed=s) for s in self.seeds],
                )
                for metric, r in rows.items()
            }
            second = est[ds.TRACK_SAFETY] if y != ds.TRACK_SAFETY else None
            out[key] = {"y": y, "a": a, "b": b, "primary": est[y], "secondary": second}
        return out

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
        """C8's parts, SAM's place on the GRPO-FRPO scale and the replay gains, with intervals."""
        c8 = self.c8(self.kept())
        rows = [
            {"quantity": f"{k} ({p['a']} - {p['b']})", "value": v[0], "lo": v[1], "hi": v[2]}
            for k, p in self.c8_parts().items()
            for v in [p["primary"]]
        ]
        rows.append(
            {
                "quantity": "SAM on the GRPO-FRPO scale (sampled reward)",
                "value": c8["mean"],
                "lo": c8["lo"],
                "hi": c8["hi"],
            }
        )
        for m, r in self.replay_gaps().items():
            mean, lo, hi = r["gap"]
            rows.append({"quantity": f"replay gain {m}", "value": mean, "lo": lo, "hi": hi})
        return pd.DataFrame(rows)

    def record(self, run_dir: str | Path, t_start: float) -> dict:
        """Write C8's two parts and ``metrics.json`` into ``run_dir``; the metrics."""
        rows = self.kept()
        c8 = self.c8(rows)
        parts = self.c8_parts()
        for key, part in parts.items():
            second = part["secondary"]
            evidence.record(
                run_dir,
                key,
                part["primary"],
                len(self.seeds),
                f"{matched.LABELS[part['y']]} at the common per-token KL(Q||pi_theta) of the "
                f"GRPO, SAM (rho {self.sam_rho:g}) and FRPO(lam={self.lam_main:g}) runs of each "
                f"seed after {self.dataset} SFT, {part['a']} minus {part['b']}; SAM on the "
                f"GRPO (0) to FRPO (1) scale of the sampled reward {c8['mean']:+.3f} over "
                f"{c8['used']} seeds",
                secondary=None if second is None else (matched.LABELS[ds.TRACK_SAFETY], second),
            )
        gaps = self.replay_gaps()
        metrics = {
            "seeds": list(self.seeds),
            "lam_main": self.lam_main,
            "dataset": self.dataset,
            "sam_beta": self.parents["sam", self.seeds[0]].beta,
            "sam_rho": self.sam_rho,
            "c8": {**c8, "min_gap": self.min_gap},
            "c8_parts": {
                k: {
                    "metric": p["y"],
                    "primary": evidence.triple(p["primary"]),
                    "secondary": p["secondary"] and evidence.triple(p["secondary"]),
                }
                for k, p in parts.items()
            },
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
