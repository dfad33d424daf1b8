"""Two sets of tracked downstream runs compared at a matched KL, seed by seed (C2, C6, Fig. 11).

``compare(a_runs, b_runs)`` pairs run ``a_runs[i]`` with ``b_runs[i]`` (one pair per seed, e.g.
FRPO's and GRPO's SFT runs from the same seed), reads both trajectories at their common KL and
averages the gap over seeds (:func:`frpo.analysis.downstream.paired_gaps`, the reading fixed in
:mod:`frpo.analysis.downstream`). :func:`seed_rows` turns the result into one table row per seed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from frpo.analysis.downstream import TRACK_SAFETY, curve, paired_gaps, read_trajectory
from frpo.experiments import evidence

EXACT_REFUSAL = "frpo/exact/harmful/refusal_mass"
"""The toy world's exact refusal mass on the tracked harmful requests (no sampling noise)."""
LABELS = {
    EXACT_REFUSAL: "exact refusal mass on harmful requests",
    TRACK_SAFETY: "sampled safety reward",
}


def compare(
    a_runs: Sequence[str | Path], b_runs: Sequence[str | Path], y: str = TRACK_SAFETY
) -> dict:
    """``paired_gaps`` of the trajectories of ``a_runs[i]`` against ``b_runs[i]``.

    ``y`` is the tracked metric read at the common per-token KL(Q || start) of each pair.
    Returns ``per_seed``, ``gap`` and ``end_gap`` as ``(mean, lo, hi)`` (nan interval for one
    pair) and ``kl_common``, as :func:`frpo.analysis.downstream.paired_gaps`.
    """
    if len(a_runs) != len(b_runs) or not a_runs:
        raise ValueError(
            f"compare needs equal, non-zero numbers of runs: {len(a_runs)} and {len(b_runs)}"
        )
    pairs = []
    for a, b in zip(a_runs, b_runs, strict=True):
        pairs.append((*curve(read_trajectory(a), y), *curve(read_trajectory(b), y)))
    return paired_gaps(pairs)


def seed_rows(
    result: dict,
    seeds: Sequence[Any],
    names: tuple[str, str],
    columns: Sequence[str] = ("common KL", "a", "b", "gap", "end gap", "end KL a", "end KL b"),
    tags: Mapping[str, Any] | None = None,
) -> list[dict]:
    """One row per seed of a :func:`compare` result: ``tags``, ``seed`` and ``columns``.

    Column names: ``common KL``, ``gap``, ``end gap``, ``grid gap``, and ``a``/``b``, ``end KL a``
    / ``end KL b``, in which ``a`` and ``b`` are replaced by ``names`` (e.g. ``("FRPO",
    "GRPO")`` gives ``FRPO``, ``GRPO``, ``end KL FRPO``, ``end KL GRPO``).
    """
    fields = {
        "common KL": "kl_common",
        "a": "a",
        "b": "b",
        "gap": "gap",
        "end gap": "end_gap",
        "grid gap": "grid_gap",
        "end KL a": "end_kl_a",
        "end KL b": "end_kl_b",
    }
    unknown = [c for c in columns if c not in fields]
    if unknown:
        raise ValueError(f"seed_rows: unknown column(s) {unknown}; known: {list(fields)}")
    a, b = names
    titles = {"a": a, "b": b, "end KL a": f"end KL {a}", "end KL b": f"end KL {b}"}
    rows = []
    for seed, g in zip(seeds, result["per_seed"], strict=True):
        row = {**(tags or {}), "seed": seed}
        row.update({titles.get(c, c): g[fields[c]] for c in columns})
        rows.append(row)
    return rows


def primary_metric(run: str | Path) -> str:
    """The metric the matched-KL claims read on ``run``'s trajectory: the exact refusal mass on
    harmful requests where the world has it (toy; the analogue of HarmBench's refusal rate, with
    no sampling noise), else the sampled safety reward (hub)."""
    return EXACT_REFUSAL if EXACT_REFUSAL in read_trajectory(run)[0] else TRACK_SAFETY


def compare_primary(a_runs: Sequence[str | Path], b_runs: Sequence[str | Path]) -> dict:
    """:func:`compare` on the :func:`primary_metric` (``primary``) and, when that is the exact
    mass, on the sampled safety reward too (``secondary``, else None); ``y`` names the primary."""
    y = primary_metric(a_runs[0])
    second = compare(a_runs, b_runs, TRACK_SAFETY) if y != TRACK_SAFETY else None
    return {"y": y, "primary": compare(a_runs, b_runs, y), "secondary": second}


def record_gap(run_dir: str | Path, key: str, both: dict, what: str):
    """Record claim part ``key`` from a :func:`compare_primary` result: the primary gap at the
    common KL over the seeds, the sampled gap beside it; ``what`` names the comparison."""
    gap = both["primary"]
    second = both["secondary"]
    return evidence.record(
        run_dir,
        key,
        gap["gap"],
        len(gap["per_seed"]),
        f"{LABELS[both['y']]} at the common per-token KL(Q||pi_theta) (mean "
        f"{np.mean(gap['kl_common']):.3f}), {what}; end-point gap {gap['end_gap'][0]:+.3f}",
        secondary=None if second is None else (LABELS[TRACK_SAFETY], second["gap"]),
    )
