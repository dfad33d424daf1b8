"""Specs, run names and hashes, atomic run directories, resume after a kill, bad parameters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from frpo.stages.rundir import COMPLETE, is_complete, run_once, run_path
from frpo.stages.spec import (
    EvalSpec,
    RLSpec,
    SFTSpec,
    Source,
    SpecError,
    Track,
    from_dict,
    run_name,
    spec_hash,
    spec_json,
    to_dict,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("FRPO_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


def test_round_trip_of_nested_specs():
    rl = RLSpec(method="frpo", lam=0.2, beta=0.01, seed=3, tasks=["safety", "gsm8k"])
    sft = SFTSpec(parent=rl, lr=3e-5, full=False, lora_rank=8, track=Track(every=3))
    ev = EvalSpec(model=sft, tasks=("safety",))
    for spec in (rl, sft, ev):
        back = from_dict(json.loads(json.dumps(to_dict(spec))))
        assert back == spec
        assert spec_hash(back) == spec_hash(spec)


def test_hash_sees_every_field_and_the_parent():
    base = RLSpec(method="frpo", lam=0.5)
    assert spec_hash(base) == spec_hash(RLSpec(method="frpo", lam=0.5))
    changed = [
        RLSpec(method="frpo", lam=0.2),
        RLSpec(method="frpo", lam=0.5, seed=1),
        RLSpec(method="frpo", lam=0.5, beta=0.05),
        RLSpec(method="frpo", lam=0.5, jackknife=False),
        RLSpec(method="frpo", lam=0.5, source=Source(seed=1)),
    ]
    assert len({spec_hash(s) for s in changed} | {spec_hash(base)}) == len(changed) + 1
    assert spec_hash(SFTSpec(parent=base)) != spec_hash(SFTSpec(parent=changed[0]))


def test_mix_field_round_trips_and_leaves_earlier_hashes_alone():
    parent = RLSpec(method="frpo", lam=0.2)
    plain = SFTSpec(parent=parent, lr=1e-3, track=Track(every=6), replay_share=0.1)
    # the hash this spec had before SFTSpec.mix existed (an added field at its default is left
    # out of the hashed JSON, so earlier runs keep their directories)
    assert spec_hash(plain) == "96f5401f31f1"
    assert "mix" not in to_dict(plain)
    mixed = SFTSpec(parent=parent, lr=1e-3, mix=[["attack", 0.1]])
    assert mixed.mix == (("attack", 0.1),)
    assert from_dict(json.loads(json.dumps(to_dict(mixed)))) == mixed
    assert spec_hash(mixed) != spec_hash(SFTSpec(parent=parent, lr=1e-3))
    assert "-mix-attack0.1-" in run_name(mixed)


def test_run_name_is_readable_prefix_plus_hash():
    spec = RLSpec(method="frpo", lam=0.5, beta=0.04, seed=2, baseline=False)
    assert run_name(spec) == f"rl-frpo-lam0.5-nobase-beta0.04-safety-s2-{spec_hash(spec)}"
    assert run_name(SFTSpec(lr=1e-5, full=False, lora_rank=4)).startswith("sft-alpaca-lr1e-05-r4-")


def test_spec_json_is_canonical():
    text = spec_json(RLSpec())
    assert json.loads(text)["stage"] == "rl"
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: RLSpec(method="ppo"), "unknown method 'ppo'"),
        (lambda: RLSpec(lr=0.0), "lr must be > 0"),
        (lambda: RLSpec(lr=-1e-5), "lr must be > 0"),
        (lambda: SFTSpec(lr=0), "lr must be > 0"),
        (lambda: SFTSpec(lora_rank=8), "lora_rank=8 given for a full fine-tuning run"),
        (lambda: SFTSpec(full=False), "needs lora_rank > 0"),
        (lambda: RLSpec(method="frpo", lam=0), "lam must be > 0"),
        (lambda: RLSpec(batch_size=30, num_generations=8), "not a positive multiple of num_gen"),
        (lambda: RLSpec(beta=-0.1), "beta must be finite and >= 0"),
        (lambda: RLSpec(scale_rewards="std"), "unknown scale_rewards 'std'"),
        (lambda: RLSpec(method="frpo", scale_rewards="group"), "refused for FRPO; use 'none'"),
        (lambda: RLSpec(num_generations=1, batch_size=8), "num_generations must be >= 2"),
        (lambda: RLSpec(max_steps=3.5), "RLSpec.max_steps must be a whole number, got 3.5"),
        (lambda: RLSpec(n_prompts="16"), "RLSpec.n_prompts must be a whole number, got '16'"),
        (lambda: RLSpec(lr="2e-4"), "RLSpec.lr must be a finite number, got '2e-4' (str)"),
        (lambda: RLSpec(seed="a"), "RLSpec.seed must be a whole number, got 'a'"),
        (lambda: RLSpec(tasks=["safety", 3]), "RLSpec.tasks must be a list of strings"),
        (lambda: RLSpec(temperature=0.0), "temperature must be > 0"),
        (lambda: SFTSpec(max_length=0), "max_length must be > 0"),
        (lambda: Source(size="huge"), "Source.size 'huge' unknown"),
        (lambda: Track(every=0), "every must be > 0"),
        (lambda: SFTSpec(replay_share=1.0), "replay_share must be in [0, 1)"),
        (lambda: SFTSpec(mix=[("attack", 0.0)]), "mix share of 'attack' must be in (0, 1)"),
        (lambda: SFTSpec(replay_share=0.5, mix=[("attack", 0.5)]), "mix shares must be < 1"),
        (lambda: Source(kind="cloud"), "Source.kind 'cloud' unknown"),
        (lambda: from_dict({"stage": "rl", "lamda": 1}), "unknown field(s) ['lamda']"),
        (lambda: from_dict({"stage": "dpo"}), "unknown stage 'dpo'"),
        (lambda: SFTSpec(parent=RLSpec(source=Source(seed=1))), "share the same source"),
    ],
)
def test_bad_parameters_are_rejected_with_the_culprit_named(make, message):
    with pytest.raises(SpecError) as err:
        make()
    assert message in str(err.value)
    assert err.value.field  # the field, so a profile check can name the parameter


def test_run_once_writes_atomically_and_skips_complete_runs(runs):
    spec = EvalSpec(seed=5)
    calls = []

    def body(tmp):
        calls.append(tmp)
        assert not is_complete(tmp)  # the marker comes after the body
        (tmp / "artefact.txt").write_text("x")
        return {"frpo/value": 1.5}

    path = run_once(spec, "smoke", body)
    assert path == run_path(spec, "smoke") and is_complete(path)
    assert json.loads((path / "metrics.json").read_text())["frpo/value"] == 1.5
    assert from_dict(json.loads((path / "spec.json").read_text())) == spec
    stamp = (path / COMPLETE).stat().st_mtime_ns
    assert run_once(spec, "smoke", body) == path
    assert len(calls) == 1 and (path / COMPLETE).stat().st_mtime_ns == stamp
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp dirs left


def test_a_failing_run_leaves_nothing_behind(runs):
    spec = EvalSpec(seed=6)

    def body(tmp):
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run_once(spec, "smoke", body)
    parent = run_path(spec, "smoke").parent
    assert list(parent.iterdir()) == []


_SWEEP = textwrap.dedent(
    """
    import sys, time
    from frpo.stages.rundir import run_once
    from frpo.stages.spec import EvalSpec
    for seed in range(4):
        def body(tmp, seed=seed):
            (tmp / "a.txt").write_text(str(seed))
            time.sleep(0.2 if seed == 0 else 30)
            return {"frpo/seed": seed}
        run_once(EvalSpec(seed=seed), "smoke", body)
        print("done", seed, flush=True)
    """
)


def test_killed_sweep_resumes_without_redoing_or_counting_half_runs(runs):
    env = {**os.environ, "FRPO_RUNS": str(runs), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _SWEEP], env=env, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().split() == ["done", "0"]
    time.sleep(0.5)  # run 1 is now half-written in its temp dir
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = run_path(EvalSpec(seed=0), "smoke")
    stamps = {p.name: p.stat().st_mtime_ns for p in first.iterdir()}
    parent = first.parent
    assert [p.name for p in parent.iterdir() if is_complete(p)] == [first.name]
    assert any(p.name.startswith(".tmp-") for p in parent.iterdir())  # the half-written run
    redone = []
    for seed in range(4):
        path = run_once(EvalSpec(seed=seed), "smoke", lambda tmp, s=seed: redone.append(s) or {})
        assert is_complete(path)
    assert redone == [1, 2, 3]
    assert {p.name: p.stat().st_mtime_ns for p in first.iterdir()} == stamps
    assert sorted(p.name for p in parent.iterdir()) == sorted(
        run_path(EvalSpec(seed=s), "smoke").name for s in range(4)
    )  # the dead process's temp dir was cleaned up


_SAME_RUN = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from frpo.stages.rundir import run_once
    from frpo.stages.spec import EvalSpec
    log = Path(sys.argv[1])
    def body(tmp):
        with open(log, "a") as fh:
            fh.write(f"{os.getpid()}\\n")
        time.sleep(1.5)
        return {"frpo/pid": os.getpid()}
    print(run_once(EvalSpec(seed=11), "smoke", body), flush=True)
    """
)


