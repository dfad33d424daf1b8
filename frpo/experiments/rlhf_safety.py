"""Notebook 03: stage-1 RLHF for safety, GRPO and FRPO at matched KL (Fig. 13, claim C1).

:func:`run` trains (or reuses) one stage-1 run per (method, seed) and reads them
(:mod:`frpo.analysis.stage1`); :class:`RLHFSafety` holds the tables the chapter shows and writes
its evidence and ``metrics.json``. :func:`search_betas` is the KL-matching search that produced
a profile's betas table, and :func:`search_tries` reads back the tries it recorded.

C1: FRPO(lam_main) minus GRPO in final held-out safety reward, paired over ``main_seeds`` (the
seeds the power analysis gave the headline pair, :mod:`frpo.power`); beside it, per lam of the
sweep (at ``seeds``), the same paired difference, and the worst lam's (lowest point estimate).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from frpo.analysis import stage1 as s1
from frpo.experiments import evidence
from frpo.experiments.runs import quietly, runner
from frpo.experiments.specs import Stage1Block
from frpo.recipes import method_key, stage1_spec
from frpo.stages.beta_search import record_path, search_beta
from frpo.stats import paired_difference

KL_REF = "frpo/final/kl_ref"


def stage1_methods(lams: Sequence[float]) -> list[str]:
    """GRPO, then FRPO at each lam in the order given."""
    return ["grpo"] + [method_key("frpo", lam) for lam in lams]


@dataclasses.dataclass
class RLHFSafety:
    """The stage-1 runs of notebook 03, read.

    ``curves``: one row per (method, seed, step) of TRL's log; ``finals``: one row per (method,
    seed) with every final held-out number; ``diffs``: FRPO minus GRPO per lam
    (:func:`frpo.analysis.stage1.paired_vs`).
    """

    methods: list[str]
    seeds: list[int]
    """The lam sweep's seeds (every method)."""
    main_seeds: list[int]
    """GRPO's and FRPO(lam_main)'s seeds (C1)."""
    main: str
    """FRPO(lam_main)'s method key."""
    betas: dict[str, float]
    tail: int
    reward_col: str
    runs: dict[tuple[str, int], Path]
    curves: pd.DataFrame
    finals: pd.DataFrame
    base_reward: float
    diffs: pd.DataFrame

    def train_tail(self) -> dict[str, float]:
        """Per method: the training reward over the last ``tail`` steps, mean over seeds."""
        return s1.per_method_mean(s1.tail_mean(self.curves, "reward", self.tail))

    def stage1_std(self) -> dict[str, float]:
        """Per method: TRL's batch ``reward_std`` over the last ``tail`` steps, mean over seeds
        (notebook 05's lam* check reads GRPO's)."""
        return s1.per_method_mean(s1.tail_mean(self.curves, "reward_std", self.tail))

    def check_table(self) -> pd.DataFrame:
        """pi_ref's and GRPO's held-out reward, and GRPO's training reward at the end."""
        grpo = self.finals[self.finals["method"] == "grpo"][self.reward_col].mean()
        return pd.DataFrame(
            {
                "held-out reward": [self.base_reward, grpo],
                f"training reward (last {self.tail} steps)": [
                    float("nan"),
                    self.train_tail()["grpo"],
                ],
            },
            index=["pi_ref (before RLHF)", "GRPO (mean over seeds)"],
        )

    def worst(self) -> pd.Series:
        """The lam whose paired difference to GRPO has the lowest point estimate (sweep seeds)."""
        return s1.worst(self.diffs)

    def c1(self) -> tuple[float, float, float]:
        """FRPO(lam_main) minus GRPO in final held-out reward, paired over ``main_seeds``."""
        fin = self.finals.pivot(index="seed", columns="method", values=self.reward_col)
        fin = fin.loc[self.main_seeds]
        return paired_difference(fin[self.main].to_numpy(), fin["grpo"].to_numpy())

    def summary(self) -> pd.DataFrame:
        """Per method: reward (mean, sd), final KL, beta, stage-1 std and the C1 difference."""
        betas = self.betas
        summary = (
            self.finals.groupby("method")
            .agg(
                reward=(self.reward_col, "mean"),
                reward_sd=(self.reward_col, "std"),
                kl_ref=(KL_REF, "mean"),
                beta=("method", lambda s: betas[s.iloc[0]]),
            )
            .reindex(self.methods)
        )
        std = self.stage1_std()
        summary["stage1_std"] = [std[m] for m in self.methods]
        return summary.join(self.diffs.set_index("method")[["diff", "lo", "hi"]])

    def record(self, run_dir: str | Path) -> dict:
        """Write C1's evidence and ``metrics.json`` into ``run_dir``; the metrics."""
        w = self.worst()
        c1 = self.c1()
        kl_lo, kl_hi = self.finals[KL_REF].min(), self.finals[KL_REF].max()
        evidence.record(
            run_dir,
            "C1",
            c1,
            len(self.main_seeds),
            f"held-out safety reward, {self.main} minus GRPO, paired over "
            f"{len(self.main_seeds)} seeds; worst lam of the sweep {w['lam']:g} "
            f"({int(w['n'])} seeds); final per-token KL to pi_ref of all runs in "
            f"[{kl_lo:.3f}, {kl_hi:.3f}]",
            secondary=(
                f"worst lam of the sweep ({w['lam']:g})",
                (float(w["diff"]), float(w["lo"]), float(w["hi"])),
            ),
        )
        summary = self.summary()
        std = self.stage1_std()
        metrics = {
            "betas": {m: float(self.betas[m]) for m in self.methods},
            "final_reward": {m: float(summary.loc[m, "reward"]) for m in self.methods},
            "final_kl_ref": {m: float(summary.loc[m, "kl_ref"]) for m in self.methods},
            "base_reward": self.base_reward,
            "train_reward_tail": self.train_tail(),
            "stage1_std": std,
            "grpo_reward_std": std["grpo"],
            "c1_paired_diff": {
                r["method"]: evidence.triple((r["diff"], r["lo"], r["hi"]))
                for _, r in self.diffs.iterrows()
            },
            "c1_worst_lam": float(w["lam"]),
            "c1": evidence.triple(c1),
            "seeds": list(self.seeds),
            "main_seeds": list(self.main_seeds),
        }
        evidence.write_metrics(run_dir, metrics)
        return metrics


