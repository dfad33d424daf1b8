"""The scoreboard's verdict rules and evidence files (frpo.claims, frpo.stats)."""

import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from frpo import claims
from frpo.claims import NOT, PARTLY, REPRODUCED, Above, Below, Between, Evidence, InTarget, Part
from frpo.stats import interpolate_at, mean_interval, paired_difference


def test_mean_interval_matches_hand_computed_t_interval():
    # values 1, 2, 3: mean 2, sd 1, se 1/sqrt(3), t_{0.975, 2} = 4.30265272975 (tables)
    mean, lo, hi = mean_interval([1.0, 2.0, 3.0])
    half = 4.30265272975 / math.sqrt(3)
    assert mean == 2.0
    assert lo == pytest.approx(2.0 - half, rel=1e-10)
    assert hi == pytest.approx(2.0 + half, rel=1e-10)


def test_mean_interval_agrees_with_scipy_on_random_data():
    x = np.random.default_rng(0).normal(size=7)
    lo, hi = sps.t.interval(0.9, df=6, loc=x.mean(), scale=sps.sem(x))
    _, lo2, hi2 = mean_interval(x, level=0.9)
    assert (lo2, hi2) == pytest.approx((lo, hi), rel=1e-12)


def test_one_seed_has_no_interval_and_bad_input_is_named():
    mean, lo, hi = mean_interval([0.5])
    assert mean == 0.5 and math.isnan(lo) and math.isnan(hi)
    with pytest.raises(ValueError, match="non-empty"):
        mean_interval([])
    with pytest.raises(ValueError, match="finite"):
        mean_interval([1.0, float("nan")])
    with pytest.raises(ValueError, match="equal shapes"):
        paired_difference([1.0, 2.0], [1.0])


def test_paired_difference_is_the_interval_of_differences():
    a, b = [0.9, 0.8, 0.7], [0.5, 0.6, 0.4]
    assert paired_difference(a, b) == pytest.approx(mean_interval([0.4, 0.2, 0.3]))


def test_interpolate_at_reads_a_trajectory_and_refuses_to_extrapolate():
    kl, reward = [0.0, 0.1, 0.3], [1.0, 0.8, 0.2]
    assert interpolate_at(kl, reward, 0.2) == pytest.approx(0.5)
    assert interpolate_at(kl[::-1], reward[::-1], 0.05) == pytest.approx(0.9)
    assert math.isnan(interpolate_at(kl, reward, 0.5))


@pytest.mark.parametrize(
    ("evidence", "expected"),
    [
        (Evidence(0.1, (0.02, 0.18), seeds=3), REPRODUCED),  # whole interval above 0
        (Evidence(0.1, (-0.02, 0.22), seeds=3), PARTLY),  # point above, interval crosses 0
        (Evidence(-0.1, (-0.2, 0.01), seeds=3), NOT),
        (Evidence(0.1, None, seeds=1), PARTLY),  # one seed cannot be more than partly
        (Evidence(0.1, (math.nan, math.nan), seeds=1), PARTLY),
        (Evidence(0.1, None, seeds=0, exact=True), REPRODUCED),  # exact computation
        (Evidence(-0.1, None, seeds=0, exact=True), NOT),
        (Evidence(math.nan, None), NOT),
        (None, NOT),
    ],
)
def test_part_verdict_above_zero(evidence, expected):
    assert claims.part_verdict(Part("x", "x", Above(0.0)), evidence) == expected


def test_between_below_and_target_rules():
    between = Part("C8", "", Between(0.0, 1.0))
    assert claims.part_verdict(between, Evidence(0.5, (0.2, 0.8), 3)) == REPRODUCED
    assert claims.part_verdict(between, Evidence(0.5, (-0.2, 0.8), 3)) == PARTLY
    assert claims.part_verdict(between, Evidence(1.5, (1.2, 1.8), 3)) == NOT
    below = Part("C9.collapse", "", Below(0.0))
    assert claims.part_verdict(below, Evidence(-0.3, (-0.5, -0.1), 3)) == REPRODUCED
    target = Part("C4", "", InTarget())
    assert claims.part_verdict(target, Evidence(0.2, target=(0.09, 0.35))) == REPRODUCED
    assert claims.part_verdict(target, Evidence(0.5, target=(0.09, 0.35))) == PARTLY
    assert claims.part_verdict(target, Evidence(1.0, target=(0.09, 0.35))) == NOT
    with pytest.raises(ValueError, match="target"):
        claims.part_verdict(target, Evidence(0.2))


def test_claim_verdict_combines_parts():
    assert claims.claim_verdict([REPRODUCED, REPRODUCED]) == REPRODUCED
    assert claims.claim_verdict([REPRODUCED, NOT]) == PARTLY
    assert claims.claim_verdict([PARTLY, NOT]) == PARTLY
    assert claims.claim_verdict([NOT, NOT]) == NOT


def test_every_claim_of_the_paper_notes_is_on_the_board_once():
    ids = [c.id for c in claims.CLAIMS if c.origin == "paper"]
    assert ids == [f"C{i}" for i in range(1, 10)]
    ours = {c.id: c for c in claims.CLAIMS if c.origin != "paper"}
    assert set(ours) == {"C10"} and ours["C10"].origin == "frpo extension"
    assert [p.key for p in ours["C10"].parts] == ["C10.worst", "C10.attack"]
    keys = [p.key for c in claims.CLAIMS for p in c.parts]
    assert len(keys) == len(set(keys))


def test_evidence_round_trip_and_scoreboard(tmp_path):
    nb = tmp_path / "05_downstream_sft"
    claims.record_evidence(nb, "C2.alpaca", Evidence(0.1, (0.05, 0.15), 3, detail="per-token KL"))
    claims.record_evidence(nb, "C2.gsm8k", Evidence(0.02, (-0.01, 0.05), 3))
    claims.record_evidence(nb, "C2.gsm8k", Evidence(0.03, (0.01, 0.05), 3))  # replaces
    claims.record_evidence(nb, "C4", Evidence(0.2, None, 3, target=(0.1, 0.3)))
    with pytest.raises(ValueError, match="unknown claim part 'C2.alpacaa'"):
        claims.record_evidence(nb, "C2.alpacaa", Evidence(0.0))
    assert set(json.loads((nb / claims.EVIDENCE_FILE).read_text())) == {
        "C2.alpaca",
        "C2.gsm8k",
        "C4",
    }
    rows = {r["id"]: r for r in claims.scoreboard(tmp_path)}
    assert set(rows) == {c.id for c in claims.CLAIMS}
    assert rows["C2"]["verdict"] == REPRODUCED
    assert rows["C2"]["interval"] == (0.05, 0.15)
    assert rows["C4"]["verdict"] == REPRODUCED
    assert rows["C1"]["verdict"] == NOT
    assert rows["C1"]["parts"][0]["detail"] == "not measured in this profile"
    assert set(rows["C2"]) >= {
        "id",
        "claim",
        "paper",
        "value",
        "interval",
        "seeds",
        "verdict",
        "notebook",
    }