def test_two_processes_asking_for_one_run_build_it_once(runs, tmp_path):
    # concurrent notebooks (frpo book run --jobs 2) may need the same stage run: the second
    # waits on the run's lock and reuses the first one's result
    env = {**os.environ, "FRPO_RUNS": str(runs), "PYTHONPATH": str(ROOT)}
    log = tmp_path / "bodies.txt"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _SAME_RUN, str(log)], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    path = run_path(EvalSpec(seed=11), "smoke")
    assert outs == [str(path), str(path)] and is_complete(path)
    builders = log.read_text().split()
    assert len(builders) == 1, f"the run was built {len(builders)} times"
    assert json.loads((path / "metrics.json").read_text())["frpo/pid"] == int(builders[0])


def test_only_rank_zero_writes_the_run(runs, monkeypatch):
    spec = EvalSpec(seed=9)
    seen = []
    monkeypatch.setenv("RANK", "1")
    path = run_once(spec, "smoke", lambda tmp: seen.append(tmp) or {"frpo/x": 1.0})
    assert len(seen) == 1 and not seen[0].exists()  # the worker's scratch dir is gone
    assert not path.exists() and not path.parent.exists()
    monkeypatch.setenv("RANK", "0")
    assert is_complete(run_once(spec, "smoke", lambda tmp: {"frpo/x": 1.0}))


def test_toy_sources_carry_the_world_recipe_hash():
    from frpo.toyworld.config import WorldConfig

    src = Source(kind="toy", seed=2, size="smoke")
    assert src.recipe == WorldConfig(seed=2, size="smoke").recipe_hash()
    assert from_dict(to_dict(RLSpec(source=src))).source == src
    with pytest.raises(ValueError, match="the world changed"):
        Source(kind="toy", seed=2, size="smoke", recipe="000000000000")
