"""Profiles: validation against the notebooks' declared parameters, dependency order, selection,
and the dry-run description (``frpo.book.plan``). Executes no notebook."""

from __future__ import annotations

import json

import pytest
import yaml
from test_book_fixtures import make_fixture_repo

from frpo.book import plan
from frpo.book.execute import run_profile
from frpo.book.profiles import available_profiles, load_profile
from frpo.paths import repo_root


@pytest.fixture()
def repo(tmp_path):
    return make_fixture_repo(tmp_path)


def _write(dirs, name, notebooks):
    (dirs["profiles_dir"] / f"{name}.yaml").write_text(yaml.safe_dump({"notebooks": notebooks}))


def _load(dirs, name="fix"):
    return load_profile(
        name, profiles_dir=dirs["profiles_dir"], notebooks_dir=dirs["notebooks_dir"]
    )


def test_valid_profile_loads_in_dependency_order(repo):
    prof = _load(repo)
    # The YAML lists 02_beta first; it depends on 01_alpha, which must run before it.
    assert list(prof.notebooks) == ["01_alpha", "02_beta"]
    alpha = prof.notebooks["01_alpha"]
    assert alpha.params == {"n": 2, "scale": 1.0}
    assert set(alpha.declared) == {"profile", "run_dir", "seed", "n", "scale"}
    assert prof.notebooks["02_beta"].depends_on == ("01_alpha",)


def test_parameter_typo_is_an_error_naming_it_and_the_closest_name(repo):
    _write(repo, "typo", {"01_alpha": {"params": {"sclae": 2.0}}})
    with pytest.raises(ValueError, match=r"unknown parameter 'sclae' \(did you mean 'scale'\?\)"):
        _load(repo, "typo")


def test_every_problem_is_reported_at_once(repo):
    _write(
        repo,
        "bad",
        {
            "01_alpha": {"params": {"n": "three", "run_dir": "x"}, "dependson": []},
            "02_beta": {"depends_on": ["01_alfa"]},
            "03_missing": {},
        },
    )
    with pytest.raises(ValueError) as err:
        _load(repo, "bad")
    msg = str(err.value)
    assert "01_alpha.n: must be a number like the notebook's default 3, got 'three'" in msg
    assert "'run_dir' is set by the runner" in msg
    assert "unknown key 'dependson' (did you mean 'depends_on'?)" in msg
    assert "depends on unknown notebook '01_alfa'" in msg
    assert "03_missing" in msg and "no notebook file" in msg


def test_a_notebook_left_out_of_a_profile_is_an_error(repo):
    _write(repo, "partial", {"01_alpha": {}})
    with pytest.raises(ValueError, match="notebook '02_beta' .* is not in this profile"):
        _load(repo, "partial")


def test_int_is_accepted_for_a_float_default_but_bool_is_not(repo):
    _write(repo, "num", {"01_alpha": {"params": {"scale": 2, "n": 4}}, "02_beta": {}})
    assert _load(repo, "num").notebooks["01_alpha"].params == {"scale": 2, "n": 4}
    _write(repo, "boolean", {"01_alpha": {"params": {"n": True}}, "02_beta": {}})
    with pytest.raises(ValueError, match="01_alpha.n: must be a number .* got True"):
        _load(repo, "boolean")


def test_unknown_profile_is_an_error_with_a_suggestion(repo):
    with pytest.raises(ValueError, match=r"unknown profile 'fx' \(did you mean 'fix'\?\)"):
        _load(repo, "fx")


def test_dependency_cycle_is_an_error(repo):
    _write(
        repo,
        "cycle",
        {"01_alpha": {"depends_on": ["02_beta"]}, "02_beta": {"depends_on": ["01_alpha"]}},
    )
    with pytest.raises(ValueError, match="dependency cycle 01_alpha -> 02_beta -> 01_alpha"):
        _load(repo, "cycle")


def test_notebook_without_injected_parameters_is_rejected(repo):
    from test_book_fixtures import write_notebook

    write_notebook(repo["notebooks_dir"] / "03_bare.ipynb", "Bare", "seed = 0\n", "pass\n")
    _write(repo, "bare", {"01_alpha": {}, "02_beta": {}, "03_bare": {}})
    with pytest.raises(ValueError, match="must declare profile, run_dir"):
        _load(repo, "bare")


