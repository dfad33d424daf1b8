"""Damaged state of a profile's runs folder (issue 9's probes): each gets one line a person can
act on, damaged artefacts are rebuilt or refused, never used, and nothing is lost. papermill is
replaced by a stand-in (copies the notebook, writes a metrics file into its run_dir) except in
the SIGTERM test, which starts one real kernel (~5 s)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time

import papermill
import pytest
from test_book_fixtures import make_fixture_repo

from frpo.artefacts import DamagedArtefact
from frpo.book import build, execute, keys
from frpo.book.manifest import DamagedManifest, read_manifest
from frpo.book.needs import unmet
from frpo.book.profiles import load_profile
from frpo.paths import repo_root


@pytest.fixture(autouse=True)
def fixed_package_hash(monkeypatch):
    monkeypatch.setattr(keys, "package_hash", lambda: "pkg-v1")


@pytest.fixture()
def stand_in(monkeypatch):
    """papermill stand-in: copies the notebook, writes run_dir/metrics.json, records the name."""
    calls = []

    def fake(input_path, output_path, parameters=None, **kwargs):
        run_dir = repo_root() / parameters["run_dir"]  # absolute here: the join keeps it
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "metrics.json").write_text(json.dumps({"fixture/n": len(calls)}))
        calls.append(run_dir.name)
        shutil.copy(input_path, output_path)

    monkeypatch.setattr(papermill, "execute_notebook", fake)
    return calls


@pytest.fixture()
def repo(tmp_path, stand_in):
    dirs = make_fixture_repo(tmp_path)
    execute.run_profile("fix", progress=False, **dirs)
    stand_in.clear()
    return {**dirs, "out": dirs["runs_root"] / "fix"}


def _run(repo, **kw):
    dirs = {k: repo[k] for k in ("notebooks_dir", "profiles_dir", "runs_root")}
    return {r.name: (r.status, r.reason) for r in execute.run_profile("fix", progress=False,
                                                                       **dirs, **kw)}  # fmt: skip


@pytest.mark.parametrize(
    "content, what",
    [
        ('{"notebooks": {"01_al', "is not valid JSON"),
        ("", "is not valid JSON"),
        ("\x00\x13garbage", "is not valid JSON"),
        ("[]", "is not a manifest: the top level is a list, not a mapping"),
        ('{"notebooks": []}', "is not a manifest: 'notebooks' is a list, not a mapping"),
        (
            '{"notebooks": {"01_alpha": 3}}',
            "is not a manifest: the entry of notebook '01_alpha' is not a mapping",
        ),
    ],
)
def test_a_damaged_manifest_is_set_aside_by_run_and_refused_by_build(repo, stand_in, capsys,
                                                                     content, what):  # fmt: skip
    manifest = repo["out"] / "manifest.json"
    manifest.write_text(content)
    with pytest.raises(DamagedManifest) as err:
        read_manifest(repo["out"])
    msg = str(err.value)
    assert f"{manifest} {what}" in msg and "rebuild it with `frpo book run --profile fix`" in msg
    capsys.readouterr()
    assert _run(repo) == {"01_alpha": ("executed", "never executed"),
                          "02_beta": ("executed", "never executed")}  # fmt: skip
    out = capsys.readouterr().out
    assert what in out and "kept as manifest.json.damaged-" in out
    assert [p.read_text() for p in repo["out"].glob("manifest.json.damaged-*")] == [content]
    assert read_manifest(repo["out"])["invocations"][-1]["status"] == "ok"


def test_a_truncated_executed_notebook_is_re_executed_and_refused_by_the_build(repo, stand_in):
    executed = repo["out"] / "notebooks" / "01_alpha.ipynb"
    executed.write_text(executed.read_text()[:100])
    with pytest.raises(DamagedArtefact, match=rf"{executed} does not match the checksum .* "
                       r"`frpo book run --profile fix --only 01`"):  # fmt: skip
        build.executed_chapters(["01_alpha", "02_beta"], repo["out"])
    status = _run(repo)
    assert status["01_alpha"] == ("executed", "executed copy damaged (it does not match its "
                                  "checksum)")  # fmt: skip
    assert build.executed_chapters(["01_alpha", "02_beta"], repo["out"]) == (
        ["01_alpha", "02_beta"], [])  # fmt: skip


def test_a_damaged_output_of_a_notebook_re_executes_it(repo, stand_in):
    (repo["out"] / "02_beta" / "metrics.json").write_text("{")
    status = _run(repo)
    assert status["01_alpha"] == ("cached", "")
    assert status["02_beta"] == ("executed", "output metrics.json damaged or missing")


def test_two_book_runs_at_once_lose_nothing(repo, monkeypatch):
    # 01 --force and 03 --force (independent) run at once; each must see the other started
    shutil.copy(repo["notebooks_dir"] / "01_alpha.ipynb", repo["notebooks_dir"] / "03_gamma.ipynb")
    prof_path = repo["profiles_dir"] / "fix.yaml"
    import yaml

    prof = yaml.safe_load(prof_path.read_text())
    prof["notebooks"]["03_gamma"] = {"params": {}}
    prof_path.write_text(yaml.safe_dump(prof))
    _run(repo)
    before = read_manifest(repo["out"])
    started = {n: threading.Event() for n in ("01_alpha", "03_gamma")}

    def gated(input_path, output_path, parameters=None, **kwargs):
        name = parameters["run_dir"].rsplit("/", 1)[-1]
        started[name].set()
        other = started["03_gamma" if name == "01_alpha" else "01_alpha"]
        assert other.wait(20), "the two invocations did not overlap"
        shutil.copy(input_path, output_path)

    monkeypatch.setattr(papermill, "execute_notebook", gated)
    errors = []

    def invoke(only):
        try:
            _run(repo, only=[only], force=True)
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=invoke, args=(n,)) for n in ("01", "03")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    after = read_manifest(repo["out"])
    new = after["invocations"][len(before["invocations"]) :]
    assert sorted(i["only"][0] for i in new) == ["01", "03"]
    assert all(i["status"] == "ok" and i["executed"] == [{"01": "01_alpha", "03": "03_gamma"}[
        i["only"][0]]] for i in new)  # fmt: skip
    for name in ("01_alpha", "03_gamma"):
        assert after["notebooks"][name]["finished_at"] >= before["notebooks"][name]["finished_at"]
        assert after["notebooks"][name]["sha256"] != before["notebooks"][name].get("x")
    assert set(after["notebooks"]) == {"01_alpha", "02_beta", "03_gamma"}


def test_a_read_only_runs_folder_is_fine_when_everything_is_cached(repo, stand_in, monkeypatch,
                                                                   capsys):  # fmt: skip
    monkeypatch.setattr(execute, "_writable", lambda out_dir: False)
    before = (repo["out"] / "manifest.json").read_text()
    assert set(_run(repo).values()) == {("cached", "")}
    assert "is read-only; every notebook is up to date, nothing executed" in capsys.readouterr().out
    assert (repo["out"] / "manifest.json").read_text() == before
    with pytest.raises(ValueError, match=r"is read-only and 1 notebook\(s\) need executing "
                       r"\(01_alpha\): make it writable .* or set FRPO_RUNS"):  # fmt: skip
        _run(repo, only=["01"], force=True)
    assert stand_in == []


def test_an_invocation_killed_with_sigkill_is_marked_by_the_next_one(repo):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    path = repo["out"] / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["invocations"][-1].update(status="running", pid=int(dead.stdout))
    path.write_text(json.dumps(manifest))
    _run(repo)
    history = read_manifest(repo["out"])["invocations"]
    assert history[-2]["status"] == "killed (no record of its end)"
    assert history[-1]["status"] == "ok"


def test_the_paper_profile_says_up_front_what_this_machine_lacks(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: pytest.fail("started"))
    prof = load_profile("paper")
    msg = unmet("paper", {n: s.params for n, s in prof.notebooks.items()})
    assert msg.startswith("profile 'paper' cannot run on this machine (nothing was started):")
    assert "no CUDA GPU (torch.cuda.device_count() == 0); needed by 02_jackknife, 03_rlhf" in msg
    assert ("missing local file data/frpo_safety_train.parquet (world.data.safety of "
            "02_jackknife, 03_rlhf_safety") in msg  # fmt: skip
    assert (
        "not in the Hugging Face cache and the hub is unreachable (HF_HUB_OFFLINE is set):" in msg
    )
    for name in ("model mistralai/Mistral-7B-Instruct-v0.1", "dataset tatsu-lab/alpaca",
                 "model cais/HarmBench-Llama-2-13b-cls"):  # fmt: skip
        assert name in msg
    assert msg.endswith("`frpo book run --profile paper --dry-run` lists what each notebook needs.")
    with pytest.raises(ValueError, match="cannot run on this machine"):
        execute.run_profile(prof, only=["03"], runs_root=tmp_path / "runs", progress=False)


def test_the_paper_dry_run_prints_pending_identities_and_needs(tmp_path, capsys):
    runs = execute.run_profile("paper", dry_run=True, only=["03"], runs_root=tmp_path / "runs")
    lines = runs[0].lines
    identity = [line for line in lines if line.startswith("identity:")]
    assert len(identity) == 8 * 3  # every method of the beta table x 3 seeds
    assert identity[0].startswith("identity: code ")
    assert ("base model pending (mistralai/Mistral-7B-Instruct-v0.1: its commit is read from the "
            "Hugging Face cache at the start)") in identity[0]  # fmt: skip
    assert "needs: gpu a CUDA GPU (03_rlhf_safety.world): 0 here" in lines
    assert ("needs: file data/frpo_safety_train.parquet (03_rlhf_safety.world.data.safety): "
            "missing") in lines  # fmt: skip


_TERM = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from frpo import cli
    from frpo.book import profiles
    root = Path(sys.argv[1])
    profiles.default_profiles_dir = lambda: root / "profiles"
    profiles.default_notebooks_dir = lambda: root / "notebooks"
    sys.exit(cli.main(["book", "run", "--profile", "smoke", "--quiet"]))
    """
)


