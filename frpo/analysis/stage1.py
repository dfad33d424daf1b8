"""Reading stage-1 RLHF runs: training curves, final held-out numbers, seed bands, paired gaps.

Notebooks 03 (RLHF for safety, Fig. 13, claim C1) and 04 (the baseline ablation, Fig. 16, claim
C5) read the run directories of :mod:`frpo.stages.rlhf` through these helpers:

- ``curves.json`` holds TRL's log history, one row per optimizer step (``reward``, ``reward_std``,
  ``kl``, ``entropy``, ``frpo/...``) plus a final summary row (``train_runtime``), which is dropped;
- ``metrics.json`` holds the final held-out numbers (``frpo/final/reward/<task>``,
  ``frpo/final/kl_ref``: per-token KL to pi_ref on sampled held-out answers).

Tables are pandas DataFrames in long format: one row per (method, seed[, step]); ``method`` is a
method key of :mod:`frpo.recipes` (``grpo``, ``frpo-0.5``, ``frpo-0.5-nobase``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from frpo.recipes import make_source, objective_lam
from frpo.stages.backend import load_model, load_tokenizer
from frpo.stages.rlhf import held_out_metrics
from frpo.stages.sources import open_source
from frpo.stats import mean_interval, paired_difference

SUMMARY_KEYS = ("train_runtime", "train_loss")
"""Keys that mark TRL's end-of-training summary row (not a training step)."""


def read_curves(run_dir: str | Path) -> pd.DataFrame:
    """The per-step training log of one run: a DataFrame indexed by ``step`` (numeric columns).

    Raises ValueError when the run has no ``curves.json`` or no step rows.
    """
    path = Path(run_dir) / "curves.json"
    if not path.is_file():
        raise ValueError(f"no curves.json in {run_dir} (is it a finished RL run?)")
    rows = [
        r
        for r in json.loads(path.read_text())
        if "step" in r and not any(k in r for k in SUMMARY_KEYS)
    ]
    if not rows:
        raise ValueError(f"{path}: no training-step rows")
    frame = pd.DataFrame(rows).set_index("step").sort_index()
    return frame.select_dtypes("number")


def read_final(run_dir: str | Path) -> dict[str, float]:
    """The run's ``metrics.json`` (final held-out numbers and last logged training values)."""
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        raise ValueError(f"no metrics.json in {run_dir} (is it a finished run?)")
    return {k: float(v) for k, v in json.loads(path.read_text()).items()}