def test_select_by_number_pulls_in_dependencies(repo):
    prof = _load(repo)
    assert prof.select(None) == ["01_alpha", "02_beta"]
    assert prof.select(["01"]) == ["01_alpha"]
    assert prof.select(["02"]) == ["01_alpha", "02_beta"]
    assert prof.select(["02_beta"]) == ["01_alpha", "02_beta"]
    with pytest.raises(ValueError, match=r"no notebook '02_bta' \(did you mean '02_beta'\?\)"):
        prof.select(["02_bta"])


def test_dry_run_resolves_parameters_and_executes_nothing(repo, capsys):
    runs = run_profile("fix", dry_run=True, **repo)
    assert [r.status for r in runs] == ["planned", "planned"]
    alpha = runs[0]
    # profile and run_dir are injected; run_dir is absolute because runs_root is outside the repo.
    assert alpha.params == {
        "n": 2,
        "scale": 1.0,
        "profile": "fix",
        "run_dir": str((repo["runs_root"] / "fix" / "01_alpha").resolve()),
    }
    assert alpha.reason == "never executed"
    out = capsys.readouterr().out
    assert "01_alpha: would execute (never executed)" in out
    assert "    scale = 1.0" in out and "    fail = False" in out
    assert not (repo["runs_root"] / "fix" / "notebooks").exists()


def test_describe_lists_parameters_then_launch_and_identity_lines():
    from frpo.stages.identity import planned_identity
    from frpo.stages.spec import EvalSpec, RLSpec, from_dict, to_dict

    train, evals = RLSpec(method="frpo", lam=0.5), EvalSpec(seed=3)
    params = {"seed": 1, "train": to_dict(train), "sweep": [to_dict(evals), 3], "n_gpus": 1}
    lines = plan.describe("01_x", params)
    assert lines[:4] == [f"{k} = {params[k]!r}" for k in ("n_gpus", "seed", "sweep", "train")]
    assert (
        lines[4].startswith("launch[sweep]: accelerate launch")
        and "frpo.stages.evaluate" in lines[4]
    )
    assert lines[5] == f"identity: {planned_identity(from_dict(to_dict(evals)))}"
    assert (
        lines[6].startswith("launch[train]: accelerate launch") and "frpo.stages.rlhf" in lines[6]
    )
    assert lines[7].startswith("identity: code ") and len(lines) == 8


def test_stage_spec_without_launcher_is_an_error():
    with pytest.raises(ValueError, match="unknown stage 'no_such_stage'"):
        plan.describe("01_x", {"train": {"stage": "no_such_stage"}})


@pytest.mark.parametrize("name", ["smoke", "toy", "paper", "rehearsal"])
def test_repository_profiles_validate(name, tmp_path, monkeypatch):
    """The committed profiles resolve against the committed notebooks (dry run of each)."""
    monkeypatch.setenv("FRPO_RUNS", str(tmp_path))  # the dry run writes the launch lines' specs
    assert name in available_profiles()
    prof = load_profile(name)
    for nb in prof.notebooks.values():
        assert nb.path.parent == repo_root() / "notebooks"
    runs = run_profile(prof, dry_run=True, runs_root=repo_root() / "runs")
    assert [r.name for r in runs] == list(prof.notebooks)


def test_run_specs_of_frpo_stages_get_their_accelerate_command(tmp_path, monkeypatch):
    from frpo.paths import runs_dir
    from frpo.stages.launch import launch_command
    from frpo.stages.spec import RLSpec, from_dict, run_name, to_dict

    monkeypatch.setenv("FRPO_RUNS", str(tmp_path))
    spec = RLSpec(method="frpo", lam=0.5, batch_size=32)
    params = {"profile": "paper", "n_gpus": 4, "train": to_dict(spec)}
    lines = plan.describe("05_x", params)
    spec_file = runs_dir("paper") / "specs" / f"{run_name(spec)}.json"
    want = launch_command(spec, spec_file, 4, "paper")
    assert lines[-2] == f"launch[train]: {want}" and lines[-1].startswith("identity: code ")
    assert "-m frpo.stages.rlhf" in want and "configs/accelerate/4gpu_zero2.yaml" in want
    # the dry run writes the spec file its line names, so the line runs as printed
    assert from_dict(json.loads(spec_file.read_text())) == spec
    bad = {**to_dict(spec), "lamda": 0.5}  # a typo inside a stage spec is an error too
    with pytest.raises(ValueError, match="lamda"):
        plan.describe("05_x", {"profile": "paper", "train": bad})


