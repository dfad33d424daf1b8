"""Run identity (spec + code that shapes the run + content of its inputs) and checksummed run
directories: what is reused, what is rebuilt, what is refused. Bodies are stand-ins that count
their calls; identities, checksums and the smoke base model are real (a copy of the cached one
in a temporary FRPO_CACHE, so nothing here pretrains)."""

from __future__ import annotations

import json
import shutil

import pytest

from frpo import artefacts
from frpo.artefacts import DamagedArtefact
from frpo.stages import identity
from frpo.stages.identity import code_files, run_identity
from frpo.stages.rundir import is_complete, load_metrics, run_once, run_path
from frpo.stages.spec import BenchSpec, RLSpec, SFTSpec, Source
from frpo.toyworld import ToyWorld, WorldConfig


@pytest.fixture(scope="module")
def built_smoke_model():
    """The smoke world's base model in the worktree's cache (pretrained once, ~20 s, if absent)."""
    return ToyWorld(WorldConfig(seed=0, size="smoke")).base_model_path()


@pytest.fixture()
def cache(tmp_path, monkeypatch, built_smoke_model):
    """A private FRPO_CACHE holding a copy of the smoke base model, and a private FRPO_RUNS."""
    root = tmp_path / "cache"
    shutil.copytree(built_smoke_model, root / "toyworld" / built_smoke_model.name)
    monkeypatch.setenv("FRPO_CACHE", str(root))
    monkeypatch.setenv("FRPO_RUNS", str(tmp_path / "runs"))
    return root / "toyworld" / built_smoke_model.name


def _counting(calls, name):
    def body(tmp):
        calls.append(name)
        (tmp / "artefact.txt").write_text(name)
        return {"frpo/value": float(len(calls))}

    return body


GRPO = RLSpec(method="grpo")
FRPO = RLSpec(method="frpo", lam=0.5)


def test_code_that_shapes_a_run_is_its_runner_method_and_source_not_the_package():
    frpo_files, grpo_files = set(code_files(FRPO)), set(code_files(GRPO))
    sft_files = set(code_files(SFTSpec(parent=FRPO)))
    hub_files = set(code_files(RLSpec(source=Source(kind="hub", model="org/m"))))
    assert "frpo/harness/overrides.py" in hub_files
    assert not any(f.startswith("frpo/harness/") for f in frpo_files | grpo_files)
    for files in (frpo_files, grpo_files):
        assert {"frpo/stages/rlhf.py", "frpo/stages/training.py", "frpo/toyworld/world.py"} <= files
        assert "frpo/stages/rundir.py" not in files  # stores runs, computes nothing in them
    assert {"frpo/trainer.py", "frpo/losses.py"} <= frpo_files
    assert not {"frpo/trainer.py", "frpo/losses.py", "frpo/stages/sam.py"} & grpo_files
    assert "frpo/stages/sam.py" in code_files(RLSpec(method="grpo_sam"))
    # an SFT run's own code: the SFT runner; the parent's code is in the parent's identity
    assert "frpo/stages/sft.py" in sft_files and "frpo/stages/rlhf.py" not in sft_files
    assert "frpo/trainer.py" not in sft_files
    assert "frpo/stages/hub.py" in hub_files and not any("toyworld" in f for f in hub_files)
    # every stage of the registry has its code: the benchmarks' runner, not the trainers'
    hub = Source(kind="hub", model="org/m")
    bench_files = set(code_files(BenchSpec(source=hub, safety=("harmbench",))))
    assert "frpo/stages/benchmarks.py" in bench_files and "frpo/stages/rlhf.py" not in bench_files
    everything = frpo_files | grpo_files | sft_files | hub_files | bench_files
    readers = ("frpo/book/", "frpo/analysis/", "frpo/claims")
    assert not any(f.startswith(readers) for f in everything)


def test_the_closure_follows_imports_inside_functions(tmp_path):
    pkg = tmp_path / "frpo"
    (pkg / "stages").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "stages" / "__init__.py").write_text("from frpo.stages import spec\n")
    (pkg / "stages" / "spec.py").write_text("X = 1\n")
    (pkg / "stages" / "runner.py").write_text("def f():\n    from frpo import helper\n")
    (pkg / "helper.py").write_text("from .stages.spec import X\n")
    (pkg / "other.py").write_text("from frpo import helper\n")
    (pkg / "excluded.py").write_text("")
    (pkg / "stages" / "more.py").write_text("import frpo.excluded\n")
    found = identity.closure(["frpo.stages.runner", "frpo.stages.more"], ["frpo.excluded"], pkg)
    assert set(found) == {
        "frpo",
        "frpo.stages",
        "frpo.stages.spec",
        "frpo.stages.runner",
        "frpo.stages.more",
        "frpo.helper",
    }


