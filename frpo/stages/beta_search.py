"""Find the KL coefficient beta that gives a target final per-token KL to pi_ref (KL matching).

The paper compares methods at (about) the same final per-token KL to pi_ref, tuning beta per
method and lam (App. C.1). ``search_beta`` does this by secant steps in log-log space: the final
KL falls with beta, roughly as a power law, so between the two tries whose KLs bracket the target
(or the two nearest when none do) it fits log KL = a + b log beta and tries the beta that
puts the line at the target. Each try is an ordinary run (its own directory, reused by later
calls and by the final comparison); every try is recorded in the returned list and in
``runs/<profile>/beta_search/<run_name of the beta-free spec>.json``.

The measured KL is the run's ``frpo/final/kl_ref`` (:mod:`frpo.stages.rlhf`), a sampling estimate;
``rtol`` should be larger than its noise.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from frpo.paths import runs_dir
from frpo.stages.rundir import load_metrics, write_json
from frpo.stages.spec import RLSpec, run_name
from frpo.stages.sweep import run_stage

KL_KEY = "frpo/final/kl_ref"
MAX_STEP = 10.0  # a secant step moves beta by at most this factor from the current beta


def next_beta(tries: list[tuple[float, float]], target: float) -> float:
    """The secant step in (log beta, log KL) towards ``target``.

    ``tries`` are (beta, kl) pairs (at least two, beta > 0). With a bracketing pair (one KL
    above, one below the target) the nearest such pair is used; otherwise the two tries
    closest to the target in log KL. A non-decreasing or degenerate fit falls back to a factor
    of 2 in the direction that lowers/raises the KL.

    Every step is capped to a factor of ``MAX_STEP`` (10) either way of the current beta, the
    try whose KL is nearest the target: a nearly flat fit (two noisy KLs almost equal) would
    otherwise extrapolate to a beta of ~0 or ~inf (a toy search once proposed 3e-15).
    """
    pts = [(math.log(b), math.log(max(k, 1e-12))) for b, k in tries if b > 0]
    if len(pts) < 2:
        raise ValueError("next_beta needs at least two tries with beta > 0")
    lt = math.log(target)
    above = [p for p in pts if p[1] > lt]
    below = [p for p in pts if p[1] <= lt]
    if above and below:
        p1 = min(above, key=lambda p: p[1] - lt)
        p2 = min(below, key=lambda p: lt - p[1])
    else:
        p1, p2 = sorted(pts, key=lambda p: abs(p[1] - lt))[:2]
    best = min(pts, key=lambda p: abs(p[1] - lt))  # the current beta
    if p1[0] == p2[0] or (p1[1] - p2[1]) / (p1[0] - p2[0]) >= 0:
        return math.exp(best[0]) * (2.0 if best[1] > lt else 0.5)
    slope = (p1[1] - p2[1]) / (p1[0] - p2[0])
    step = p1[0] + (lt - p1[1]) / slope  # log beta where the fitted line meets the target
    cap = math.log(MAX_STEP)
    return math.exp(min(max(step, best[0] - cap), best[0] + cap))


def record_path(spec: RLSpec, profile: str) -> Path:
    """Where :func:`search_beta` records the tries for ``spec`` (whatever its beta)."""
    return (
        runs_dir(profile) / "beta_search" / f"{run_name(dataclasses.replace(spec, beta=0.0))}.json"
    )


def search_beta(
    spec: RLSpec,
    target_kl: float,
    profile: str = "toy",
    betas: tuple[float, ...] = (0.01, 0.1),
    rtol: float = 0.15,
    max_tries: int = 5,
    runner=run_stage,
) -> tuple[RLSpec, list[dict]]:
    """The try closest to ``target_kl`` (its spec) and every try ``{beta, kl, run}`` in order.

    Starts with the ``betas`` given, then secant steps (:func:`next_beta`) until a try is
    within ``rtol`` (relative) of the target or ``max_tries`` runs were made.
    """
    if target_kl <= 0:
        raise ValueError(f"target_kl must be > 0, got {target_kl}")
    if len(betas) < 2 or any(b <= 0 for b in betas):
        raise ValueError(f"betas must be at least two values > 0, got {betas}")
    tries: list[dict] = []

    def attempt(beta: float) -> dict:
        s = dataclasses.replace(spec, beta=float(beta))
        kl = float(load_metrics(runner(s, profile))[KL_KEY])
        row = {"beta": float(beta), "kl": kl, "run": run_name(s)}
        tries.append(row)
        return row

    for b in betas[:max_tries]:
        attempt(b)
    while len(tries) < max_tries:
        if any(abs(t["kl"] - target_kl) <= rtol * target_kl for t in tries):
            break
        attempt(next_beta([(t["beta"], t["kl"]) for t in tries], target_kl))
    best = min(tries, key=lambda t: abs(math.log(max(t["kl"], 1e-12)) - math.log(target_kl)))
    record = record_path(spec, profile)
    record.parent.mkdir(parents=True, exist_ok=True)
    write_json(record, {"target_kl": target_kl, "rtol": rtol, "tries": tries, "best": best})
    return dataclasses.replace(spec, beta=best["beta"]), tries
