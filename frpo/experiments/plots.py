"""The figures the chapters share, drawn with seaborn: seed bands, trajectories, method colours.

Every band is the mean over seeds with the same 95% Student-t interval the claims use
(:func:`frpo.stats.mean_interval`, passed to seaborn as its ``errorbar``), not seaborn's default
bootstrap; a step with one seed draws a band of width 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from frpo.recipes import on_sweep, parse_method
from frpo.stats import mean_interval

FIGURE_DPI = 120


def t_interval(values) -> tuple[float, float]:
    """``(lo, hi)`` of the 95% t-interval of the mean of ``values`` (the mean twice for one)."""
    v = np.asarray(values, dtype=float)
    if v.size == 1:
        return float(v[0]), float(v[0])
    _, lo, hi = mean_interval(v)
    return lo, hi


def palette(methods: Sequence[str]) -> dict[str, object]:
    """One colour per method key: GRPO black, GRPO+SAM green, the plain FRPO lams along viridis
    (in the order given; blue when there is one), an FRPO ablation orange (``-nojk``) or red
    (``-nobase``)."""
    import matplotlib.pyplot as plt

    plain = [m for m in methods if on_sweep(m) and parse_method(m)["method"] == "frpo"]
    if len(plain) == 1:
        colours: dict[str, object] = {plain[0]: "tab:blue"}
    else:  # from dark blue to yellow-green, clear of GRPO's black
        colours = {
            m: plt.cm.viridis(0.15 + 0.7 * i / (len(plain) - 1)) for i, m in enumerate(plain)
        }
    for m in methods:
        fields = parse_method(m)
        if fields["method"] == "grpo":
            colours[m] = "black"
        elif fields["method"] == "grpo_sam":
            colours[m] = "tab:green"
        elif m not in colours:
            colours[m] = "tab:red" if fields.get("baseline") is False else "tab:orange"
    return colours


def smoothed(curves: pd.DataFrame, column: str, window: int = 1) -> pd.DataFrame:
    """``curves`` (long: ``method``, ``seed``, ``step``, ...) with ``column`` replaced by each run's
    trailing mean over its last ``window`` logged steps (fewer at the start); rows without a
    value dropped."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    data = curves.dropna(subset=[column]).sort_values(["method", "seed", "step"])
    rolled = data.groupby(["method", "seed"])[column].transform(
        lambda x: x.rolling(window, min_periods=1).mean()
    )
    return data.assign(**{column: rolled})


def seed_bands(
    ax,
    curves: pd.DataFrame,
    column: str,
    methods: Sequence[str],
    colours: dict,
    *,
    window: int = 1,
    label: str | None = None,
) -> None:
    """Per method: the mean over seeds of ``column`` against the step, with its t-band.

    Each run is first smoothed by a trailing mean over ``window`` steps (:func:`smoothed`).
    """
    import seaborn as sns

    data = smoothed(curves[curves["method"].isin(methods)], column, window)
    present = [m for m in methods if m in set(data["method"])]
    sns.lineplot(
        data=data,
        x="step",
        y=column,
        hue="method",
        hue_order=present,
        palette={m: colours[m] for m in present},
        errorbar=t_interval,
        err_kws={"alpha": 0.15},
        ax=ax,
    )
    ax.set_xlabel("optimizer step" + (f" (trailing mean over {window})" if window > 1 else ""))
    ax.set_ylabel(label or column)


def run_lines(
    ax,
    frame: pd.DataFrame,
    x: str,
    y: str,
    hue: str,
    colours: dict,
    *,
    hue_order: Sequence[str] | None = None,
    units: str = "seed",
) -> None:
    """One line per run (``units``) of ``y`` against ``x`` in the order of the rows, coloured by
    ``hue`` (e.g. a downstream run's safety against its KL, one line per seed)."""
    import seaborn as sns

    order = list(hue_order) if hue_order is not None else list(dict.fromkeys(frame[hue]))
    sns.lineplot(
        data=frame,
        x=x,
        y=y,
        hue=hue,
        hue_order=order,
        palette={h: colours[h] for h in order},
        units=units,
        estimator=None,
        sort=False,
        marker="o",
        markersize=4,
        alpha=0.8,
        ax=ax,
    )


def save(fig, run_dir: str | Path, name: str) -> Path:
    """Lay out ``fig``, write it to ``<run_dir>/<name>`` and show it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(run_dir) / name
    fig.savefig(path, dpi=FIGURE_DPI)
    plt.show()
    return path