def test_stage1_block_prints_one_launch_per_method_and_seed(tmp_path, monkeypatch):
    monkeypatch.setenv("FRPO_RUNS", str(tmp_path))
    from frpo.recipes import stage1_spec
    from frpo.stages.spec import run_name

    world = {"kind": "toy", "size": "smoke", "seed": 0}
    stage1 = {"tasks": ["safety"], "max_steps": 3, "batch_size": 16, "num_generations": 8}
    betas = {"grpo": 0.04, "frpo-0.5": 0.02, "frpo-0.1": 0.01}
    params = {"profile": "paper", "n_gpus": 1, "world": world, "stage1": stage1, "betas": betas}
    params |= {"seeds": [0, 1], "methods": ["grpo", "frpo-0.1"]}
    launches = [line for line in plan.describe("03_x", params) if line.startswith("launch")]
    want = [
        run_name(stage1_spec(m, s, world, stage1, betas))
        for m in ("grpo", "frpo-0.1")
        for s in (0, 1)
    ]
    assert len(launches) == 4
    for line, name in zip(launches, want, strict=True):
        assert line.startswith("launch[stage1]: accelerate launch") and f"/{name}.json" in line
    assert "beta" in want[2] and "lam0.1" in want[2]
    # without `methods`, every key of the beta table; a bad method key fails the dry run
    assert len(plan.stage1_block_specs({k: params[k] for k in ("world", "stage1", "betas")})) == 3
    with pytest.raises(ValueError, match="frpo-x"):
        plan.describe("03_x", {**params, "methods": ["frpo-x"]})


# ----------------------------------------------------------------------------- shared values

SHARING_BODY = """\
import json
from frpo.book.profiles import shared_values
from frpo.paths import resolve
block, seeds = shared_values(profiles_dir=profiles_dir, block=block, seeds=seeds)
run_dir = resolve(run_dir)
run_dir.mkdir(parents=True, exist_ok=True)
json.dump({"block": block, "seeds": seeds, "own": own}, open(run_dir / "metrics.json", "w"))
"""


def _sharing_repo(tmp_path):
    """Two notebooks that take ``block`` and ``seeds`` from the shared section of a profile
    (named default: "base") and a profile folder with that profile."""
    from test_book_fixtures import write_notebook

    nbs, profs = tmp_path / "notebooks", tmp_path / "profiles"
    for name, own in (("01_alpha", 1), ("02_beta", 2)):
        params = (f'profile = "base"\nrun_dir = "runs/base/{name}"\nprofiles_dir = ""\n'
                  f'block = "base"  # shared\nseeds = "base"  # shared\nown = {own}\n')  # fmt: skip
        write_notebook(nbs / f"{name}.ipynb", name, params, SHARING_BODY)
    profs.mkdir()
    base = {"shared": {"block": {"lr": 0.1, "steps": 3}, "seeds": [0, 1]},
            "notebooks": {"01_alpha": {}, "02_beta": {}}}  # fmt: skip
    (profs / "base.yaml").write_text(yaml.safe_dump(base))
    return {"notebooks_dir": nbs, "profiles_dir": profs}


def test_a_named_default_takes_the_profiles_shared_value_unless_the_entry_sets_it(tmp_path):
    dirs = _sharing_repo(tmp_path)
    mine = {
        "shared": {"block": {"lr": 0.5, "steps": 3}},  # no seeds: the default's, base's
        "notebooks": {"01_alpha": {"params": {"seeds": [7]}}, "02_beta": {"params": {"own": 5}}},
    }
    (dirs["profiles_dir"] / "mine.yaml").write_text(yaml.safe_dump(mine))
    prof = _load(dirs, "mine")
    alpha, beta = prof.notebooks["01_alpha"], prof.notebooks["02_beta"]
    assert alpha.params == {"block": {"lr": 0.5, "steps": 3}, "seeds": [7]}
    assert alpha.shared == ("block",)  # its own seeds win
    assert beta.params == {"block": {"lr": 0.5, "steps": 3}, "seeds": [0, 1], "own": 5}
    assert beta.shared == ("block", "seeds")
    assert "profile" not in beta.params  # "base" names a profile, which shares no `profile`


