"""The scoreboard as one picture: a forest plot of every measured claim part.

One row per part (:func:`frpo.claims.scoreboard` rows, optionally annotated with
:func:`frpo.reference.annotate`). Parts are in different units (a reward difference, an entropy
ratio, a decay exponent, a lam), so each row has its own horizontal scale, and on it:

- the estimate (dot) and its 95% interval (bar), coloured by verdict (:data:`VERDICT_COLORS`);
- the rule's threshold(s) (dashed line) or, for a predicted range (C4), the range (band);
- the paper's effect on the same scale where the paper gives one (black diamond);
- the reference build's estimate and interval, where there is a reference (grey, below the dot).

The label of a row names the part, its verdict, its seeds and its MDE.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

VERDICT_COLORS = {
    "reproduced": "#2a9d4b",
    "contradicted": "#c0392b",
    "inconclusive": "#e09b24",
    "not measured": "#9e9e9e",
}


def measured_parts(board: Sequence[dict]) -> list[dict]:
    """The parts of a scoreboard that have a finite value, in claim order, each with its
    claim's ``id`` and ``origin``."""
    out = []
    for row in board:
        for part in row["parts"]:
            v = part.get("value")
            if isinstance(v, int | float) and math.isfinite(v):
                out.append({**part, "claim": row["id"], "origin": row.get("origin", "paper")})
    return out


def _finite(values) -> list[float]:
    return [float(v) for v in values if isinstance(v, int | float) and math.isfinite(v)]


def row_limits(part: dict) -> tuple[float, float]:
    """The horizontal range of one row: every drawn number, padded by 15% (a unit-wide window
    around a lone value)."""
    xs = [part["value"], *(part.get("interval") or []), *part.get("thresholds", [])]
    xs += list(part.get("target") or [])
    if part.get("paper_effect") is not None:
        xs.append(part["paper_effect"])
    ref = part.get("reference") or {}
    xs += [ref.get("ref_value"), *(ref.get("ref_interval") or [])]
    xs = _finite(xs)
    lo, hi = min(xs), max(xs)
    pad = 0.15 * (hi - lo) if hi > lo else 0.5 * max(abs(lo), 1.0)
    return lo - pad, hi + pad


def _label(part: dict) -> str:
    mde = part.get("mde")
    bits = [part["verdict"], f"n={part.get('seeds', 0)}"]
    if mde is not None:
        bits.append(f"MDE {mde:.2g}")
    if part.get("exact"):
        bits.append("exact")
    return f"{part['key']}\n" + ", ".join(bits)


def _draw_row(ax, part: dict) -> None:
    color = VERDICT_COLORS.get(part["verdict"], "0.5")
    for t in part.get("thresholds", []):
        ax.axvline(t, color="0.35", ls="--", lw=1)
    if part.get("target"):
        ax.axvspan(*part["target"], color="0.8", alpha=0.6, lw=0)
    ref = part.get("reference") or {}
    if ref.get("ref_value") is not None and math.isfinite(ref["ref_value"]):
        interval = ref.get("ref_interval")
        if interval and all(v is not None for v in interval):
            ax.plot(interval, [-0.3, -0.3], color="0.6", lw=2)
        ax.plot(ref["ref_value"], -0.3, "o", mfc="white", mec="0.5", ms=6)
    interval = part.get("interval")
    if interval and len(_finite(interval)) == 2:
        ax.plot(interval, [0, 0], color=color, lw=3, solid_capstyle="butt")
    ax.plot(part["value"], 0, "o", color=color, ms=9, mec="black", mew=0.5)
    if part.get("paper_effect") is not None:
        ax.plot(part["paper_effect"], 0.3, "D", color="black", ms=6)
    ax.set_xlim(*row_limits(part))
    ax.set_ylim(-0.7, 0.7)
    ax.set_yticks([])
    ax.set_ylabel(_label(part), rotation=0, ha="right", va="center", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)


def forest_plot(board: Sequence[dict], title: str = ""):
    """A matplotlib figure with one row per measured part (see the module docstring); None when
    no part was measured."""
    import matplotlib.pyplot as plt
    import seaborn as sns
    from matplotlib.lines import Line2D

    parts = measured_parts(board)
    if not parts:
        return None
    with sns.axes_style("whitegrid"):
        fig, axes = plt.subplots(
            len(parts), 1, figsize=(8.5, 0.62 * len(parts) + 1.4), squeeze=False
        )
        for ax, part in zip(axes[:, 0], parts, strict=True):
            _draw_row(ax, part)
    handles = [
        Line2D([], [], marker="o", ls="", color=c, mec="black", mew=0.5, label=v)
        for v, c in VERDICT_COLORS.items()
        if v != "not measured"
    ]
    handles += [
        Line2D([], [], color="0.35", ls="--", label="rule's threshold"),
        Line2D([], [], marker="D", ls="", color="black", label="paper's effect"),
        Line2D([], [], marker="o", ls="", mfc="white", mec="0.5", label="reference build"),
    ]
    height = 0.62 * len(parts) + 1.4
    fig.legend(
        handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False, borderaxespad=0.2
    )
    if title:
        fig.suptitle(title, fontsize=10)
    # room for the title above and the legend (two rows) below
    fig.tight_layout(rect=(0, 0.7 / height, 1, 1 - 0.35 / height))
    return fig
