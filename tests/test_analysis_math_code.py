"""frpo.analysis.math_code: before/after joins, Table 2 intervals, paired contrasts."""

import math

import pandas as pd
import pytest
from scipy import stats

from frpo.analysis import math_code as mc

ACC = "frpo/eval/math/correctness"


def frames():
    # two methods x three seeds; math accuracy before/after, hand-made
    before = pd.DataFrame(
        {
            "method": ["grpo"] * 3 + ["frpo-2"] * 3,
            "seed": [0, 1, 2] * 2,
            ACC: [0.5, 0.6, 0.7, 0.5, 0.6, 0.7],
        }
    )
    after = pd.DataFrame(
        {
            "method": ["frpo-2"] * 3 + ["grpo"] * 3,  # other row order: joined on keys
            "seed": [2, 1, 0] + [0, 1, 2],
            ACC: [0.6, 0.6, 0.5, 0.2, 0.4, 0.3],
        }
    )
    return before, after


def test_before_after_joins_on_method_and_seed():
    before, after = frames()
    j = mc.before_after(before, after, {"math": ACC})
    g = j[j.method == "grpo"].set_index("seed")
    assert g.loc[1, "math/before"] == 0.6 and g.loc[1, "math/after"] == 0.4
    assert g.loc[1, "math/gain"] == pytest.approx(-0.2)
    f = j[j.method == "frpo-2"].set_index("seed")
    assert f.loc[0, "math/after"] == 0.5 and f.loc[2, "math/after"] == 0.6


def test_before_after_rejects_mismatch():
    before, after = frames()
    with pytest.raises(ValueError, match="differ"):
        mc.before_after(before, after.iloc[:-1], {"math": ACC})
    with pytest.raises(ValueError, match="lacks"):
        mc.before_after(before, after, {"math": "nope"})
    with pytest.raises(ValueError, match="repeats"):
        mc.before_after(pd.concat([before, before.iloc[:1]]), after, {"math": ACC})


def test_table2_interval_by_hand():
    before, after = frames()
    j = mc.before_after(before, after, {"math": ACC})
    t = mc.table2(j, ["math"], ["grpo", "frpo-2"])
    row = t[(t.method == "grpo") & (t.stage == "after")].iloc[0]
    # after = [0.2, 0.4, 0.3]: mean 0.3, sd 0.1, half = t_{0.975,2} * 0.1 / sqrt(3)
    half = stats.t.ppf(0.975, 2) * 0.1 / math.sqrt(3)
    assert row["mean"] == pytest.approx(0.3)
    assert row.hi - row["mean"] == pytest.approx(half)
    assert list(t.method.unique()) == ["grpo", "frpo-2"] and row.n == 3
    wide = mc.wide_table(t)
    assert list(wide.index) == ["grpo", "frpo-2"]
    assert wide.loc["grpo", "math after"] == f"0.300 +- {half:.3f}"
    with pytest.raises(ValueError):
        mc.table2(j, ["math"], ["sam"])


def test_contrast_is_paired_on_seeds():
    before, after = frames()
    j = mc.before_after(before, after, {"math": ACC})
    # after: frpo [0.5, 0.6, 0.6] (seeds 0, 1, 2) minus grpo [0.2, 0.4, 0.3] = [0.3, 0.2, 0.3]
    m, lo, hi, n = mc.contrast(j, "math/after", "frpo-2", "grpo")
    assert m == pytest.approx(0.8 / 3) and n == 3 and lo < m < hi
    # gains: frpo [0, 0, -0.1], grpo [-0.3, -0.2, -0.4] -> differences [0.3, 0.2, 0.3], the same
    g = mc.contrast(j, "math/gain", "frpo-2", "grpo")
    assert g[0] == pytest.approx(0.8 / 3)
    with pytest.raises(ValueError):
        mc.contrast(j, "math/after", "frpo-2", "sam")


def test_pm_and_kl_spread():
    assert mc.pm(0.5, 0.4, 0.6) == "0.500 +- 0.100"
    assert mc.pm(0.5, math.nan, math.nan) == "0.500"
    assert mc.kl_spread({"grpo": 0.1, "frpo-2": 0.05}) == pytest.approx(2.0)
    assert math.isnan(mc.kl_spread({"grpo": 0.1, "frpo-2": -0.001}))
    with pytest.raises(ValueError):
        mc.kl_spread({})
    with pytest.raises(ValueError):
        mc.kl_spread({"grpo": math.inf})
