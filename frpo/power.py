"""The power analysis behind the toy profile's seeds (issue: verdicts that survive a new machine).

Two stages, one rule. The *pilot* is the 3-seed toy build that preceded this analysis: for every
GRPO-vs-FRPO comparison it holds the per-seed paired differences (``reference/power_pilot.json``).
The *interim* is the first build with the pilot's seeds (``reference/power_interim.json``: every
part's standard deviation over its 5 to 13 seeds). Three seeds said little about the spread: the
interim's matched-KL readings scattered more than the pilot's (and the interim's own design
changed once before it, see ``profiles/provenance/toy.yaml``), so the seeds were planned again
from it, by the same rule, as in an internal-pilot design (sample size re-estimated from the
variance alone, never from an effect). The seeds of a comparison are the larger of the two plans.

The rule, at each stage:

1. Comparisons that measure the same kind of quantity form a *family* (:data:`FAMILIES`); a
   family's standard deviation of per-seed differences is pooled over its comparisons
   (``sqrt(mean of variances)``, with ``sum(n_i - 1)`` degrees of freedom).
2. The planning SD is the pooled SD times the 80% upper confidence factor
   ``sqrt(df / chi2_{0.2}(df))``: the plan holds unless the stage underestimated the spread by
   more than one chance in five.
3. The seeds are the fewest paired seeds whose MDE (:func:`frpo.stats.detectable_effect`: 80%
   power, two-sided 5%) at that SD is at most the comparison's target (:data:`TARGETS`: 0.05 for
   C2, the headline; 0.1 for the others, on the [0, 1] reward scale), and at least
   :data:`MIN_SEEDS`.

The realised MDE of every part is reported on the scoreboard after the run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from scipy import stats

from frpo.paths import repo_root
from frpo.stats import seeds_for_mde

PILOT = "reference/power_pilot.json"
INTERIM = "reference/power_interim.json"
STAGES = (PILOT, INTERIM)
"""The stages the seeds are planned from, in order."""
MIN_SEEDS = 5
"""No comparison rests on fewer paired seeds: its SD then has at least 4 degrees of freedom."""
UPPER = 0.8
"""Confidence of the upper bound on the pilot's SD that the plan uses."""
FAMILIES = {
    "kept safety at matched KL": (
        "C2.alpaca",
        "C2.gsm8k",
        "C6.downstream",
        "C8.sam_vs_grpo",
        "C8.frpo_vs_sam",
        "C10.attack",
    ),
    "stage-1 reward and task score": ("C1", "C3", "C5.reward", "C10.worst"),
    "math and code accuracy": ("C7.math", "C7.code"),
    "entropy ratio": ("C5.entropy",),
}
PRIMARY = {
    "kept safety at matched KL": "exact harmful refusal mass",
    "stage-1 reward and task score": None,  # each comparison's only metric
    "math and code accuracy": None,
    "entropy ratio": None,
}
"""The metric a family is planned on when the pilot has several (None: the one there is)."""
TARGETS = {"C2.alpaca": 0.05, "C2.gsm8k": 0.05}
SEED_PARAMS = {
    "C1": ("03_rlhf_safety", "main_seeds"),
    "C2.alpaca": ("05_downstream_sft", "main_seeds"),
    "C2.gsm8k": ("05_downstream_sft", "main_seeds"),
    "C3": ("05_downstream_sft", "main_seeds"),
    "C5.entropy": ("04_baseline_collapse", "seeds"),
    "C5.reward": ("04_baseline_collapse", "seeds"),
    "C6.downstream": ("02_jackknife", "seeds"),
    "C7.math": ("08_math_then_code", "seeds"),
    "C7.code": ("08_math_then_code", "seeds"),
    "C8.sam_vs_grpo": ("09_baselines_budgets", "seeds"),
    "C8.frpo_vs_sam": ("09_baselines_budgets", "seeds"),
    "C10.worst": ("11_worst_case_attacks", "seeds"),
    "C10.attack": ("11_worst_case_attacks", "seeds"),
}
"""Where a profile sets the paired seeds of each planned comparison: (notebook, parameter)."""
DEFAULT_TARGET = 0.1


