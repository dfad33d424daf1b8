"""The scoreboard's verdict rules and evidence files (frpo.claims, frpo.stats)."""

import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from frpo import claims
from frpo.claims import (
    CONTRADICTED,
    INCONCLUSIVE,
    NOT_MEASURED,
    REPRODUCED,
    SEEN,
    UNSEEN,
    Above,
    Below,
    Between,
    Evidence,
    InTarget,
    Part,
)
from frpo.stats import (
    compare_estimates,
    detectable_effect,
    interpolate_at,
    mean_interval,
    paired_difference,
    seeds_for_mde,
)


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
        (Evidence(0.1, (-0.02, 0.22), seeds=3), INCONCLUSIVE),  # straddles 0
        (Evidence(-0.1, (-0.2, 0.01), seeds=3), INCONCLUSIVE),  # point below, still straddles
        (Evidence(-0.1, (-0.2, -0.01), seeds=3), CONTRADICTED),  # whole interval below
        (Evidence(-0.1, (-0.2, 0.0), seeds=3), CONTRADICTED),  # "> 0" fails at 0 itself
        (Evidence(0.1, None, seeds=1), INCONCLUSIVE),  # one seed: no interval, no verdict
        (Evidence(0.1, (math.nan, math.nan), seeds=1), INCONCLUSIVE),
        (Evidence(0.1, None, seeds=0, exact=True), REPRODUCED),  # exact: decided on the value
        (Evidence(-0.1, None, seeds=0, exact=True), CONTRADICTED),
        (Evidence(math.nan, None), NOT_MEASURED),
        (None, NOT_MEASURED),
    ],
)
def test_part_verdict_above_zero(evidence, expected):
    assert claims.part_verdict(Part("x", "x", Above(0.0)), evidence) == expected


def test_between_below_and_target_rules():
    between = Part("B", "", Between(0.0, 1.0))
    assert claims.part_verdict(between, Evidence(0.5, (0.2, 0.8), 3)) == REPRODUCED
    assert claims.part_verdict(between, Evidence(0.5, (-0.2, 0.8), 3)) == INCONCLUSIVE
    assert claims.part_verdict(between, Evidence(1.5, (1.2, 1.8), 3)) == CONTRADICTED
    assert claims.part_verdict(between, Evidence(-0.5, (-0.8, -0.2), 3)) == CONTRADICTED
    assert claims.part_verdict(between, Evidence(0.9, (0.5, 1.3), 3)) == INCONCLUSIVE
    below = Part("C9.collapse", "", Below(0.0))
    assert claims.part_verdict(below, Evidence(-0.3, (-0.5, -0.1), 3)) == REPRODUCED
    assert claims.part_verdict(below, Evidence(0.3, (0.1, 0.5), 3)) == CONTRADICTED
    assert claims.part_verdict(below, Evidence(0.1, (-0.1, 0.3), 3)) == INCONCLUSIVE
    target = Part("C4", "", InTarget())
    rng = (0.09, 0.35)
    assert claims.part_verdict(target, Evidence(0.2, (0.1, 0.3), 3, target=rng)) == REPRODUCED
    assert claims.part_verdict(target, Evidence(0.5, (0.2, 1.0), 3, target=rng)) == INCONCLUSIVE
    assert claims.part_verdict(target, Evidence(1.0, (0.5, 2.0), 3, target=rng)) == CONTRADICTED
    assert claims.part_verdict(target, Evidence(0.2, None, 3, target=rng)) == INCONCLUSIVE
    assert claims.part_verdict(target, Evidence(0.2, exact=True, target=rng)) == REPRODUCED
    assert claims.part_verdict(target, Evidence(0.5, exact=True, target=rng)) == CONTRADICTED
    with pytest.raises(ValueError, match="target"):
        claims.part_verdict(target, Evidence(0.2))


def test_claim_verdict_combines_parts():
    assert claims.claim_verdict([REPRODUCED, REPRODUCED]) == REPRODUCED
    assert claims.claim_verdict([REPRODUCED, INCONCLUSIVE]) == INCONCLUSIVE
    assert claims.claim_verdict([REPRODUCED, CONTRADICTED]) == CONTRADICTED
    assert claims.claim_verdict([INCONCLUSIVE, CONTRADICTED]) == CONTRADICTED
    assert claims.claim_verdict([REPRODUCED, NOT_MEASURED]) == INCONCLUSIVE  # half the claim
    assert claims.claim_verdict([NOT_MEASURED, NOT_MEASURED]) == NOT_MEASURED


def test_detectable_effect_has_80_percent_power_by_simulation():
    # Paired t-test over n seeds with per-seed sd 1: at a true effect equal to the MDE, the
    # two-sided 5% test must reject in 80% of repetitions (200k draws: +-0.002 at 2 sigma).
    rng = np.random.default_rng(0)
    for n in (3, 5, 10):
        half = sps.t.ppf(0.975, n - 1) / math.sqrt(n)  # expected half-width at sd 1
        mde = detectable_effect(half, n - 1)
        x = rng.normal(mde, 1.0, size=(200_000, n))
        t = x.mean(1) / (x.std(1, ddof=1) / math.sqrt(n))
        power = np.mean(np.abs(t) > sps.t.ppf(0.975, n - 1))
        assert power == pytest.approx(0.8, abs=0.004), n
    # large df: the textbook (z_0.975 + z_0.8) = 2.8016 standard errors
    assert detectable_effect(1.959963985, math.inf) == pytest.approx(2.8016, abs=1e-3)
    assert detectable_effect(0.0, 5) == 0.0
    with pytest.raises(ValueError, match="df"):
        detectable_effect(1.0, 0.5)


