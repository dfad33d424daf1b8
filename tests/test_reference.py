"""The reference scoreboard and the comparison of a build with it (frpo.reference), the forest
plot (frpo.analysis.forest) and the scoreboard page that shows both (frpo.book.pages)."""

import json
import math

import pytest
from scipy import stats as sps

from frpo import claims, reference
from frpo.analysis.forest import forest_plot, measured_parts, row_limits
from frpo.book import pages
from frpo.claims import Evidence


def _part(value, interval=None, seeds=10, verdict="inconclusive", exact=False, df=None):
    return {
        "key": "C2.alpaca",
        "value": value,
        "interval": interval,
        "seeds": seeds,
        "df": df,
        "exact": exact,
        "verdict": verdict,
    }


def test_same_numbers_are_consistent_and_keep_their_verdict():
    now = _part(0.05, (0.01, 0.09), verdict="reproduced")
    out = reference.compare_part(now, dict(now))
    assert out["diff"] == 0.0 and out["p"] == pytest.approx(1.0) and out["consistent"] is True
    assert out["verdict_changed"] is False


def test_a_difference_far_beyond_both_intervals_is_flagged():
    # half-widths 0.02 at 9 df: se = 0.02 / t_{0.975, 9} = 0.00884 each; a 0.1 difference is
    # 0.1 / (0.00884 * sqrt 2) = 8 standard errors apart
    now = _part(0.10, (0.08, 0.12), verdict="reproduced")
    ref = _part(0.00, (-0.02, 0.02), verdict="inconclusive")
    out = reference.compare_part(now, ref)
    se = 0.02 / sps.t.ppf(0.975, 9)
    assert out["p"] == pytest.approx(2 * sps.t.sf(0.1 / (se * math.sqrt(2)), 18), rel=1e-6)
    assert out["consistent"] is False and out["verdict_changed"] is True
    assert out["ref_verdict"] == "inconclusive" and out["diff"] == pytest.approx(0.1)


def test_a_verdict_flip_within_noise_is_a_changed_verdict_but_consistent():
    # the case the issue saw: the same data straddle the threshold on one machine and not the other
    now = _part(0.021, (0.001, 0.041), verdict="reproduced")
    ref = _part(-0.021, (-0.066, 0.024), verdict="inconclusive")
    out = reference.compare_part(now, ref)
    assert out["verdict_changed"] is True and out["consistent"] is True


def test_exact_and_untestable_parts():
    a = _part(0.7, exact=True, verdict="reproduced")
    assert reference.compare_part(a, dict(a))["consistent"] is True
    assert reference.compare_part(a, {**a, "value": 0.7 + 1e-9})["consistent"] is True
    assert reference.compare_part(a, {**a, "value": 0.8})["consistent"] is False
    one_seed = _part(0.1, None, seeds=1)
    out = reference.compare_part(one_seed, _part(0.1, (0.0, 0.2)))
    assert out["consistent"] is None and out["p"] is None
    missing = reference.compare_part(_part(None), _part(0.1, (0.0, 0.2)))
    assert missing["diff"] is None and missing["consistent"] is None


def _board(tmp_path):
    nb = tmp_path / "05_downstream_sft"
    claims.record_evidence(nb, "C2.alpaca", Evidence(0.05, (0.01, 0.09), 10))
    claims.record_evidence(nb, "C2.gsm8k", Evidence(-0.01, (-0.05, 0.03), 10))
    claims.record_evidence(nb, "C4", Evidence(0.2, (0.1, 0.5), 3, target=(0.09, 0.35)))
    return claims.scoreboard(tmp_path)


def test_reference_round_trip_and_annotation(tmp_path):
    board = _board(tmp_path)
    ref = reference.make_reference(board, profile="toy", commit="abc", machine={"cpu": "x"})
    assert set(ref["parts"]) == {"C2.alpaca", "C2.gsm8k", "C4"}
    (tmp_path / reference.REFERENCE_DIR).mkdir()
    reference.reference_path("toy", tmp_path).write_text(json.dumps(ref))
    loaded = reference.load_reference("toy", tmp_path)
    annotated = reference.annotate(_board(tmp_path), loaded)
    rows = {r["id"]: r for r in annotated}
    assert rows["C2"]["reference"]["commit"] == "abc"
    assert rows["C2"]["parts"][0]["reference"]["consistent"] is True
    assert rows["C1"]["parts"][0]["reference"] is None  # the reference never measured C1
    assert reference.load_reference("paper", tmp_path) is None
    reference.reference_path("bad", tmp_path).write_text("{not json")
    with pytest.raises(ValueError, match="bad.json is not valid JSON"):
        reference.load_reference("bad", tmp_path)
    assert all(p["reference"] is None for r in reference.annotate(board, None) for p in r["parts"])


def test_forest_plot_draws_one_row_per_measured_part(tmp_path):
    pytest.importorskip("seaborn")
    import matplotlib

    matplotlib.use("Agg")
    board = _board(tmp_path)
    parts = measured_parts(board)
    assert [p["key"] for p in parts] == ["C2.alpaca", "C2.gsm8k", "C4"]
    fig = forest_plot(board, "toy")
    assert len(fig.axes) == 3
    # each row's scale covers its interval, its thresholds and (C4) its predicted range
    lo, hi = row_limits(parts[2])
    assert lo < 0.09 and hi > 0.5
    assert forest_plot(claims.scoreboard(tmp_path / "empty")) is None


def test_scoreboard_page_shows_mde_reference_and_figure(tmp_path):
    board = _board(tmp_path)
    ref = reference.make_reference(board, profile="toy", commit="abc123", machine={"cpu": "x"})
    ref["parts"]["C2.gsm8k"] = {**ref["parts"]["C2.gsm8k"], "value": 0.5, "verdict": "reproduced"}
    md = pages.scoreboard_md(reference.annotate(board, ref), [], "toy", figure="claims_forest.png")
    assert "```{figure} claims_forest.png" in md
    assert "MDE" in md and "reference +0.05 [0.01, 0.09], consistent with noise" in md
    assert "**verdict changed (was reproduced)**" in md
    assert "Verdict changed: C2.gsm8k" in md
    plain = pages.scoreboard_md(claims.scoreboard(tmp_path), [], "toy")
    assert "figure" not in plain and "No reference build is shipped" in plain


def test_the_package_key_covers_the_reference_data(tmp_path):
    from frpo.book.keys import package_hash

    pkg = tmp_path / "frpo"
    pkg.mkdir()
    (pkg / "a.py").write_text("x = 1\n")
    before = package_hash(pkg)
    (tmp_path / "reference").mkdir()
    (tmp_path / "reference" / "toy.json").write_text('{"parts": {}}')
    with_ref = package_hash(pkg)
    (tmp_path / "reference" / "toy.json").write_text('{"parts": {"C1": {}}}')
    assert len({before, with_ref, package_hash(pkg)}) == 3  # a new reference re-executes 10


def test_the_reference_keeps_each_notebooks_seconds_from_the_manifest(tmp_path):
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"notebooks": {
        "03_rlhf_safety": {"status": "ok", "wall_s": 451.06},
        "05_downstream_sft": {"status": "failed", "wall_s": 12.0},
    }}))  # fmt: skip
    assert reference._notebook_walls(manifest) == {"03_rlhf_safety": 451.1}
    assert reference._notebook_walls(tmp_path / "missing.json") == {}
    ref = reference.make_reference([], profile="toy", commit="abc", machine={},
                                   notebook_wall_s={"b": 2.0, "a": 1.0})  # fmt: skip
    assert list(ref["notebook_wall_s"]) == ["a", "b"]
