"""``frpo`` CLI: exit codes and messages over fixture profiles (papermill replaced by a copy, so
no kernel starts; one Jupyter Book build, ~10 s)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import papermill
import pytest
from test_book_fixtures import make_fixture_repo

from frpo import cli
from frpo.book import build, profiles
from frpo.paths import repo_root


@pytest.fixture()
def fixture_repo(tmp_path, monkeypatch):
    """Fixture notebooks as profile ``smoke`` in tmp; runs and the book build go to tmp too."""
    dirs = make_fixture_repo(tmp_path)
    shutil.copy(dirs["profiles_dir"] / "fix.yaml", dirs["profiles_dir"] / "smoke.yaml")
    monkeypatch.setattr(profiles, "default_profiles_dir", lambda: dirs["profiles_dir"])
    monkeypatch.setattr(profiles, "default_notebooks_dir", lambda: dirs["notebooks_dir"])
    monkeypatch.setenv("FRPO_RUNS", str(dirs["runs_root"]))
    book = tmp_path / "book"
    shutil.copytree(repo_root() / "book", book, ignore=shutil.ignore_patterns("_build"))
    monkeypatch.setattr(build, "default_book_dir", lambda: book)
    return {**dirs, "book": book}


def test_unknown_profile_exits_1_with_a_suggestion(fixture_repo, capsys):
    assert cli.main(["book", "run", "--profile", "smok", "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert "frpo: error: unknown profile 'smok' (did you mean 'smoke'?)" in err


def test_parameter_typo_exits_1_naming_it(fixture_repo, capsys):
    path = fixture_repo["profiles_dir"] / "smoke.yaml"
    path.write_text(path.read_text().replace("scale:", "scael:"))
    assert cli.main(["book", "run", "--profile", "smoke", "--dry-run"]) == 1
    assert "unknown parameter 'scael' (did you mean 'scale'?)" in capsys.readouterr().err


def test_dry_run_prints_resolved_parameters(fixture_repo, capsys):
    assert cli.main(["book", "run", "--profile", "smoke", "--dry-run", "--only", "01"]) == 0
    out = capsys.readouterr().out
    assert "[smoke] 01_alpha: would execute (never executed)" in out
    assert "    profile = 'smoke'" in out and "    n = 2" in out
    assert "02_beta" not in out
    assert "smoke: 1 notebooks valid, 1 would execute" in out


# a 1x1 PNG: the copied notebooks get one figure each, as executed ones have (the check wants one)
PIXEL = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5Er"
    "kJggg=="
)


def test_run_build_check(fixture_repo, monkeypatch, capsys):
    def copy(input_path, output_path, **kwargs):
        nb = json.loads(Path(input_path).read_text())
        figure = {"output_type": "display_data", "metadata": {}, "data": {"image/png": PIXEL}}
        nb["cells"][-1].setdefault("outputs", []).append(figure)
        Path(output_path).write_text(json.dumps(nb))

    monkeypatch.setattr(papermill, "execute_notebook", copy)
    assert cli.main(["book", "build", "--profile", "smoke"]) == 1
    assert "not executed yet: 01_alpha, 02_beta" in capsys.readouterr().err
    assert cli.main(["book", "run", "--profile", "smoke", "--quiet"]) == 0
    assert "smoke: 2 executed, 0 reused" in capsys.readouterr().out
    assert cli.main(["book", "build", "--profile", "smoke"]) == 0
    out = capsys.readouterr().out
    html = fixture_repo["book"] / "_build" / "smoke" / "_build" / "html"
    assert f"book built: {html / 'intro.html'}" in out and "smoke: book checks passed" in out
    (html / "notebooks" / "02_beta.html").unlink()
    assert cli.main(["book", "check", "--profile", "smoke"]) == 1
    assert "check: chapter 02_beta: no page notebooks/02_beta.html" in capsys.readouterr().err


def test_module_entry_point_runs():
    done = subprocess.run(
        [sys.executable, "-m", "frpo.cli", "book", "run", "--help"],
        capture_output=True,
        text=True,
        cwd=repo_root(),
    )
    assert done.returncode == 0 and "--dry-run" in done.stdout
