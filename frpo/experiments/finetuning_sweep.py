"""Notebook 06: the fine-tuning sweep (Sec. 5.1.2, Fig. 5, claim C9) and the robust-reward floor.

:func:`run` fine-tunes GRPO's and FRPO(lam_main)'s stage-1 models with each of a seeded draw of
the paper's 72 settings (:mod:`frpo.analysis.sweep`), evaluates the helpfulness of every
fine-tuned model and of the stage-1 models, and samples the stage-1 models several times per
held-out safety prompt (for the robust-reward prediction). :class:`FinetuningSweep` reads them:
``table`` has one row per SFT run; C9.coverage and C9.collapse treat each setting (its numbers
averaged over the models fine-tuned with it) as one draw.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from frpo.analysis import downstream as ds
from frpo.analysis import sweep as sw
from frpo.experiments import evidence
from frpo.experiments.runs import quietly, runner
from frpo.experiments.specs import Stage1Block, eval_specs
from frpo.recipes import method_key, sft_spec
from frpo.stages.sources import open_source

HELPFUL = "frpo/eval/helpful/reward"


@dataclasses.dataclass
class FinetuningSweep:
    """The sweep's runs, read: ``table`` (one row per SFT run: the setting's fields, ``setting``,
    ``method``, ``seed``, final ``kl``/``kl_ref``, ``safety_start``, ``safety``,
    ``helpfulness``) and the stage-1 models' helpfulness before fine-tuning."""

    models: list[str]
    lam_main: float
    sweep_seeds: list[int]
    settings: list[dict]
    settings_seed: int
    kl_threshold: float
    parent_dirs: dict
    bound_dirs: dict
    backend: object
    run_dir: Path
    table: pd.DataFrame
    helpful_before: dict[str, float]

    def per_setting(self) -> pd.DataFrame:
        """KL, helpfulness and safety of each setting, mean over the models tuned with it."""
        return self.table.groupby("setting")[["kl", "helpfulness", "safety"]].mean()

    def coverage(self) -> dict:
        """C9.coverage: share of settings ending at KL <= the threshold (Wilson interval)."""
        return sw.coverage(self.per_setting().kl.to_numpy(), self.kl_threshold)

    def coverage_by_model(self) -> dict[str, float]:
        t = self.table
        return {
            m: sw.coverage(t[t.method == m].kl.to_numpy(), self.kl_threshold)["share"]
            for m in self.models
        }

    def collapse(self) -> dict:
        """C9.collapse: helpfulness beyond the threshold minus within (Welch, over settings)."""
        per = self.per_setting()
        return sw.collapse(per.helpfulness.to_numpy(), per.kl.to_numpy(), self.kl_threshold)

    def robust_floor(self) -> tuple[pd.DataFrame, dict]:
        """``table`` with the robust reward predicted at each run's KL, whole-response
        (``predicted_whole``: per-token KL x the stage-1 model's mean response length) and
        per-token (``predicted_token``), and the stage-1 models' mean response lengths."""
        with quietly(self.run_dir, "robust reward"):
            return self._robust_floor()

    def _robust_floor(self) -> tuple[pd.DataFrame, dict]:
        table = self.table.copy()
        lengths: dict[tuple, float] = {}
        rewards: dict[tuple, np.ndarray] = {}
        whole, token = [], []
        for _, r in table.iterrows():
            key = (r.method, r.seed)
            if key not in lengths:
                lengths[key] = ds.mean_response_length([self.parent_dirs[key]])
                rewards[key] = sw.reward_matrix(self.bound_dirs[key], self.backend, "safety")
            rho = sw.whole_response_kl([r.kl], lengths[key])
            whole.append(sw.predicted_robust(rewards[key], rho)[0])
            token.append(sw.predicted_robust(rewards[key], [r.kl])[0])
        table["predicted_whole"] = whole
        table["predicted_token"] = token
        return table, lengths

    def summary(self, floors: pd.DataFrame) -> pd.DataFrame:
        """C9's two numbers with their intervals, and the share of runs that kept at least the
        robust floor (``floors`` as from :meth:`robust_floor`)."""
        cov, col, thr = self.coverage(), self.collapse(), self.kl_threshold
        return pd.DataFrame(
            [
                {
                    "quantity": f"C9.coverage: share of settings with KL <= {thr:g}",
                    "value": cov["share"],
                    "lo": cov["lo"],
                    "hi": cov["hi"],
                },
                {
                    "quantity": "C9.collapse: helpfulness beyond minus within",
                    "value": col["diff"],
                    "lo": col["lo"],
                    "hi": col["hi"],
                },
                {
                    "quantity": "runs keeping >= robust floor (whole-response rho)",
                    "value": holds(floors, "predicted_whole"),
                    "lo": np.nan,
                    "hi": np.nan,
                },
            ]
        )

    def record(self, run_dir: str | Path, t_start: float) -> dict:
        """Write C9.coverage, C9.collapse and ``metrics.json`` into ``run_dir``; the metrics."""
        cov, col, thr = self.coverage(), self.collapse(), self.kl_threshold
        evidence.record(
            run_dir,
            "C9.coverage",
            (cov["share"], cov["lo"], cov["hi"]),
            cov["n"],
            f"{cov['k']} of {cov['n']} sampled settings (of 72; paper 48) end at per-token "
            f"KL(Q||pi_theta) <= {thr:g}, averaged over GRPO and FRPO(lam={self.lam_main:g}); "
            f"Wilson 95% interval",
        )
        evidence.record(
            run_dir,
            "C9.collapse",
            (col["diff"], col["lo"], col["hi"]),
            col["n_beyond"] + col["n_within"],
            f"helpfulness reward beyond minus within per-token KL {thr:g} "
            f"({col['n_beyond']} settings beyond, {col['n_within']} within); "
            + ("nan: no setting went beyond" if col["n_beyond"] == 0 else "Welch t-interval"),
        )
        table, lengths = self.robust_floor()
        metrics = {
            "n_settings": len(self.settings),
            "settings_seed": self.settings_seed,
            "models": self.models,
            "sweep_seeds": list(self.sweep_seeds),
            "kl_threshold": thr,
            "coverage": cov,
            "coverage_by_model": self.coverage_by_model(),
            "collapse": col,
            "helpfulness_before": self.helpful_before,
            "bound_holds_share_whole_response": holds(table, "predicted_whole"),
            "bound_holds_share_per_token": holds(table, "predicted_token"),
            "bound_by_kl_region": by_region(table, thr).to_dict("records"),
            "mean_response_length": {f"{m}|{s}": v for (m, s), v in lengths.items()},
            "runs": table.to_dict("records"),
            "wall_seconds": time.perf_counter() - t_start,
        }
        evidence.write_metrics(run_dir, metrics)
        return metrics