def collect(runs: Mapping[tuple[str, int], str | Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Curves and final numbers of ``{(method, seed): run_dir}``.

    Returns ``(curves, finals)``: ``curves`` has one row per (method, seed, step) with every logged
    column; ``finals`` one row per (method, seed) with ``lam`` and every ``metrics.json`` key.
    """
    if not runs:
        raise ValueError("collect needs at least one run")
    curves, finals = [], []
    for (method, seed), run_dir in runs.items():
        c = read_curves(run_dir).reset_index()
        c.insert(0, "seed", int(seed))
        c.insert(0, "method", method)
        curves.append(c)
        finals.append({"method": method, "seed": int(seed), "lam": objective_lam(method)})
        finals[-1].update(read_final(run_dir))
    return pd.concat(curves, ignore_index=True), pd.DataFrame(finals)


def tail_mean(curves: pd.DataFrame, column: str, last: int) -> pd.DataFrame:
    """Per (method, seed): the mean of ``column`` over the last ``last`` logged steps.

    A single logged step is noisy (one batch of B completions); the tail mean is the run's
    "final" training value. Returns columns ``method``, ``seed``, ``value``.
    """
    if last < 1:
        raise ValueError(f"last must be >= 1, got {last}")
    _need(curves, ("method", "seed", "step", column), "tail_mean")
    rows = []
    for (method, seed), g in curves.dropna(subset=[column]).groupby(["method", "seed"]):
        tail = g.sort_values("step")[column].to_numpy()[-last:]
        rows.append({"method": method, "seed": seed, "value": float(tail.mean())})
    return pd.DataFrame(rows, columns=["method", "seed", "value"])


def per_method_mean(table: pd.DataFrame, column: str = "value") -> dict[str, float]:
    """``{method: mean over seeds of column}`` (e.g. the stage-1 reward std notebook 05 reads)."""
    _need(table, ("method", column), "per_method_mean")
    return {m: float(g[column].mean()) for m, g in table.groupby("method")}


def paired_vs(
    table: pd.DataFrame, column: str, reference: str = "grpo", methods: Sequence[str] | None = None
) -> pd.DataFrame:
    """For each method, ``method - reference`` in ``column`` paired on seeds, with its t-interval.

    Only seeds both methods ran are paired (``n`` says how many). Returns columns ``method``,
    ``lam``, ``diff``, ``lo``, ``hi``, ``n``, sorted by decreasing lam.
    """
    _need(table, ("method", "seed", column), "paired_vs")
    ref = table[table["method"] == reference].set_index("seed")[column]
    if ref.empty:
        raise ValueError(f"paired_vs: no rows of the reference method {reference!r}")
    methods = methods or [m for m in table["method"].unique() if m != reference]
    rows = []
    for method in methods:
        mine = table[table["method"] == method].set_index("seed")[column]
        if mine.empty:
            raise ValueError(f"paired_vs: no rows of method {method!r}")
        seeds = sorted(set(mine.index) & set(ref.index))
        if not seeds:
            raise ValueError(f"paired_vs: {method!r} and {reference!r} share no seed")
        d, lo, hi = paired_difference(mine.loc[seeds].to_numpy(), ref.loc[seeds].to_numpy())
        rows.append(
            {"method": method, "lam": objective_lam(method), "diff": d, "lo": lo, "hi": hi}
            | {"n": len(seeds)}
        )
    out = pd.DataFrame(rows, columns=["method", "lam", "diff", "lo", "hi", "n"])
    return out.sort_values("lam", ascending=False, ignore_index=True)


def worst(diffs: pd.DataFrame) -> pd.Series:
    """The row of :func:`paired_vs` with the lowest point estimate (the C1 evidence)."""
    _need(diffs, ("diff",), "worst")
    if diffs.empty:
        raise ValueError("worst: empty table")
    return diffs.loc[diffs["diff"].idxmin()]


def ratio_interval(num: Sequence[float], den: Sequence[float]) -> tuple[float, float, float]:
    """Per-seed ratios ``num_i / den_i``, then their mean with a t-interval ``(mean, lo, hi)``.

    Used for C5's entropy ratio (no baseline over baseline, paired on seeds).
    """
    a, b = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"ratio_interval: need equal 1-D shapes, got {a.shape} and {b.shape}")
    if np.any(b <= 0):
        raise ValueError(f"ratio_interval: denominators must be > 0, got {b.tolist()}")
    return mean_interval(a / b)


def base_reference(world: Mapping, stage1: Mapping) -> dict[str, float]:
    """pi_ref's held-out numbers with the estimator every stage-1 run's ``metrics.json`` uses.

    Samples the base model (pi_ref) of ``world`` on the first ``stage1["n_eval"]`` held-out prompts
    of each of ``stage1["tasks"]`` with :data:`frpo.stages.rlhf.EVAL_SEED`, answers of at most
    ``stage1["max_completion_length"]`` tokens, as :func:`frpo.stages.rlhf.held_out_metrics` does
    for a trained run. Keys ``frpo/base/reward/<task>`` (and per reward function).
    """
    missing = [k for k in ("tasks", "n_eval", "max_completion_length") if k not in stage1]
    if missing:
        raise ValueError(f"base_reference: the stage1 block lacks {missing}")
    backend = open_source(make_source(dict(world)))
    path = str(backend.base_model_path())
    model, tokenizer = load_model(path), load_tokenizer(path)
    out = held_out_metrics(
        backend,
        model,
        model,
        model,
        tokenizer,
        list(stage1["tasks"]),
        int(stage1["n_eval"]),
        int(stage1["max_completion_length"]),
        "frpo/base",
    )
    return {k: float(v) for k, v in out.items() if "/reward/" in k}


def betas_literal(betas: Mapping[str, float], digits: int | None = None) -> str:
    """A YAML/Python flow mapping of a beta table, ordered GRPO first, then by decreasing lam.

    By default every beta is written exactly (shortest round-trip repr), so a pasted table names
    the very runs the search made (a run's directory is the hash of its spec, beta included);
    ``digits`` rounds to that many significant digits instead (for display).
    """
    keys = sorted(betas, key=lambda k: (-objective_lam(k), k))

    def fmt(v: float) -> str:
        return repr(float(v)) if digits is None else f"{float(v):.{digits}g}"

    return "{" + ", ".join(f'"{k}": {fmt(betas[k])}' for k in keys) + "}"


def _need(frame: pd.DataFrame, columns: Sequence[str], who: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{who}: missing column(s) {missing}; has {list(frame.columns)}")