def load_pilot(path: Path | str | None = None) -> dict:
    """A stage's comparisons: ``{part: {metric: {"per_seed": [...], "note": str}}}``, or
    ``{"sd": float, "n": int, "note": str}`` where the stage recorded only an interval; ``path``
    default :data:`PILOT`, relative paths from the repository root."""
    path = repo_root() / (path or PILOT)
    data = json.loads(path.read_text())
    return data["comparisons"]


def _entry(comparison: dict, metric: str | None) -> dict:
    if metric is None or metric not in comparison:
        if len(comparison) != 1:
            raise ValueError(f"several metrics {sorted(comparison)}: name the family's primary")
        metric = next(iter(comparison))
    return comparison[metric]


def variance_of(entry: dict) -> tuple[float, int]:
    """(variance of the per-seed differences, their number) of one pilot entry."""
    if "per_seed" not in entry:
        return float(entry["sd"]) ** 2, int(entry["n"])
    x = [float(v) for v in entry["per_seed"]]
    mean = sum(x) / len(x)
    return sum((v - mean) ** 2 for v in x) / (len(x) - 1), len(x)


def family_sd(pilot: dict, parts, metric: str | None) -> tuple[float, int]:
    """Pooled SD of per-seed differences over ``parts`` and its degrees of freedom."""
    variances, df = [], 0
    for part in parts:
        var, n = variance_of(_entry(pilot[part], metric))
        variances.append(var)
        df += n - 1
    return math.sqrt(sum(variances) / len(variances)), df


def upper_factor(df: int, confidence: float = UPPER) -> float:
    """``sqrt(df / chi2_{1 - confidence}(df))``: an SD estimated on ``df`` degrees of freedom,
    times this, bounds the true SD from above with probability ``confidence``."""
    return math.sqrt(df / stats.chi2.ppf(1 - confidence, df))


def seed_plan(pilot: dict) -> list[dict]:
    """One row per comparison: family, metric, pilot SD (its own and the family's), planning SD,
    target MDE and the seeds chosen (see the module docstring)."""
    rows = []
    for family, parts in FAMILIES.items():
        metric = PRIMARY[family]
        pooled, df = family_sd(pilot, parts, metric)
        plan_sd = pooled * upper_factor(df)
        for part in parts:
            own, _ = family_sd(pilot, [part], metric)
            target = TARGETS.get(part, DEFAULT_TARGET)
            rows.append(
                {
                    "part": part,
                    "family": family,
                    "metric": metric if metric in pilot[part] else next(iter(pilot[part])),
                    "pilot_seeds": variance_of(_entry(pilot[part], metric))[1],
                    "pilot_sd": own,
                    "family_sd": pooled,
                    "family_df": df,
                    "plan_sd": plan_sd,
                    "target_mde": target,
                    "seeds": max(MIN_SEEDS, seeds_for_mde(plan_sd, target)),
                }
            )
    return rows


def seeds_needed(plan: list[dict]) -> dict[str, int]:
    """``{part: seeds}`` of a plan."""
    return {row["part"]: row["seeds"] for row in plan}


def final_plan(stages=STAGES) -> list[dict]:
    """One row per comparison: each stage's seeds (``seeds_<i>``) and the larger of them
    (``seeds``), with the last stage's SDs and targets."""
    plans = [seed_plan(load_pilot(stage)) for stage in stages]
    rows = []
    for parts in zip(*plans, strict=True):
        row = dict(parts[-1])
        for i, part in enumerate(parts):
            row[f"seeds_{i}"] = part["seeds"]
        row["seeds"] = max(part["seeds"] for part in parts)
        rows.append(row)
    return rows
