"""Notebook 08: math RL, then code SFT (Sec. 5.2, Table 2, claim C7).

:func:`run` trains (or reuses) one stage-1 math run per (method, seed) with the notebook's own
stage-1 block, one code SFT run from each, and evaluates pi_ref, every stage-1 model and every
SFT model on the same held-out math and code prompts; :class:`MathThenCode` reads them
(:mod:`frpo.analysis.math_code`):

- C7.math: math accuracy after the code SFT, FRPO(lam_main) minus GRPO, paired over seeds;
- C7.code: the code accuracy gain (after minus before), FRPO(lam_main) minus GRPO.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from frpo.analysis import downstream as ds
from frpo.analysis import math_code as mc
from frpo.analysis import stage1 as s1
from frpo.experiments import evidence
from frpo.experiments.rlhf_safety import KL_REF
from frpo.experiments.runs import runner
from frpo.experiments.specs import Stage1Block, eval_specs, sft_specs
from frpo.recipes import method_key, sweep_methods

LABELS = {"math acc": mc.MATH_ACC, "code acc": mc.CODE_ACC, "math reward": mc.MATH_REWARD}
"""Table 2's metrics: label -> evaluation metric."""
REWARD_COL = "frpo/final/reward/math"


@dataclasses.dataclass
class MathThenCode:
    """The runs of notebook 08, read: stage-1 ``curves``/``finals``, ``joined`` (one row per
    (method, seed) with every metric before, after and its gain) and pi_ref's ``base`` row."""

    methods: list[str]
    main: str
    lam_main: float
    seeds: list[int]
    n_prompts: int
    curves: pd.DataFrame
    finals: pd.DataFrame
    joined: pd.DataFrame
    base: pd.Series
    bench_models: dict = dataclasses.field(default_factory=dict)
    """``{(stage, method, seed): run spec}``: every stage-1 math model ("before") and its code
    SFT ("after"), for the paper's Table 2 benchmarks (MATH500, MBPP+)."""

    def stage1_table(self) -> pd.DataFrame:
        """Per method: held-out math reward and final KL to pi_ref, mean over seeds."""
        table = self.finals.groupby("method")[[REWARD_COL, KL_REF]].mean().loc[self.methods]
        table.columns = ["held-out math reward", "final per-token KL to pi_ref"]
        return table

    def kl_ratio(self) -> float:
        """Largest over smallest mean final KL across methods (1 = KL-matched)."""
        return mc.kl_spread(self.stage1_table()["final per-token KL to pi_ref"].to_dict())

    def table2(self) -> pd.DataFrame:
        """Mean and interval over seeds per (method, metric, stage), long format."""
        return mc.table2(self.joined, list(LABELS), self.methods)

    def contrasts(self) -> dict[str, tuple]:
        """C7.math, C7.code and the math reward after SFT: FRPO(lam_main) minus GRPO."""
        return {
            "C7.math": mc.contrast(self.joined, "math acc/after", self.main, "grpo"),
            "C7.code": mc.contrast(self.joined, "code acc/gain", self.main, "grpo"),
            "math reward": mc.contrast(self.joined, "math reward/after", self.main, "grpo"),
        }

    def contrast_table(self) -> pd.DataFrame:
        names = {
            "C7.math": "C7.math: math acc after SFT, FRPO - GRPO",
            "C7.code": "C7.code: code acc gain, FRPO - GRPO",
            "math reward": "math reward after SFT, FRPO - GRPO (secondary)",
        }
        return pd.DataFrame(
            [
                {"quantity": names[k], "value": c[0], "lo": c[1], "hi": c[2]}
                for k, c in self.contrasts().items()
            ]
        )

    def record(self, run_dir: str | Path, t_start: float) -> dict:
        """Write C7.math, C7.code and ``metrics.json`` into ``run_dir``; the metrics."""
        c, ratio = self.contrasts(), self.kl_ratio()
        evidence.record(
            run_dir,
            "C7.math",
            c["C7.math"],
            c["C7.math"][3],
            f"toy math accuracy (greedy, {self.n_prompts} held-out prompts) after code "
            f"SFT, FRPO(lam={self.lam_main:g}) minus GRPO; stage-1 KL ratio {ratio:.2f}",
        )
        evidence.record(
            run_dir,
            "C7.code",
            c["C7.code"],
            c["C7.code"][3],
            f"toy code accuracy gain from the code SFT, FRPO(lam={self.lam_main:g}) minus GRPO",
        )
        metrics = {
            "methods": self.methods,
            "lam_main": self.lam_main,
            "seeds": list(self.seeds),
            "stage1": {m: row.to_dict() for m, row in self.stage1_table().iterrows()},
            "stage1_kl_ratio": ratio,
            "pi_ref": {k: float(self.base[v]) for k, v in LABELS.items()},
            "table2": self.table2().to_dict("records"),
            "c7_math": evidence.triple(c["C7.math"]),
            "c7_code": evidence.triple(c["C7.code"]),
            "math_reward_after_diff": evidence.triple(c["math reward"]),
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
    code_sft: dict,
    evaluation: dict,
) -> MathThenCode:
    """Build and run (or reuse) the stage-1 math runs (``block``: the notebook's own math block),
    the code SFT runs and the evaluations of pi_ref, of the stage-1 models and of the SFT models."""
    methods = sweep_methods(block.betas)
    main = method_key("frpo", lam_main)
    for need in ("grpo", main):
        if need not in methods:
            raise ValueError(f"method {need!r} is needed for C7 but not among {methods}")
    parents = block.specs(methods, seeds)
    sfts = {
        (m, s): spec
        for (m, _, s), spec in sft_specs(parents, {code_sft["dataset"]: code_sft}, None).items()
    }

    go = runner(profile, run_dir)
    parent_dirs = go(parents, "stage-1 math runs")
    go(sfts, "code SFT runs")
    base_dir = go(eval_specs({"pi_ref": None}, evaluation, block.world), "evaluation of pi_ref")
    before_dirs = go(eval_specs(parents, evaluation, block.world), "evaluations before SFT")
    after_dirs = go(eval_specs(sfts, evaluation, block.world), "evaluations after SFT")
    curves, finals = s1.collect(parent_dirs)
    names = ("method", "seed")
    joined = mc.before_after(
        ds.metrics_frame(before_dirs, names), ds.metrics_frame(after_dirs, names), LABELS
    )
    return MathThenCode(
        methods=methods,
        main=main,
        lam_main=lam_main,
        seeds=list(seeds),
        n_prompts=evaluation["n_prompts"],
        curves=curves,
        finals=finals,
        joined=joined,
        base=ds.metrics_frame({("pi_ref",): base_dir["pi_ref"]}, ("method",)).iloc[0],
        bench_models={("before", m, s): p for (m, s), p in parents.items()}
        | {("after", m, s): p for (m, s), p in sfts.items()},
    )
