"""Profile parameters rejected before anything runs (issue 9's probes), on copies of the committed
smoke profile checked against the committed notebooks: each message names the file or the
parameter's path and what was expected. Executes nothing (papermill only inspects notebooks)."""

from __future__ import annotations

import copy

import pytest
import yaml

from frpo import paths
from frpo.book.execute import run_profile
from frpo.book.profiles import available_profiles, load_profile
from frpo.paths import repo_root

SMOKE = yaml.safe_load((repo_root() / "profiles" / "smoke.yaml").read_text())


@pytest.fixture()
def profiles(tmp_path):
    return tmp_path / "profiles"


TOY = (repo_root() / "profiles" / "toy.yaml").read_text()


def _load(profiles, name, text):
    """Load ``text`` as profile ``name`` of a profiles folder that also holds the toy profile,
    which the notebooks' named defaults ("toy") name."""
    profiles.mkdir(exist_ok=True)
    (profiles / "toy.yaml").write_text(TOY)
    (profiles / f"{name}.yaml").write_text(text)
    return load_profile(name, profiles_dir=profiles, notebooks_dir=repo_root() / "notebooks")


def _edited(section, edit):
    """The smoke profile with ``edit`` applied to its ``shared`` section or a notebook's params."""
    prof = copy.deepcopy(SMOKE)
    edit(prof["shared"] if section == "shared" else prof["notebooks"][section]["params"])
    return yaml.safe_dump(prof)


def test_the_smoke_profile_copy_is_valid(profiles):
    assert "03_rlhf_safety" in _load(profiles, "copy", yaml.safe_dump(SMOKE)).notebooks


@pytest.mark.parametrize(
    "text, message",
    [
        ("notebooks:\n  01_entropic_objective:\n\tparams: {}\n",
         r"bad\.yaml, line 3, column 1: .*found character '\\t' .*never tabs"),
        ("notebooks:\n  01_entropic_objective: {params: [n_rho: 1}\n",
         r"bad\.yaml, line 2, column \d+: while parsing a flow sequence"),
        ("notebooks:\n  01_entropic_objective: {params: {n_rho: 8, n_rho: 9}}\n",
         r"bad\.yaml, line 2, column \d+: duplicate key 'n_rho' \(first given on line 2\)"),
        ("notebooks:\n  03_rlhf_safety: {}\n  03_rlhf_safety: {}\n",
         r"bad\.yaml, line 3, column 3: duplicate key '03_rlhf_safety'"),
    ],
)  # fmt: skip
def test_yaml_errors_name_the_file_and_line(profiles, text, message):
    with pytest.raises(ValueError, match=message) as err:
        _load(profiles, "bad", text)
    assert "\n" not in str(err.value)  # one line, not the parser's 70