def test_seeds_for_mde_is_the_smallest_sufficient_count():
    n = seeds_for_mde(0.05, 0.05)
    for m, ok in ((n - 1, False), (n, True)):
        half = sps.t.ppf(0.975, m - 1) * 0.05 / math.sqrt(m)
        assert (detectable_effect(half, m - 1) <= 0.05) is ok
    assert seeds_for_mde(0.0, 0.1) == 2


def test_compare_estimates_is_welchs_test():
    # two groups' means and standard errors: Welch's t-test from scipy on the same summaries
    m1, s1, n1, m2, s2, n2 = 0.3, 0.2, 5, 0.1, 0.1, 8
    ref = sps.ttest_ind_from_stats(m1, s1, n1, m2, s2, n2, equal_var=False)
    diff, p = compare_estimates(m1, s1 / math.sqrt(n1), n1 - 1, m2, s2 / math.sqrt(n2), n2 - 1)
    assert diff == pytest.approx(0.2) and p == pytest.approx(ref.pvalue, rel=1e-9)
    assert compare_estimates(1.0, 0.0, math.inf, 1.0, 0.0, math.inf) == (0.0, 1.0)
    assert compare_estimates(1.0, 0.0, math.inf, 2.0, 0.0, math.inf)[1] == 0.0


def test_mde_and_reading_of_inconclusive_parts():
    part = Part("C7.math", "", Above(0.0), paper_effect=0.222)
    ev = Evidence(0.02, (-0.01, 0.05), seeds=10)
    mde = claims.part_mde(part, ev)
    assert mde == pytest.approx(detectable_effect(0.03, 9))
    assert claims.reading(part, INCONCLUSIVE, mde) == SEEN  # 0.222 >> MDE ~0.09
    wide = Evidence(0.1, (-0.5, 0.7), seeds=3)
    assert claims.reading(part, INCONCLUSIVE, claims.part_mde(part, wide)) == UNSEEN
    assert claims.reading(part, REPRODUCED, mde) == ""
    assert claims.part_mde(part, Evidence(0.1, exact=True)) is None
    assert claims.part_mde(part, Evidence(0.1, None, seeds=1)) is None
    # the paper's effect is read as its margin from the rule's threshold: C3's is 0.057
    c3 = Part("C3", "", Above(-0.05), paper_effect=0.007)
    assert claims.reading(c3, INCONCLUSIVE, 0.05) == SEEN
    assert claims.reading(c3, INCONCLUSIVE, 0.06) == UNSEEN


def test_every_claim_of_the_paper_notes_is_on_the_board_once():
    ids = [c.id for c in claims.CLAIMS if c.origin == claims.PAPER]
    assert ids == [f"C{i}" for i in range(1, 10)]
    ours = {c.id: c for c in claims.CLAIMS if c.origin != claims.PAPER}
    assert set(ours) == {"C10"} and ours["C10"].origin == claims.EXTENSION == "frpo extension"
    assert [p.key for p in ours["C10"].parts] == ["C10.worst", "C10.attack"]
    keys = [p.key for c in claims.CLAIMS for p in c.parts]
    assert len(keys) == len(set(keys))


def test_evidence_round_trip_and_scoreboard(tmp_path):
    nb = tmp_path / "05_downstream_sft"
    claims.record_evidence(nb, "C2.alpaca", Evidence(0.1, (0.05, 0.15), 3, detail="per-token KL"))
    claims.record_evidence(nb, "C2.gsm8k", Evidence(0.02, (-0.01, 0.05), 3))
    claims.record_evidence(nb, "C2.gsm8k", Evidence(0.03, (0.01, 0.05), 3))  # replaces
    claims.record_evidence(nb, "C4", Evidence(0.2, (0.15, 0.25), 3, target=(0.1, 0.3)))
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
    assert rows["C1"]["verdict"] == NOT_MEASURED
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


def test_numerics_pin_only_where_the_cpu_can_and_never_overrides(monkeypatch):
    from frpo import numerics

    monkeypatch.setattr(numerics, "can_pin", lambda: True)
    env = {"MKL_CBWR": "AUTO"}
    added = numerics.pin(env)
    assert added == {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    assert env["MKL_CBWR"] == "AUTO"  # a value the user set wins
    assert numerics.state(env)["mode"] == "custom"
    assert numerics.state({**env, **numerics.PINNED})["mode"] == "pinned to AVX2"
    assert numerics.pin({numerics.OPT_OUT: "1"}) == {}
    monkeypatch.setattr(numerics, "can_pin", lambda: False)
    assert numerics.pin({}) == {}
    assert numerics.state({})["mode"].startswith("native (no AVX2")


def test_the_test_process_runs_the_pinned_avx2_paths():
    import torch

    from frpo import numerics

    if numerics.can_pin() and not __import__("os").environ.get(numerics.OPT_OUT):
        assert torch.backends.cpu.get_cpu_capability() == "AVX2"


def test_a_notebook_says_when_its_numerics_are_not_pinned(monkeypatch):
    from frpo import numerics

    monkeypatch.setattr(numerics, "can_pin", lambda: True)
    note = numerics.unpinned_note("AVX512", {})
    assert "AVX512 code paths" in note and "MKL_CBWR=AVX2,STRICT" in note
    assert numerics.unpinned_note("AVX2", {}) == ""
    assert numerics.unpinned_note("AVX512", {numerics.OPT_OUT: "1"}) == ""