def test_sigterm_is_handled_like_ctrl_c(tmp_path):
    from test_book_fixtures import write_notebook

    dirs = make_fixture_repo(tmp_path)
    pid_file = tmp_path / "kernel.pid"
    write_notebook(dirs["notebooks_dir"] / "01_alpha.ipynb", "Alpha",
                   'profile = "toy"\nrun_dir = "x"\nseed = 0\nn = 3\nscale = 1.0\n',
                   f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
                   "time.sleep(120)\n")  # fmt: skip
    shutil.copy(dirs["profiles_dir"] / "fix.yaml", dirs["profiles_dir"] / "smoke.yaml")
    env = {**os.environ, "FRPO_RUNS": str(dirs["runs_root"]), "PYTHONPATH": str(repo_root())}
    proc = subprocess.Popen([sys.executable, "-c", _TERM, str(tmp_path)], env=env,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.time() + 120
    while not pid_file.is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert pid_file.is_file(), proc.communicate()[1]
    time.sleep(0.3)
    kernel = int(pid_file.read_text())
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143
    assert "frpo: terminated (SIGTERM); finished notebooks and stage runs are kept" in err
    manifest = json.loads((dirs["runs_root"] / "smoke" / "manifest.json").read_text())
    assert manifest["invocations"][-1]["status"] == "terminated (SIGTERM) while running 01_alpha"
    for _ in range(50):  # the kernel was stopped, not left to run on
        try:
            os.kill(kernel, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"kernel {kernel} still running")