@pytest.mark.parametrize(
    "notebook, edit, message",  # notebook: a notebook's params, or the shared section
    [
        ("shared", lambda p: p["stage1"].update(max_steps=3.5),
         "shared.stage1.max_steps: RLSpec.max_steps must be a whole number, got 3.5"),
        ("shared", lambda p: p["stage1"].update(n_prompts="16"),
         "shared.stage1.n_prompts: RLSpec.n_prompts must be a whole number, got '16'"),
        ("shared", lambda p: p["stage1"].update(lr="2e-4"),
         "shared.stage1.lr: RLSpec.lr must be a finite number, got '2e-4' (str)"),
        ("shared", lambda p: p.update(seeds=["a"]),
         "shared.seeds[0]: must be a whole number >= 0, got 'a'"),
        ("03_rlhf_safety", lambda p: p.update(seeds=["a"]),
         "03_rlhf_safety.seeds[0]: must be a whole number >= 0, got 'a'"),
        ("shared", lambda p: p["stage1"].update(num_generations=1),
         "shared.stage1.num_generations: num_generations must be >= 2"),
        ("03_rlhf_safety", lambda p: p.update(lams=[0.5, 0]),
         "03_rlhf_safety.lams[1]: must be a finite number > 0, got 0"),
        ("03_rlhf_safety", lambda p: p.update(lams=[0.5, 0.3]),
         "03_rlhf_safety.lams[1]: no beta for method 'frpo-0.3' in betas"),
        ("shared", lambda p: p["betas"].update({"frpo-0.5": -1}),
         "shared.betas.frpo-0.5: beta must be finite and >= 0, got -1"),
        ("shared", lambda p: p["world"].update(size="huge"),
         "shared.world.size: Source.size 'huge' unknown"),
        ("shared", lambda p: p.update(trak={}),
         "shared.trak: no notebook takes it (a notebook takes a shared value by defaulting the "
         "parameter to a profile's name (did you mean 'track'?))"),
        ("05_downstream_sft", lambda p: p.update(betas={"grpo": 0.1}),
         "05_downstream_sft.methods[1]: no beta for method 'frpo-0.2' in betas ['grpo']"),
        ("01_entropic_objective", lambda p: p.update(n_rho=0),
         "01_entropic_objective.n_rho: must be a whole number > 0, got 0"),
        ("05_downstream_sft", lambda p: p["high_lr"].update(dataset="gsm9k"),
         "05_downstream_sft.high_lr.dataset: 'gsm9k' has no entry in sft"),
        ("shared", lambda p: p["sft"]["gsm8k"].update(max_length=0),
         "shared.sft.gsm8k.max_length: max_length must be > 0, got 0"),
        ("shared", lambda p: p["track"].update(every="6"),
         "shared.track.every: Track.every must be a whole number, got '6'"),
        ("02_jackknife", lambda p: p["sft"]["alpaca"].update(max_length=0),
         "02_jackknife.sft.alpaca.max_length: max_length must be > 0, got 0"),
        ("09_baselines_budgets", lambda p: p["replay"].update(methods=["grpo", "frpo-0.7"]),
         "09_baselines_budgets.replay.methods[1]: no beta for method 'frpo-0.7'"),
        ("02_jackknife", lambda p: p.update(bias_group_sizes=[1, 4]),
         "02_jackknife.bias_group_sizes[0]: must be a whole number >= 2, got 1"),
    ],
)  # fmt: skip
def test_bad_values_are_refused_with_their_path_and_expected_type(profiles, notebook, edit,
                                                                   message):  # fmt: skip
    with pytest.raises(ValueError) as err:
        _load(profiles, "bad", _edited(notebook, edit))
    assert message in str(err.value)


def test_the_dry_run_refuses_a_bad_value_before_describing_anything(profiles, tmp_path, capsys):
    _load(profiles, "copy", yaml.safe_dump(SMOKE))
    bad = _edited("shared", lambda p: p["stage1"].update(max_steps=3.5))
    (profiles / "bad.yaml").write_text(bad)
    with pytest.raises(ValueError, match=r"shared\.stage1\.max_steps"):
        run_profile("bad", dry_run=True, profiles_dir=profiles, runs_root=tmp_path / "runs",
                    notebooks_dir=repo_root() / "notebooks")  # fmt: skip
    assert "would execute" not in capsys.readouterr().out


def test_a_new_profile_file_is_a_profile_and_a_bad_name_is_refused(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    (root / "profiles").mkdir(parents=True)
    (root / "profiles" / "mine.yaml").write_text(yaml.safe_dump(SMOKE))
    (root / "profiles" / "my profile.yaml").write_text(yaml.safe_dump(SMOKE))
    (root / "profiles" / "toy.yaml").write_text(TOY)  # the notebooks' named defaults
    monkeypatch.setattr(paths, "repo_root", lambda: root)
    monkeypatch.delenv("FRPO_RUNS", raising=False)
    assert available_profiles(root / "profiles") == ["mine", "toy"]
    assert "mine" in paths.profile_names() and "my profile" not in paths.profile_names()
    assert paths.runs_dir("mine") == root / "runs" / "mine"  # the kernels find its runs
    nbs = repo_root() / "notebooks"
    assert load_profile("mine", profiles_dir=root / "profiles", notebooks_dir=nbs).name == "mine"
    with pytest.raises(ValueError, match="profile names are letters, digits"):
        load_profile("my profile", profiles_dir=root / "profiles", notebooks_dir=nbs)
    with pytest.raises(ValueError, match="unknown profile 'mien'"):
        paths.runs_dir("mien")


def test_relative_and_home_runs_folders_resolve_once_for_runner_and_kernels(tmp_path,
                                                                          monkeypatch):  # fmt: skip
    monkeypatch.chdir(tmp_path)  # typed from another folder
    monkeypatch.setenv("FRPO_RUNS", "myruns")
    assert paths.runs_root() == repo_root() / "myruns"  # as a kernel (cwd = the repo) sees it
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("FRPO_RUNS", "~/x")
    assert paths.runs_root() == tmp_path / "x"
    monkeypatch.setenv("FRPO_CACHE", "~/cache")
    assert paths.cache_dir() == tmp_path / "cache"
