"""One NaN policy for estimates with intervals, and the one way notebooks write their numbers.

Inside the package an estimate is a triple ``(mean, lo, hi)`` of floats (:mod:`frpo.stats`); an
interval that cannot be computed (one seed, one usable setting) has ``lo = hi = nan``. At the two
places where an estimate leaves the package, nan becomes "no value":

- a claim part's evidence (:func:`record`): the interval is ``None`` when either end is nan
  (:func:`interval_of`), so the scoreboard rules on the point estimate alone;
- a JSON file (:func:`write_metrics`): every nan float is written as ``null`` (:func:`jsonable`),
  since JSON has no nan.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from frpo.claims import Evidence, record_evidence
from frpo.stages.rundir import write_json

METRICS_FILE = "metrics.json"


def interval_of(estimate: float | Sequence[float]) -> tuple[float, float] | None:
    """``(lo, hi)`` of ``(mean, lo, hi, ...)``, or None when either end is nan (or when the
    estimate is a bare number)."""
    if not isinstance(estimate, Sequence):
        return None
    lo, hi = float(estimate[1]), float(estimate[2])
    return None if math.isnan(lo) or math.isnan(hi) else (lo, hi)


def triple(estimate: Sequence[float]) -> list[float | None]:
    """``[mean, lo, hi]`` as JSON values (nan -> None) of an estimate (extra items ignored)."""
    return [None if math.isnan(float(v)) else float(v) for v in estimate[:3]]


def record(
    run_dir: str | Path,
    key: str,
    estimate: float | Sequence[float],
    seeds: int,
    detail: str,
    *,
    target: tuple[float, float] | None = None,
    exact: bool = False,
    secondary: tuple[str, float | Sequence[float]] | None = None,
    df: float | None = None,
) -> Evidence:
    """Record claim part ``key`` and return its evidence.

    Value ``estimate[0]`` (or ``estimate`` itself when it is a number), interval
    :func:`interval_of` (None when ``exact``); written to ``<run_dir>/claims_evidence.json`` by
    :func:`frpo.claims.record_evidence`. ``secondary = (what, estimate)`` is the same comparison
    on another metric, shown beside the primary one; ``df`` the interval's degrees of freedom
    when it is not a t-interval over ``seeds`` paired seeds.
    """
    second = None
    if secondary is not None:
        what, est = secondary
        value = est[0] if isinstance(est, Sequence) else est
        second = {"what": what, "value": float(value), "interval": interval_of(est)}
    evidence = Evidence(
        estimate[0] if isinstance(estimate, Sequence) else estimate,
        None if exact else interval_of(estimate),
        seeds,
        target=target,
        detail=detail,
        exact=exact,
        df=df,
        secondary=second,
    )
    record_evidence(run_dir, key, evidence)
    return evidence


def jsonable(obj: Any) -> Any:
    """``obj`` with every nan float as None, tuples as lists and numpy scalars as Python numbers
    (mappings and sequences followed recursively; keys kept)."""
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return None if math.isnan(obj) else obj
    if isinstance(obj, Mapping):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    return obj


def write_metrics(run_dir: str | Path, metrics: Mapping[str, Any]) -> Path:
    """``<run_dir>/metrics.json`` from ``metrics`` (:func:`jsonable`, sorted keys, atomic)."""
    path = Path(run_dir) / METRICS_FILE
    write_json(path, jsonable(metrics))
    return path
