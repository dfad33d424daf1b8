"""frpo.experiments.runs: one progress line per set, library output in the runs' log files."""

from __future__ import annotations

import logging
import sys
import warnings

import pytest

from frpo.experiments import runs
from frpo.experiments.specs import eval_specs
from frpo.stages.rundir import COMPLETE, run_path

WORLD = {"kind": "toy", "size": "smoke", "seed": 0}


def _specs(n):
    blocks = [{"tasks": ["safety"], "n_prompts": 4 + i, "max_new_tokens": 8} for i in range(n)]
    return {i: eval_specs({"pi_ref": None}, b, WORLD)["pi_ref"] for i, b in enumerate(blocks)}


@pytest.fixture
def fake_stage(monkeypatch, tmp_path):
    """``run_stage`` that builds an empty complete run, printing like a library does."""
    monkeypatch.setenv("FRPO_RUNS", str(tmp_path / "runs"))
    built = []

    def run_stage(spec, profile):
        path = run_path(spec, profile)
        if not (path / COMPLETE).is_file():
            print("Loading weights: 100%|#####| 20/20")
            sys.stderr.write("Tokenizing train dataset: 100%\n")
            warnings.warn("`x` is deprecated", FutureWarning, stacklevel=1)
            logging.getLogger("frpo_test_runs_lib").warning("a log record")
            path.mkdir(parents=True)
            (path / COMPLETE).write_text("now\n")
            built.append(path)
        return path

    monkeypatch.setattr(runs, "run_stage", run_stage)
    return built


@pytest.fixture
def console_logger():
    logger, handler = logging.getLogger("frpo_test_runs_lib"), logging.StreamHandler()
    logger.addHandler(handler)
    yield logger
    logger.removeHandler(handler)


def test_run_specs_builds_reuses_and_logs(fake_stage, console_logger, tmp_path, capfd):
    nb_dir = tmp_path / "05_topic"
    specs = _specs(2)
    lines = []
    dirs = runs.run_specs(
        specs, "smoke", label="SFT runs", run_dir=nb_dir, say=lambda *a: lines.append(a)
    )
    assert list(dirs) == [0, 1] and dirs[1] == run_path(specs[1], "smoke") == fake_stage[1]
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # nothing reached the notebook
    ((line, link),) = lines
    assert line.startswith("SFT runs: 2 runs (2 built, 0 reused) in ")
    assert link == "../05_topic/logs/sft-runs.log"
    own = runs.log_path(specs[0], "smoke")
    assert own.name == f"{dirs[0].name}.log" and own.parent == dirs[0].parent
    own_text = own.read_text()
    for piece in ("Loading weights", "Tokenizing", "FutureWarning", "a log record"):
        assert piece in own_text
    sweep = (nb_dir / "logs" / "sft-runs.log").read_text()
    assert sweep.count(": built in ") == 2 and own_text in sweep
    # a second call reuses both and rewrites the set's log
    lines.clear()
    runs.run_specs(
        {"a": specs[1]}, "smoke", label="SFT runs", run_dir=nb_dir, say=lambda *a: lines.append(a)
    )
    assert lines[0][0].startswith("SFT runs: 1 runs (0 built, 1 reused)")
    sweep = (nb_dir / "logs" / "sft-runs.log").read_text()
    assert ": reused, built earlier (its log: " in sweep and "Loading weights" in sweep
    assert len(fake_stage) == 2


def test_default_progress_line_outside_a_notebook_is_printed(fake_stage, tmp_path, capfd):
    runs.run_specs(_specs(1), "smoke", label="evaluations", run_dir=tmp_path / "nb")
    out = capfd.readouterr().out
    assert out.startswith("evaluations: 1 runs (1 built, 0 reused) in ")
    assert out.rstrip().endswith("library output: ../nb/logs/evaluations.log")


def test_labels_and_empty_sets():
    assert runs.slug("SFT runs at lr 0.01") == "sft-runs-at-lr-0-01"
    with pytest.raises(ValueError, match="no letters"):
        runs.slug("--")
    with pytest.raises(ValueError, match="no specs"):
        runs.run_specs({}, "smoke", label="x", run_dir="unused")


def test_quietly_sends_other_library_work_to_the_notebook_logs(tmp_path, capfd):
    with runs.quietly(tmp_path, "pi_ref reference") as path:
        print("Loading weights: 100%")
    assert path == tmp_path / "logs" / "pi-ref-reference.log"
    assert "Loading weights" in path.read_text() and capfd.readouterr().out == ""