def run(
    profile: str,
    run_dir: str | Path,
    block: Stage1Block,
    *,
    seeds: Sequence[int],
    lams: Sequence[float],
    tail: int,
    lam_main: float,
    main_seeds: Sequence[int],
) -> RLHFSafety:
    """Train or reuse every stage-1 run (GRPO and FRPO at each lam at ``seeds``; GRPO and
    FRPO(lam_main) at ``main_seeds`` too) and read them."""
    methods = stage1_methods(lams)
    main = method_key("frpo", lam_main)
    if main not in methods:
        raise ValueError(f"lam_main {lam_main:g} is not among the lams {list(lams)}")
    specs = {**block.specs(methods, seeds), **block.specs(["grpo", main], main_seeds)}
    runs = runner(profile, run_dir)(specs, "stage-1 runs")
    curves, finals = s1.collect(runs)
    col = block.reward_column
    with quietly(run_dir, "pi_ref reference"):
        base = s1.base_reference(block.world, block.stage1)
    base_reward = base[f"frpo/base/reward/{block.stage1['tasks'][0]}"]
    return RLHFSafety(
        methods=methods,
        seeds=list(seeds),
        main_seeds=list(main_seeds),
        main=main,
        betas=dict(block.betas),
        tail=tail,
        reward_col=col,
        runs=runs,
        curves=curves,
        finals=finals,
        base_reward=base_reward,
        diffs=s1.paired_vs(finals[finals["seed"].isin(list(seeds))], col, "grpo", methods[1:]),
    )


def search_betas(
    profile: str,
    block: Stage1Block,
    methods: Sequence[str],
    seed: int,
    *,
    target_kl: float,
    start: Sequence[float],
    rtol: float,
    max_tries: int,
) -> dict[str, float]:
    """The KL-matched beta of every method (:func:`frpo.stages.beta_search.search_beta`, one
    seed); the tries are recorded under ``runs/<profile>/beta_search/``."""
    found = {}
    for key in methods:
        spec = stage1_spec(key, seed, block.world, block.stage1, {key: start[0]})
        best, _ = search_beta(
            spec, target_kl, profile, betas=tuple(start), rtol=rtol, max_tries=max_tries
        )
        found[key] = best.beta
    return found


def search_tries(
    profile: str, block: Stage1Block, methods: Sequence[str], seed: int
) -> pd.DataFrame:
    """Every recorded beta-search try of ``methods`` on this machine (empty when none):
    ``method``, ``try``, ``beta``, ``final KL``, ``target``."""
    rows = []
    for key in methods:
        path = record_path(block.specs([key], [seed])[key, seed], profile)
        if not path.is_file():
            continue
        record = json.loads(path.read_text())
        for i, t in enumerate(record["tries"]):
            rows.append(
                {
                    "method": key,
                    "try": i,
                    "beta": t["beta"],
                    "final KL": t["kl"],
                    "target": record["target_kl"],
                }
            )
    return pd.DataFrame(rows, columns=["method", "try", "beta", "final KL", "target"])
