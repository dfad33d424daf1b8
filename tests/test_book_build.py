"""Build a small book from executed fixture notebooks and check its HTML: links and images
resolve, the scoreboard is on the front page, every chapter is there with its figures, numbers come
from runs/. Two kernel starts and two Jupyter Book builds, ~30 s. The real smoke profile end to end
is ``test_smoke_profile_book_end_to_end`` (slow)."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from test_book_fixtures import make_fixture_repo

from frpo.book import pages
from frpo.book.build import build_book
from frpo.book.check import check_book, check_profile, image_outputs, parse_page
from frpo.book.execute import run_profile


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("book")
    dirs = make_fixture_repo(root)
    run_profile("fix", progress=False, **dirs)
    html = build_book("fix", build_root=root / "build", **dirs)
    return {"root": root, "html": html, **dirs}


def _text(path):
    return " ".join(" ".join(parse_page(path).text).split())


def test_built_book_passes_every_check(built):
    assert check_profile("fix", built["html"], **_dirs(built)) == []


def _dirs(built):
    return {k: built[k] for k in ("runs_root", "profiles_dir", "notebooks_dir")}


def test_front_page_scoreboard_rows_link_to_their_chapters(built):
    front = built["html"] / "intro.html"
    page = parse_page(front)
    assert "scoreboard" in page.ids
    text = _text(front)
    claims = json.loads((built["runs_root"] / "fix" / "claims.json").read_text())
    # The row of C1 shows claims.json's value and interval (n=2, scale=1: total 1, [0, 2]).
    assert claims[0]["value"] == 1.0 and claims[0]["interval"] == [0.0, 2.0]
    assert "C1 alpha total is positive > 0 +1 [0, 2] 3 reproduced Alpha chapter" in text
    assert "C2 beta agrees 1 +1 3 not tested Beta chapter" in text
    assert "This build renders the fix profile" in text
    table_links = re.findall(r'href="(notebooks/0[12]_\w+\.html)"', front.read_text())
    assert {"notebooks/01_alpha.html", "notebooks/02_beta.html"} <= set(table_links)
    assert "Scoreboard not yet computed" not in text
    # the forest plot notebook 10 writes beside claims.json opens the scoreboard
    assert any(src.endswith(pages.FOREST_FIGURE) for src in page.images)


def test_every_chapter_has_its_figures(built):
    out = built["runs_root"] / "fix" / "notebooks"
    want = {"01_alpha": 1, "02_beta": 2}
    for name, n in want.items():
        assert image_outputs(out / f"{name}.ipynb") == n
        imgs = parse_page(built["html"] / "notebooks" / f"{name}.html").images
        files = [built["html"] / "notebooks" / src for src in imgs if src.startswith("../_images")]
        assert len(files) == n and all(f.is_file() and f.stat().st_size > 1000 for f in files)
    alpha = _text(built["html"] / "notebooks" / "01_alpha.html")
    assert "Alpha chapter" in alpha
    # The chapter shows the parameters it ran with, not the notebook's defaults.
    assert 'n = 2 scale = 1.0 profile = "fix"' in alpha
    assert 'profile = "toy"' not in alpha and "n = 3" not in alpha


def test_reproducibility_page_reads_the_manifest(built):
    manifest = json.loads((built["runs_root"] / "fix" / "manifest.json").read_text())
    text = _text(built["html"] / "reproducibility.html")
    for name, entry in manifest["notebooks"].items():
        assert f"{name} {entry['wall_s']:.4g} {entry['finished_at']}" in text
    total = sum(e["wall_s"] for e in manifest["notebooks"].values())
    assert f"total {total:.4g}" in text
    assert f"papermill {manifest['environment']['packages']['papermill']}" in text


def test_missing_claims_show_a_notice_instead_of_a_table(built, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(built["runs_root"], runs)
    (runs / "fix" / "claims.json").unlink()
    dirs = {**_dirs(built), "runs_root": runs}
    html = build_book("fix", build_root=tmp_path / "build", **dirs)
    assert "Scoreboard not yet computed" in _text(html / "intro.html")
    assert check_profile("fix", html, **dirs) == []
    # With claims expected, the same page fails the check.
    chapters = {n: runs / "fix" / "notebooks" / f"{n}.ipynb" for n in ("01_alpha", "02_beta")}
    claims = [{"id": "C9"}]
    assert check_book(html, chapters, claims=claims) == [
        "intro.html: scoreboard lacks claim 'C9'",
        "intro.html: the scoreboard has no forest plot (claims_forest.png)",
    ]


def test_check_reports_broken_links_images_and_chapters(built, tmp_path):
    html = tmp_path / "html"
    shutil.copytree(built["html"], html)
    chapters = {n: built["runs_root"] / "fix" / "notebooks" / f"{n}.ipynb" for n in ("01_alpha",)}
    page = html / "notebooks" / "01_alpha.html"
    img = next(s for s in parse_page(page).images if s.startswith("../_images"))
    (page.parent / img).unlink()
    methods = html / "methods.html"
    methods.write_text(
        methods.read_text().replace("</body>", '<a href="nowhere.html">x</a></body>')
    )
    methods.write_text(
        methods.read_text().replace("</body>", '<a href="intro.html#nope">y</a></body>')
    )
    chapters["03_gone"] = chapters["01_alpha"]
    problems = check_book(
        html, chapters, claims=json.loads((built["runs_root"] / "fix" / "claims.json").read_text())
    )
    assert f"notebooks/01_alpha.html: image {img} does not resolve" in problems
    assert "methods.html: link nowhere.html does not resolve" in problems
    assert "methods.html: link intro.html#nope: no element with id 'nope'" in problems
    assert "chapter 03_gone: no page notebooks/03_gone.html" in problems


def test_scoreboard_rejects_malformed_claims(tmp_path):
    path = tmp_path / "claims.json"
    path.write_text(json.dumps([{"id": "C1", "claim": "x"}]))
    with pytest.raises(ValueError, match=r"claim 'C1' lacks \['paper', 'value'"):
        pages.load_claims(path)
    path.write_text(json.dumps({"C1": {}}))
    with pytest.raises(ValueError, match="expected a list of claims"):
        pages.load_claims(path)
    assert pages.load_claims(tmp_path / "absent.json") is None


@pytest.mark.slow
def test_smoke_profile_book_end_to_end(tmp_path):
    """Every notebook of the real smoke profile, executed and built (minutes)."""
    runs = tmp_path / "runs"
    run_profile("smoke", runs_root=runs, progress=False)
    html = build_book("smoke", runs_root=runs, build_root=tmp_path / "build")
    assert check_profile("smoke", html, runs_root=runs) == []


def test_measured_cell_lists_every_part_with_its_rule_and_interval():
    from frpo.book.pages import measured_cell

    claim = {
        "value": 0.5,
        "interval": None,
        "parts": [
            {"key": "C2.a", "what": "gap a", "rule": "> 0", "value": 0.0123456,
             "interval": [-0.01, 0.034567], "verdict": "inconclusive", "mde": 0.05,
             "paper_effect": 0.1, "reading": "the paper's effect would have been seen"},
            {"key": "C2.b", "what": "gap b", "rule": "> 0", "value": -0.5,
             "interval": None, "verdict": "contradicted", "exact": True},
        ],
    }  # fmt: skip
    assert measured_cell(claim) == (
        "• gap a: **+0.0123 [-0.01, 0.0346]** (needs > 0; inconclusive; MDE 0.05; paper +0.1; "
        "the paper's effect would have been seen)<br>"
        "• gap b: **-0.5** (needs > 0; contradicted; exact)"
    )
    # a claim without parts shows its own value; NaN and a missing interval read n/a
    assert measured_cell({"value": 2.0, "interval": [1.0, 3.0]}) == "+2 [1, 3]"
    assert measured_cell({"value": float("nan"), "interval": None}) == "n/a"
