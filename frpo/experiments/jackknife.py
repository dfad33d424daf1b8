"""Notebook 02: the jackknife of Eq. 4.3, in theory and downstream (App. F, Fig. 17, claim C6).

- :func:`theory`: the exact bias of the plain and jackknifed estimators on a discrete reward law
  (:mod:`frpo.analysis.jackknife`), the fitted decay exponents (C6.bias: jackknife minus plain at
  ``fit_lam``), the on-policy gradient check and the lam -> inf limit, on one batch.
- :func:`downstream`: stage-1 FRPO(lam_main) with and without the jackknife (the ablation takes
  its parent's beta; the with-jackknife runs are notebook 03's), then notebook 05's SFT (shared
  runs); C6.downstream is the kept safety with minus without, at the matched KL
  (:mod:`frpo.experiments.matched`), paired over seeds.
- :func:`record`: both parts' evidence and ``metrics.json``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from frpo.analysis import downstream as ds
from frpo.analysis import jackknife as jk
from frpo.analysis import stage1 as s1
from frpo.experiments import evidence, matched
from frpo.experiments.rlhf_safety import KL_REF
from frpo.experiments.runs import runner
from frpo.experiments.specs import Stage1Block, sft_specs
from frpo.recipes import method_key
from frpo.stats import paired_difference


@dataclasses.dataclass
class Theory:
    """The exact half: ``grid`` (bias against G, every lam), ``orders`` (fitted exponents per lam
    and quantity), ``main_fit`` (C6.bias), ``lam_table`` (bias against lam at one G), ``check``
    (on-policy gradient agreement), ``limit`` (the lam -> inf factor)."""

    values: list[float]
    probs: list[float]
    fit_lam: float
    grid: pd.DataFrame
    fit_sizes: list[int]
    orders: pd.DataFrame
    main_fit: dict
    lam_table: pd.DataFrame
    check: pd.DataFrame
    limit: pd.DataFrame


def theory(
    values: Sequence[float],
    probs: Sequence[float],
    *,
    lams: Sequence[float],
    group_sizes: Sequence[int],
    fit_lam: float,
    fit_min_group: int,
    lam_grid: Sequence[float],
    lam_group: int,
    n_mc: int | None,
    check_lam: float,
    limit_lams: Sequence[float],
    check_group: int,
) -> Theory:
    """Every exact computation of the first half (seconds); ``check_group`` is the G of the
    check batch (4 groups drawn from the reward law with seed 0)."""
    grid = jk.bias_grid(values, probs, lams, group_sizes, n_mc=n_mc)
    fit_grid = grid[grid.G >= fit_min_group]
    rows = []
    for lam in lams:
        for col in ("logz_bias", "weight_bias"):
            rows.append({"lam": lam, "quantity": col, **jk.order_gain(fit_grid, lam, col)})
    rng = np.random.default_rng(0)
    batch = rng.choice(values, p=probs, size=(4, check_group))
    check = pd.DataFrame(
        [
            {
                "jackknife": flag,
                **{
                    k: v
                    for k, v in jk.onpolicy_gradients(batch, check_lam, jackknife=flag).items()
                    if k.startswith("max")
                },
            }
            for flag in (True, False)
        ]
    )
    limit = pd.concat(
        [
            jk.large_lam_factor(batch, limit_lams, jackknife=flag).assign(jackknife=flag)
            for flag in (True, False)
        ],
        ignore_index=True,
    )
    return Theory(
        values=list(values),
        probs=list(probs),
        fit_lam=fit_lam,
        grid=grid,
        fit_sizes=sorted(fit_grid.G.unique().tolist()),
        orders=pd.DataFrame(rows),
        main_fit=jk.order_gain(fit_grid, fit_lam, "logz_bias"),
        lam_table=jk.bias_grid(values, probs, lam_grid, [lam_group], n_mc=n_mc),
        check=check,
        limit=limit,
    )


@dataclasses.dataclass
class Downstream:
    """The experiment half: stage-1 ``curves``/``finals`` of both variants, the SFT
    trajectories ``traj`` (column ``variant``), and per dataset the matched-KL ``gaps``."""

    with_jk: str
    without_jk: str
    lam_main: float
    seeds: list[int]
    datasets: list[str]
    reward_col: str
    beta: float
    curves: pd.DataFrame
    finals: pd.DataFrame
    traj: pd.DataFrame
    gaps: dict[str, dict]
    """Per dataset, the matched-KL reading on the primary metric (:mod:`matched`)."""
    both: dict[str, dict]
    """Per dataset, :func:`matched.compare_primary` (primary and sampled readings)."""

    @property
    def methods(self) -> list[str]:
        return [self.with_jk, self.without_jk]

    def stage1_table(self) -> pd.DataFrame:
        """Per variant: held-out reward and final KL to pi_ref, mean over seeds."""
        fin = self.finals.pivot(index="seed", columns="method", values=self.reward_col)
        kl_fin = self.finals.pivot(index="seed", columns="method", values=KL_REF)
        return pd.DataFrame(
            {"held-out reward": fin.mean(), "final KL to pi_ref": kl_fin.mean()}
        ).reindex(self.methods)

    def stage1_diff(self) -> tuple[float, float, float]:
        """Held-out reward with minus without the jackknife, paired over seeds."""
        fin = self.finals.pivot(index="seed", columns="method", values=self.reward_col)
        return paired_difference(fin[self.with_jk].to_numpy(), fin[self.without_jk].to_numpy())

    def seed_table(self) -> pd.DataFrame:
        """One row per (dataset, seed): the matched-KL reading of both variants."""
        rows = []
        for d in self.datasets:
            rows += matched.seed_rows(
                self.gaps[d],
                self.seeds,
                ("with jk", "without jk"),
                ("common KL", "a", "b", "gap", "end gap"),
                {"dataset": d},
            )
        return pd.DataFrame(rows)


def downstream(
    profile: str,
    run_dir: str | Path,
    block: Stage1Block,
    *,
    seeds: Sequence[int],
    lam_main: float,
    sft: dict,
    track: dict,
) -> Downstream:
    """Train or reuse FRPO(lam_main) with and without the jackknife and the SFT runs from each."""
    with_jk = method_key("frpo", lam_main)
    without_jk = method_key("frpo", lam_main, jackknife=False)
    parents = block.specs([with_jk, without_jk], seeds)
    go = runner(profile, run_dir)
    parent_dirs = go(parents, "stage-1 runs")
    curves, finals = s1.collect(parent_dirs)
    sfts = sft_specs(parents, sft, track)
    sft_dirs = go(sfts, "SFT runs")
    datasets = list(sft)
    both = {
        d: matched.compare_primary(
            [sft_dirs[with_jk, d, s] for s in seeds], [sft_dirs[without_jk, d, s] for s in seeds]
        )
        for d in datasets
    }
    return Downstream(
        with_jk=with_jk,
        without_jk=without_jk,
        lam_main=lam_main,
        seeds=list(seeds),
        datasets=datasets,
        reward_col=block.reward_column,
        beta=parents[with_jk, seeds[0]].beta,
        curves=curves,
        finals=finals,
        traj=ds.trajectory_frame(sft_dirs, ("variant", "dataset", "seed")),
        gaps={d: b["primary"] for d, b in both.items()},
        both=both,
    )


def summary(th: Theory, down: Downstream) -> pd.DataFrame:
    """The numbers of the chapter with their intervals, one row each."""
    fit, diff = th.main_fit, down.stage1_diff()
    rows = [
        {
            "quantity": "C6.bias exponent gain (exact)" if fit["exact"] else "C6.bias",
            "value": fit["gain"],
            "lo": fit["lo"],
            "hi": fit["hi"],
        },
        {
            "quantity": "stage-1 held-out reward, with - without jk",
            "value": diff[0],
            "lo": diff[1],
            "hi": diff[2],
        },
    ]
    for d in down.datasets:
        mean, lo, hi = down.gaps[d]["gap"]
        rows.append(
            {"quantity": f"C6.downstream kept refusal gap ({d})", "value": mean, "lo": lo, "hi": hi}
        )
    return pd.DataFrame(rows)


def record(run_dir: str | Path, th: Theory, down: Downstream, t_start: float) -> dict:
    """Write C6.bias, C6.downstream (the first dataset) and ``metrics.json``; the metrics.

    ``t_start``: :func:`time.perf_counter` when the notebook started (for ``wall_seconds``).
    """
    fit = th.main_fit
    law = ", ".join(f"{v:g}:{p:g}" for v, p in zip(th.values, th.probs, strict=True))
    evidence.record(
        run_dir,
        "C6.bias",
        (fit["gain"], fit["lo"], fit["hi"]),
        1,
        f"decay exponent of the log Z bias, jackknife {fit['jackknife']:.2f} minus plain "
        f"{fit['plain']:.2f}; reward law {{{law}}}, lam {th.fit_lam:g}, "
        f"G in {th.fit_sizes[0]}..{th.fit_sizes[-1]}, "
        + ("exact enumeration" if fit["exact"] else "Monte Carlo"),
        exact=fit["exact"],
    )
    claim_d = down.datasets[0]
    matched.record_gap(
        run_dir,
        "C6.downstream",
        down.both[claim_d],
        f"after {claim_d} SFT, FRPO(lam={down.lam_main:g}) with minus without jackknife",
    )
    table = down.stage1_table()
    metrics = {
        "bias_law": {"values": th.values, "probs": th.probs},
        "orders": th.orders.to_dict("records"),
        "c6_bias": fit,
        "onpolicy_max_abs_diff": th.check.max_abs_diff.max(),
        "limit_factor_jackknife": float(th.limit[th.limit.jackknife].factor.iloc[-1]),
        "limit_factor_plain": float(th.limit[~th.limit.jackknife].factor.iloc[-1]),
        "lam_main": down.lam_main,
        "seeds": list(down.seeds),
        "stage1": {
            "heldout_reward": table["held-out reward"].to_dict(),
            "kl_ref": table["final KL to pi_ref"].to_dict(),
            "reward_diff": evidence.triple(down.stage1_diff()),
        },
        "c6_downstream": {
            d: {
                "gap": evidence.triple(down.gaps[d]["gap"]),
                "end_gap": evidence.triple(down.gaps[d]["end_gap"]),
                "kl_common": down.gaps[d]["kl_common"],
            }
            for d in down.datasets
        },
        "wall_seconds": time.perf_counter() - t_start,
    }
    evidence.write_metrics(run_dir, metrics)
    return metrics