def test_a_shared_value_no_notebook_takes_is_an_error_naming_it(tmp_path):
    dirs = _sharing_repo(tmp_path)
    typo = {"shared": {"blokc": {}, "own": 3}, "notebooks": {"01_alpha": {}, "02_beta": {}}}
    (dirs["profiles_dir"] / "typo.yaml").write_text(yaml.safe_dump(typo))
    with pytest.raises(ValueError) as err:
        _load(dirs, "typo")
    assert "shared.blokc: no notebook takes it" in str(err.value)
    assert "did you mean 'block'?" in str(err.value)
    assert "shared.own: no notebook takes it" in str(err.value)  # declared, but not named


def test_a_notebook_run_alone_resolves_its_named_defaults(tmp_path):
    """Plain papermill, no parameters: the notebook reads the named profile's shared values."""
    import papermill

    dirs = _sharing_repo(tmp_path)
    out = tmp_path / "out.ipynb"
    run_dir = tmp_path / "alone"
    papermill.execute_notebook(
        str(dirs["notebooks_dir"] / "01_alpha.ipynb"),
        str(out),
        parameters={"run_dir": str(run_dir), "profiles_dir": str(dirs["profiles_dir"])},
        kernel_name="python3",
        progress_bar=False,
    )
    got = json.loads((run_dir / "metrics.json").read_text())
    assert got == {"block": {"lr": 0.1, "steps": 3}, "seeds": [0, 1], "own": 1}


def test_shared_values_pass_injected_values_through(tmp_path):
    from frpo.book.profiles import shared_values

    pdir = _sharing_repo(tmp_path)["profiles_dir"]
    block, seeds = shared_values(pdir, block={"lr": 2}, seeds="base")
    assert block == {"lr": 2} and seeds == [0, 1]
    with pytest.raises(ValueError, match="profile 'base' has no shared.world"):
        shared_values(pdir, world="base")


def _parameters_cell(path) -> dict:
    cells = json.loads(path.read_text())["cells"]
    cell = next(c for c in cells if "parameters" in c["metadata"].get("tags", []))
    namespace: dict = {}
    exec("".join(cell["source"]), namespace)  # literals only: papermill's own requirement
    return {k: v for k, v in namespace.items() if not k.startswith("__")}


def test_no_notebook_repeats_a_shared_value_and_each_resolves_alone():
    """A value of the profiles' shared sections lives in the profiles only: the notebooks name
    the toy profile for it, and those names resolve (a notebook runs alone with them)."""
    from frpo.book.profiles import named_default, shared_values

    shared = {
        name: yaml.safe_load((repo_root() / "profiles" / f"{name}.yaml").read_text())["shared"]
        for name in ("smoke", "toy", "paper", "rehearsal")
    }
    takers = 0
    for path in sorted((repo_root() / "notebooks").glob("*.ipynb")):
        defaults = _parameters_cell(path)
        for name, value in defaults.items():
            assert all(value != params.get(name, ...) for params in shared.values()), (path, name)
            if named_default(name, repr(value)):
                (resolved,) = shared_values(**{name: value})
                assert resolved == shared["toy"][name]
                takers += 1
    assert takers >= 40  # world, stage1, betas (8 notebooks), seeds, sft, track, ...


def test_the_provenance_of_the_toy_profile_names_its_values():
    """profiles/provenance/toy.yaml: a section of toy.yaml (`shared` or a notebook), then a
    parameter set there (or the entry's `cost`)."""
    toy = yaml.safe_load((repo_root() / "profiles" / "toy.yaml").read_text())
    provenance = yaml.safe_load((repo_root() / "profiles" / "provenance" / "toy.yaml").read_text())
    for section, keys in provenance.items():
        values = toy["shared"] if section == "shared" else toy["notebooks"][section]["params"]
        assert set(keys) - {"cost"} <= set(values), (section, set(keys) - set(values))
