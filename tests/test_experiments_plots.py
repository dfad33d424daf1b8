"""frpo.experiments.plots: the bands seaborn draws are the claims' t-intervals over seeds."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from frpo.experiments import plots  # noqa: E402
from frpo.stats import mean_interval  # noqa: E402

T975_1 = 12.706204736174707


def test_t_interval():
    # 0.1, 0.3: mean 0.2, sd 0.1414, half-width t(0.975, 1) * 0.1414 / sqrt(2) = t * 0.1
    lo, hi = plots.t_interval([0.1, 0.3])
    assert lo == pytest.approx(0.2 - T975_1 * 0.1) and hi == pytest.approx(0.2 + T975_1 * 0.1)
    assert plots.t_interval([0.5]) == (0.5, 0.5)  # one seed: a band of width 0


def test_smoothed_is_each_runs_trailing_mean():
    # one run, values 1, 2, 4, 8 (rows out of order) -> window 2: 1, 1.5, 3, 6
    curves = pd.DataFrame(
        {"method": ["grpo"] * 4, "seed": [0] * 4, "step": [3, 1, 2, 4], "y": [4.0, 1.0, 2.0, 8.0]}
    )
    out = plots.smoothed(curves, "y", 2)
    assert out["step"].tolist() == [1, 2, 3, 4] and out["y"].tolist() == [1.0, 1.5, 3.0, 6.0]
    with pytest.raises(ValueError, match="window"):
        plots.smoothed(curves, "y", 0)


def test_seed_bands_draws_the_mean_and_the_t_interval():
    rng = np.random.default_rng(0)
    rows = [
        {"method": m, "seed": s, "step": t, "y": float(rng.normal())}
        for m in ("grpo", "frpo-0.5")
        for s in range(3)
        for t in range(1, 5)
    ]
    curves = pd.DataFrame(rows)
    fig, ax = plt.subplots()
    colours = plots.palette(["grpo", "frpo-0.5"])
    plots.seed_bands(ax, curves, "y", ["grpo", "frpo-0.5"], colours, label="reward")
    grpo = curves[curves.method == "grpo"]
    line = ax.get_lines()[0]
    means = grpo.groupby("step")["y"].mean()
    assert np.allclose(line.get_ydata(), means.to_numpy())
    band = ax.collections[0].get_paths()[0].vertices  # the fill between lo and hi
    for step, g in grpo.groupby("step"):
        _, lo, hi = mean_interval(g["y"].to_numpy())
        ys = band[np.isclose(band[:, 0], step), 1]
        assert ys.min() == pytest.approx(lo) and ys.max() == pytest.approx(hi)
    assert ax.get_ylabel() == "reward"
    plt.close(fig)


def test_palette_covers_every_method_kind():
    colours = plots.palette(["grpo", "frpo-2", "frpo-0.2", "sam", "frpo-0.2-nojk", "frpo-1-nobase"])
    assert colours["grpo"] == "black" and colours["sam"] == "tab:green"
    assert colours["frpo-0.2-nojk"] == "tab:orange" and colours["frpo-1-nobase"] == "tab:red"
    assert colours["frpo-2"] != colours["frpo-0.2"]
    assert plots.palette(["grpo", "frpo-0.2"])["frpo-0.2"] == "tab:blue"
