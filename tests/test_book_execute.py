"""The papermill runner: real execution of fixture notebooks (outputs, manifest, failure
handling; three kernel starts, ~15 s) and the cache rules, with papermill replaced by a recorder
so that every invalidation case runs in milliseconds."""

from __future__ import annotations

import json
import shutil
import threading

import nbformat
import papermill
import pytest
import yaml
from test_book_fixtures import make_fixture_repo

from frpo.book import execute, keys, pages
from frpo.book.execute import NotebookFailed, package_hash, run_profile, source_hash


@pytest.fixture(autouse=True)
def fixed_package_hash(monkeypatch):
    """Pin the package hash: other work on frpo/ during a test must not invalidate its cache.
    (``package_hash`` itself is tested below and moved by ``test_cache_rules``.)"""
    monkeypatch.setattr(keys, "package_hash", lambda: "pkg-v1")


def _statuses(runs):
    return {r.name: r.status for r in runs}


def _set_param(dirs, notebook, key, value):
    path = dirs["profiles_dir"] / "fix.yaml"
    prof = yaml.safe_load(path.read_text())
    prof["notebooks"][notebook]["params"][key] = value
    path.write_text(yaml.safe_dump(prof))


def test_execution_outputs_and_failure(tmp_path, capsys):
    dirs = make_fixture_repo(tmp_path, beta_fail=True)
    out = dirs["runs_root"] / "fix"
    with pytest.raises(NotebookFailed) as err:
        run_profile("fix", progress=False, **dirs)

    # 01 completed and is kept: executed copy, its run_dir outputs, the manifest entry.
    assert (out / "notebooks" / "01_alpha.ipynb").is_file()
    metrics = json.loads((out / "01_alpha" / "metrics.json").read_text())
    assert metrics == {"fixture/total": 1.0, "fixture/n": 2}  # n=2, scale=1, seed=0: 0 + 1
    assert (out / "01_alpha" / "alpha.png").is_file()
    executed = nbformat.read(str(out / "notebooks" / "01_alpha.ipynb"), as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert 'profile = "fix"' in injected[0].source and "n = 2" in injected[0].source
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["profile"] == "fix"
    assert manifest["environment"]["packages"]["papermill"] == papermill.__version__
    alpha = manifest["notebooks"]["01_alpha"]
    assert alpha["status"] == "ok" and alpha["wall_s"] > 0
    assert alpha["params"]["n"] == 2 and alpha["hashes"]["package"] == "pkg-v1"

    # 02 failed: the cell's error and the partial notebook's path are reported.
    msg = str(err.value)
    partial = out / "notebooks" / "02_beta.partial.ipynb"
    assert "02_beta failed" in msg and "RuntimeError: beta was told to fail" in msg
    assert "cell 4 (In [" in msg  # title, parameters, injected, markdown, body
    assert f"partially executed notebook: {partial}" in msg
    assert partial.is_file() and not (out / "notebooks" / "02_beta.ipynb").exists()
    assert manifest["notebooks"]["02_beta"]["status"] == "failed"
    assert not (out / "claims.json").exists()

    # Fixed: 01 is reused, 02 runs and writes the profile's claims.
    _set_param(dirs, "02_beta", "fail", False)
    capsys.readouterr()
    runs = run_profile("fix", progress=False, **dirs)
    assert _statuses(runs) == {"01_alpha": "cached", "02_beta": "executed"}
    assert "01_alpha: up to date, reused" in capsys.readouterr().out
    assert json.loads((out / "claims.json").read_text())[0]["value"] == 1.0

    # Every invocation is recorded (the reproducibility page's cold/warm build times).
    history = json.loads((out / "manifest.json").read_text())["invocations"]
    assert [h["status"] for h in history] == ["failed at 02_beta", "ok"]
    assert history[0]["executed"] == ["01_alpha"] and history[0]["reused"] == []
    assert history[1]["executed"] == ["02_beta"] and history[1]["reused"] == ["01_alpha"]
    assert all(h["wall_s"] > 0 for h in history)
    page = pages.reproducibility_md(json.loads((out / "manifest.json").read_text()), [], "fix")
    assert "### Runs of the book" in page and "| failed at 02_beta |" in page
    assert all(h["jobs"] == 1 for h in history)  # the default: one notebook at a time


@pytest.fixture()
def recorder(monkeypatch):
    """Stands in for papermill.execute_notebook: copies the notebook, records its name."""
    calls = []

    def fake(input_path, output_path, parameters=None, **kwargs):
        calls.append(parameters["run_dir"].rsplit("/", 1)[-1])
        assert kwargs["kernel_name"] == "python3" and kwargs["cwd"]
        shutil.copy(input_path, output_path)

    monkeypatch.setattr(papermill, "execute_notebook", fake)
    return calls


def test_cache_rules(tmp_path, recorder, monkeypatch):
    dirs = make_fixture_repo(tmp_path)

    def run(**kw):
        recorder.clear()
        runs = run_profile("fix", progress=False, **dirs, **kw)
        return {r.name: (r.status, r.reason) for r in runs}, list(recorder)

    assert run()[1] == ["01_alpha", "02_beta"]
    # Warm: nothing changed, nothing executes.
    assert run() == ({"01_alpha": ("cached", ""), "02_beta": ("cached", "")}, [])

    # Outputs and execution counts saved in a source notebook are not a change.
    src = dirs["notebooks_dir"] / "02_beta.ipynb"
    before = source_hash(src)
    nb = nbformat.read(str(src), as_version=4)
    nb.cells[-1].outputs = [nbformat.v4.new_output("stream", text="stale output\n")]
    nb.cells[-1].execution_count = 7
    nbformat.write(nb, str(src))
    assert source_hash(src) == before
    assert run()[1] == []
    # Its text is: 02 re-executes, 01 does not.
    nb.cells[0].source += "\n\nOne more sentence."
    nbformat.write(nb, str(src))
    assert run() == ({"01_alpha": ("cached", ""), "02_beta": ("executed", "source changed")},
                     ["02_beta"])  # fmt: skip

    # A parameter of 01: 01 re-executes, and 02, which depends on it.
    _set_param(dirs, "01_alpha", "scale", 2.0)
    status, calls = run()
    assert calls == ["01_alpha", "02_beta"]
    assert status["01_alpha"][1] == "params changed" and status["02_beta"][1] == "deps changed"

    # --force with --only: what was asked for re-executes; its dependency is reused.
    assert run(only=["02"], force=True)[1] == ["02_beta"]
    assert run(only=["01"])[1] == []

    # The package changes: everything re-executes.
    monkeypatch.setattr(keys, "package_hash", lambda: "pkg-v2")
    status, calls = run()
    assert calls == ["01_alpha", "02_beta"] and status["01_alpha"][1] == "package changed"

    # The executed copy disappears: that notebook re-executes (and 02 stays valid).
    (dirs["runs_root"] / "fix" / "notebooks" / "01_alpha.ipynb").unlink()
    status, calls = run()
    assert calls == ["01_alpha"] and status["01_alpha"][1] == "executed copy missing"


def test_package_hash_tracks_package_sources(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    (pkg / "sub" / "b.py").write_text("y = 2\n")
    h0 = package_hash(pkg)
    (pkg / "sub" / "b.py").write_text("y = 3\n")
    h1 = package_hash(pkg)
    (pkg / "notes.txt").write_text("not source\n")
    assert h0 != h1 and package_hash(pkg) == h1
    (pkg / "sub" / "b.py").rename(pkg / "b2.py")  # same content, other path: a change
    assert package_hash(pkg) != h1


def _add_independent_notebook(dirs, name="03_gamma"):
    """A copy of 01_alpha that depends on nothing (01 -> 02 stays the only edge)."""
    shutil.copy(dirs["notebooks_dir"] / "01_alpha.ipynb", dirs["notebooks_dir"] / f"{name}.ipynb")
    path = dirs["profiles_dir"] / "fix.yaml"
    prof = yaml.safe_load(path.read_text())
    prof["notebooks"][name] = {"params": {}}
    path.write_text(yaml.safe_dump(prof))


def _gated_recorder(monkeypatch, fail=()):
    """papermill stand-in: 01 and 03 each wait until the other has started (so they can only
    finish when run at once); ``fail`` names notebooks that raise."""
    events, started = [], {n: threading.Event() for n in ("01_alpha", "03_gamma")}

    def fake(input_path, output_path, parameters=None, **kwargs):
        name = parameters["run_dir"].rsplit("/", 1)[-1]
        events.append(("start", name))
        if name in started:
            started[name].set()
            other = started["03_gamma" if name == "01_alpha" else "01_alpha"]
            assert other.wait(20), f"{name} ran alone: the other independent one never started"
        if name in fail:
            raise RuntimeError(f"{name} was told to fail")
        shutil.copy(input_path, output_path)
        events.append(("end", name))

    monkeypatch.setattr(papermill, "execute_notebook", fake)
    return events


def test_jobs_run_independent_notebooks_at_once_after_their_dependencies(tmp_path, monkeypatch):
    dirs = make_fixture_repo(tmp_path)
    _add_independent_notebook(dirs)
    events = _gated_recorder(monkeypatch)
    runs = run_profile("fix", progress=False, jobs=2, **dirs)
    assert _statuses(runs) == {n: "executed" for n in ("01_alpha", "02_beta", "03_gamma")}
    assert events.index(("end", "01_alpha")) < events.index(("start", "02_beta"))
    manifest = json.loads((dirs["runs_root"] / "fix" / "manifest.json").read_text())
    assert all(e["status"] == "ok" for e in manifest["notebooks"].values())
    assert manifest["invocations"][-1]["jobs"] == 2
    # warm: nothing executes, whatever the number of jobs
    events.clear()
    assert set(_statuses(run_profile("fix", progress=False, jobs=2, **dirs)).values()) == {"cached"}
    assert events == []


def test_a_failure_under_jobs_keeps_what_finished_and_starts_nothing_after_it(
    tmp_path, monkeypatch
):
    dirs = make_fixture_repo(tmp_path)
    _add_independent_notebook(dirs)
    events = _gated_recorder(monkeypatch, fail=("01_alpha",))
    with pytest.raises(NotebookFailed, match="01_alpha failed: RuntimeError: 01_alpha was told"):
        run_profile("fix", progress=False, jobs=2, **dirs)
    assert ("start", "02_beta") not in events  # its dependency failed
    out = dirs["runs_root"] / "fix"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["notebooks"]["01_alpha"]["status"] == "failed"
    assert manifest["notebooks"]["03_gamma"]["status"] == "ok"  # ran alongside, kept
    assert (out / "notebooks" / "03_gamma.ipynb").is_file()
    assert manifest["invocations"][-1]["status"] == "failed at 01_alpha"


@pytest.mark.parametrize("jobs", [0, -1, 1.5, True])
def test_jobs_must_be_a_whole_number_of_at_least_one(tmp_path, jobs):
    dirs = make_fixture_repo(tmp_path)
    with pytest.raises(ValueError, match="jobs must be a whole number >= 1"):
        run_profile("fix", progress=False, jobs=jobs, **dirs)


def test_ctrl_c_records_the_interruption_and_keeps_what_finished(tmp_path, recorder, monkeypatch):
    dirs = make_fixture_repo(tmp_path)
    real_next = execute._next_result
    calls = []

    def interrupt_on_second(results):
        calls.append(1)
        if len(calls) == 2:  # 01 finished; 02 is running when Ctrl-C comes
            raise KeyboardInterrupt
        return real_next(results)

    monkeypatch.setattr(execute, "_next_result", interrupt_on_second)
    with pytest.raises(KeyboardInterrupt):
        run_profile("fix", progress=False, jobs=2, **dirs)
    manifest = json.loads((dirs["runs_root"] / "fix" / "manifest.json").read_text())
    assert manifest["notebooks"]["01_alpha"]["status"] == "ok"
    assert "02_beta" not in manifest["notebooks"]
    assert manifest["invocations"][-1]["status"] == "interrupted while running 02_beta"


def _recorder(monkeypatch):
    """papermill stand-in that records the order notebooks start in."""
    starts = []

    def fake(input_path, output_path, parameters=None, **kwargs):
        starts.append(parameters["run_dir"].rsplit("/", 1)[-1])
        shutil.copy(input_path, output_path)

    monkeypatch.setattr(papermill, "execute_notebook", fake)
    return starts


def test_several_jobs_start_the_longest_expected_notebook_first(tmp_path, monkeypatch):
    dirs = make_fixture_repo(tmp_path)
    _add_independent_notebook(dirs, "03_gamma")
    _add_independent_notebook(dirs, "04_delta")
    starts = _recorder(monkeypatch)
    walls = {"03_gamma": 100.0, "04_delta": 50.0}  # 01 and 02 unknown: 0
    monkeypatch.setattr(execute, "expected_walls", lambda profile, manifest: walls)
    run_profile("fix", progress=False, jobs=2, **dirs)
    assert set(starts[:2]) == {"03_gamma", "04_delta"}  # 01 (plan order first) waits
    assert starts.index("01_alpha") < starts.index("02_beta")
    starts.clear()
    run_profile("fix", progress=False, jobs=1, force=True, **dirs)
    assert starts == ["01_alpha", "02_beta", "03_gamma", "04_delta"]  # one job: the plan's order


def test_expected_walls_prefer_this_runs_folder_over_the_reference(monkeypatch):
    from frpo import reference

    ref = {"parts": {}, "notebook_wall_s": {"01_alpha": 5.0, "02_beta": 7.0}}
    monkeypatch.setattr(reference, "load_reference", lambda profile: ref)
    manifest = {"notebooks": {"02_beta": {"status": "ok", "wall_s": 3.5}, "03_x": {"wall_s": None}}}
    assert execute.expected_walls("fix", manifest) == {"01_alpha": 5.0, "02_beta": 3.5}

    def damaged(profile):
        raise ValueError("reference/fix.json is not valid JSON")

    monkeypatch.setattr(reference, "load_reference", damaged)
    assert execute.expected_walls("fix", {"notebooks": {}}) == {}