def test_identity_json_records_spec_code_packages_and_inputs(cache):
    path = run_once(FRPO, "smoke", _counting([], "frpo"))
    recorded = json.loads((path / "identity.json").read_text())
    assert recorded == run_identity(FRPO)
    assert recorded["code"]["files"]["frpo/trainer.py"] == artefacts.file_sha256(
        identity.package_root() / "trainer.py"
    )
    assert set(recorded["packages"]) == set(identity.PACKAGES)
    base = recorded["inputs"]["base_model"]
    assert base == {"sha256": artefacts.listing_digest(artefacts.read_checksums(cache))}
    child = run_identity(SFTSpec(parent=FRPO))
    assert child["inputs"]["parent"]["identity"] == recorded["digest"]
    sums = json.loads((path / "checksums.json").read_text())
    assert set(sums) == {"spec.json", "identity.json", "metrics.json", "artefact.txt"}


def _edit_trainer(monkeypatch):
    """Make frpo/trainer.py read as changed (its hash differs), as after a fix to it."""
    real = identity.file_sha256

    def fake(path):
        digest = real(path)
        return "0" * 64 if str(path).endswith("frpo/trainer.py") else digest

    monkeypatch.setattr(identity, "file_sha256", fake)


def test_a_trainer_change_retrains_the_frpo_runs_and_their_children_and_reuses_the_rest(
    cache, monkeypatch, capsys
):
    calls: list[str] = []
    specs = {
        "grpo": GRPO,
        "frpo": FRPO,
        "sft-of-grpo": SFTSpec(parent=GRPO),
        "sft-of-frpo": SFTSpec(parent=FRPO),
    }
    for name, spec in specs.items():
        run_once(spec, "smoke", _counting(calls, name))
    assert calls == list(specs)
    calls.clear()
    for name, spec in specs.items():  # nothing changed: everything is reused
        run_once(spec, "smoke", _counting(calls, name))
    assert calls == []

    _edit_trainer(monkeypatch)
    capsys.readouterr()
    for name, spec in specs.items():
        run_once(spec, "smoke", _counting(calls, name))
    assert calls == ["frpo", "sft-of-frpo"]
    err = capsys.readouterr().err
    assert f"rebuilding {run_path(FRPO, 'smoke')}: code frpo/trainer.py changed" in err
    assert "input parent changed" in err
    assert str(run_path(GRPO, "smoke")) not in err
    # the rebuilt runs are now current: a second pass reuses all four
    calls.clear()
    for name, spec in specs.items():
        run_once(spec, "smoke", _counting(calls, name))
    assert calls == []


def _scale_weights(model_dir, factor):
    """Multiply every float tensor of model.safetensors by ``factor`` (the file still loads)."""
    from safetensors.torch import load_file, save_file

    path = model_dir / "model.safetensors"
    tensors = {k: v * factor if v.is_floating_point() else v for k, v in load_file(path).items()}
    save_file(tensors, path, metadata={"format": "pt"})


def test_changed_base_model_weights_change_the_identity_and_retrain(cache, capsys):
    calls: list[str] = []
    run_once(GRPO, "smoke", _counting(calls, "grpo"))
    before = run_identity(GRPO)["digest"]
    _scale_weights(cache, 1.3)
    artefacts.write_checksums(cache, skip=("DONE",))  # a consistent, different base model
    assert run_identity(GRPO)["digest"] != before
    run_once(GRPO, "smoke", _counting(calls, "grpo"))
    assert calls == ["grpo", "grpo"]
    assert "input base_model changed" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["truncate", "garbage", "scale"])
