"""Notebook 04: FRPO with and without its baseline, Eq. 4.2 (Fig. 16, claim C5).

:func:`run` trains (or reuses) FRPO(lam) and its ``-nobase`` ablation (same beta, every seed);
:class:`BaselineAblation` reads them:

- C5.entropy: per seed, the final entropy (mean of the last ``tail`` logged steps) without the
  baseline over with it, then the mean ratio over seeds with its t-interval;
- C5.reward: baseline minus no baseline in final held-out safety reward, paired over seeds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from frpo.analysis import stage1 as s1
from frpo.experiments import evidence
from frpo.experiments.rlhf_safety import KL_REF
from frpo.experiments.runs import runner
from frpo.experiments.specs import Stage1Block
from frpo.recipes import method_key
from frpo.stats import paired_difference


@dataclasses.dataclass
class BaselineAblation:
    """The runs of notebook 04, read (``curves``, ``finals`` as :func:`frpo.analysis.stage1.
    collect` gives them)."""

    lam: float
    seeds: list[int]
    tail: int
    with_b: str
    without_b: str
    betas: dict[str, float]
    reward_col: str
    curves: pd.DataFrame
    finals: pd.DataFrame

    @property
    def methods(self) -> list[str]:
        return [self.with_b, self.without_b]

    def _tail(self, column: str) -> pd.DataFrame:
        return s1.tail_mean(self.curves, column, self.tail).pivot(
            index="seed", columns="method", values="value"
        )

    def entropy_ratio(self) -> tuple[float, float, float]:
        """C5.entropy: final entropy without over with the baseline, mean over seeds."""
        ent = self._tail("entropy")
        return s1.ratio_interval(ent[self.without_b].to_numpy(), ent[self.with_b].to_numpy())

    def heldout(self) -> pd.DataFrame:
        """Final held-out reward, one row per seed, one column per method."""
        return self.finals.pivot(index="seed", columns="method", values=self.reward_col)

    def reward_diff(self) -> tuple[float, float, float]:
        """C5.reward: baseline minus no baseline in held-out reward, paired over seeds."""
        fin = self.heldout()
        return paired_difference(fin[self.with_b].to_numpy(), fin[self.without_b].to_numpy())

    def table(self) -> pd.DataFrame:
        """Per method: final entropy, training reward (tail), held-out reward, final KL."""
        return pd.DataFrame(
            {
                "final entropy": self._tail("entropy").mean(),
                "train reward (tail)": self._tail("reward").mean(),
                "held-out reward": self.heldout().mean(),
                "final KL to pi_ref": self.finals.groupby("method")[KL_REF].mean(),
            }
        ).reindex(self.methods)

    def record(self, run_dir: str | Path) -> dict:
        """Write C5.entropy and C5.reward and ``metrics.json`` into ``run_dir``; the metrics."""
        ratio, diff = self.entropy_ratio(), self.reward_diff()
        n = len(self.seeds)
        evidence.record(
            run_dir,
            "C5.entropy",
            ratio,
            n,
            f"lam = {self.lam:g}, mean of the last {self.tail} steps",
        )
        evidence.record(
            run_dir,
            "C5.reward",
            diff,
            n,
            f"lam = {self.lam:g}, held-out safety reward, baseline - no baseline",
        )
        metrics = {
            "lam": self.lam,
            "entropy_ratio": evidence.triple(ratio),
            "reward_diff": evidence.triple(diff),
            "final_entropy": self._tail("entropy").mean().to_dict(),
            "heldout_reward": self.heldout().mean().to_dict(),
            "seeds": list(self.seeds),
        }
        evidence.write_metrics(run_dir, metrics)
        return metrics


def run(
    profile: str,
    run_dir: str | Path,
    block: Stage1Block,
    *,
    seeds: Sequence[int],
    lam: float,
    tail: int,
) -> BaselineAblation:
    """Train or reuse FRPO(lam) with and without the baseline (the ablation takes its parent's
    beta) at every seed, and read the runs."""
    with_b = method_key("frpo", lam)
    without_b = method_key("frpo", lam, baseline=False)
    specs = block.specs([with_b, without_b], seeds)
    runs = runner(profile, run_dir)(specs, "stage-1 runs")
    curves, finals = s1.collect(runs)
    return BaselineAblation(
        lam=lam,
        seeds=list(seeds),
        tail=tail,
        with_b=with_b,
        without_b=without_b,
        betas={m: specs[m, seeds[0]].beta for m in (with_b, without_b)},
        reward_col=block.reward_column,
        curves=curves,
        finals=finals,
    )