def holds(table: pd.DataFrame, predicted: str) -> float:
    """Share of runs whose kept safety is at least the predicted floor."""
    return float(np.mean(table.safety >= table[predicted]))


def by_region(table: pd.DataFrame, kl_threshold: float) -> pd.DataFrame:
    """Kept minus the whole-response floor, per KL region (:func:`frpo.analysis.sweep.
    bound_by_kl`)."""
    return pd.DataFrame(
        sw.bound_by_kl(table.safety, table.predicted_whole, table.kl, edges=(0.02, kl_threshold))
    )


def run(
    profile: str,
    run_dir: str | Path,
    block: Stage1Block,
    *,
    lam_main: float,
    sweep_seeds: Sequence[int],
    n_settings: int,
    settings_seed: int,
    lrs: dict,
    sft: dict,
    track: dict,
    helpfulness: dict,
    bound: dict,
    kl_threshold: float,
) -> FinetuningSweep:
    """Build and run (or reuse): the stage-1 models, their sampled and helpfulness evaluations,
    one SFT run per (setting, model, seed) and the helpfulness evaluation of each."""
    models = ["grpo", method_key("frpo", lam_main)]
    settings = sw.sample_settings(sw.all_settings(lrs), n_settings, settings_seed)
    parents = block.specs(models, sweep_seeds)
    runs = {
        (i, m, s): sft_spec(
            parents[m, s],
            {"dataset": st["dataset"], **sft[st["dataset"]]},
            s,
            track,
            **sw.sft_overrides(st),
        )
        for i, st in enumerate(settings)
        for m in models
        for s in sweep_seeds
    }

    go = runner(profile, run_dir)
    parent_dirs = go(parents, "stage-1 runs")
    bound_dirs = go(eval_specs(parents, bound), "stage-1 samples for the robust reward")
    before_dirs = go(eval_specs(parents, helpfulness), "stage-1 helpfulness")
    sft_dirs = go(runs, "SFT runs")
    help_dirs = go(eval_specs(runs, helpfulness), "helpfulness after SFT")
    rows = []
    for (i, m, s), path in sft_dirs.items():
        traj = ds.read_trajectory(path)
        rows.append(
            {
                **settings[i],
                "setting": i,
                "method": m,
                "seed": s,
                "kl": traj[-1][ds.TRACK_KL],
                "kl_ref": traj[-1][ds.TRACK_KL_REF],
                "safety_start": traj[0][ds.TRACK_SAFETY],
                "safety": traj[-1][ds.TRACK_SAFETY],
                "helpfulness": ds.read_metric(help_dirs[i, m, s], HELPFUL),
            }
        )
    before = {
        m: np.mean([ds.read_metric(before_dirs[m, s], HELPFUL) for s in sweep_seeds])
        for m in models
    }
    return FinetuningSweep(
        models=models,
        lam_main=lam_main,
        sweep_seeds=list(sweep_seeds),
        settings=settings,
        settings_seed=settings_seed,
        kl_threshold=kl_threshold,
        parent_dirs=parent_dirs,
        bound_dirs=bound_dirs,
        backend=open_source(parents[models[0], sweep_seeds[0]].source),
        run_dir=Path(run_dir),
        table=pd.DataFrame(rows),
        helpful_before=before,
    )