def test_a_damaged_base_model_is_rebuilt_never_used(cache, monkeypatch, capsys, damage):
    good = cache.parent / "good-copy"
    shutil.copytree(cache, good)
    weights = cache / "model.safetensors"
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "garbage":
        weights.write_bytes(b"\x13\x37" * 5000)
    else:
        _scale_weights(cache, 1.3)  # loads fine, but is not what was written
    rebuilt = []

    def pretrain_stand_in(self, final, verbose):
        rebuilt.append(final)
        shutil.rmtree(final)
        shutil.copytree(good, final)
        return final

    monkeypatch.setattr(ToyWorld, "_pretrain_into", pretrain_stand_in)
    path = ToyWorld(WorldConfig(seed=0, size="smoke")).base_model_path()
    assert rebuilt == [cache] and path == cache
    err = capsys.readouterr().err
    assert f"rebuilding the toy base model {cache}: model.safetensors does not match" in err
    assert not artefacts.damaged_files(cache)


def test_a_lost_completion_marker_is_restored_without_pretraining(cache, monkeypatch):
    (cache / "DONE").unlink()
    monkeypatch.setattr(ToyWorld, "_pretrain_into", lambda *a: pytest.fail("pretrained again"))
    assert ToyWorld(WorldConfig(seed=0, size="smoke")).base_model_path() == cache
    assert (cache / "DONE").is_file()


def test_a_killed_pretraining_leaves_no_temporary_directory_behind(cache, monkeypatch, tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    leftover = cache.parent / f".tmp-{cache.name}-{artefacts._HOST}-{dead.stdout.strip()}"
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"half")
    alive = cache.parent / f".tmp-other-{artefacts._HOST}-1"  # pid 1 is alive: not ours to touch
    alive.mkdir()
    shutil.rmtree(cache)
    monkeypatch.setattr("frpo.toyworld.pretrain.pretrain", _stop_after_cleanup)
    with pytest.raises(_Stopped):
        ToyWorld(WorldConfig(seed=0, size="smoke")).base_model_path()
    assert not leftover.exists() and alive.exists()


class _Stopped(Exception):
    pass


def _stop_after_cleanup(*args, **kwargs):
    raise _Stopped


def test_a_damaged_run_is_refused_by_load_metrics_and_rebuilt_by_run_once(cache, capsys):
    calls: list[str] = []
    path = run_once(GRPO, "smoke", _counting(calls, "grpo"))
    metrics = path / "metrics.json"
    metrics.write_text(metrics.read_text()[:10])  # truncated
    with pytest.raises(DamagedArtefact) as err:
        load_metrics(path)
    msg = str(err.value)
    assert f"{metrics} does not match its checksum" in msg
    assert f"python -m frpo.stages.rlhf --spec {path / 'spec.json'} --profile smoke" in msg
    assert is_complete(path)
    run_once(GRPO, "smoke", _counting(calls, "grpo"))
    assert calls == ["grpo", "grpo"]
    assert "damaged: metrics.json does not match its checksum" in capsys.readouterr().err
    assert load_metrics(path)["frpo/value"] == 2.0


def test_runs_from_before_identities_are_rebuilt_once(cache, capsys):
    calls: list[str] = []
    path = run_once(GRPO, "smoke", _counting(calls, "grpo"))
    (path / "identity.json").unlink()
    run_once(GRPO, "smoke", _counting(calls, "grpo"))
    run_once(GRPO, "smoke", _counting(calls, "grpo"))
    assert calls == ["grpo", "grpo"]
    assert "no identity.json" in capsys.readouterr().err


def test_move_into_place_replaces_an_invalid_final_and_keeps_a_valid_one(tmp_path):
    # (the toy base model's lost-marker case of the issue: "[Errno 39] Directory not empty")
    final = tmp_path / "model"
    final.mkdir()
    (final / "old.txt").write_text("half-written, no marker")
    tmp = artefacts.tmp_dir(final)
    tmp.mkdir()
    (tmp / "new.txt").write_text("finished")
    assert artefacts.move_into_place(tmp, final, lambda p: (p / "DONE").is_file()) == final
    assert [p.name for p in final.iterdir()] == ["new.txt"] and not tmp.exists()
    (final / "DONE").write_text("ok")
    tmp.mkdir()
    (tmp / "other.txt").write_text("a second builder's copy")
    artefacts.move_into_place(tmp, final, lambda p: (p / "DONE").is_file())
    assert sorted(p.name for p in final.iterdir()) == ["DONE", "new.txt"] and not tmp.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_a_moved_cache_with_the_same_weights_keeps_the_identity(cache, tmp_path, monkeypatch):
    before = run_identity(GRPO)
    moved = tmp_path / "elsewhere"
    shutil.copytree(cache.parent.parent, moved)
    monkeypatch.setenv("FRPO_CACHE", str(moved))
    assert run_identity(GRPO) == before
