"""Each runner on a tiny local model with Alpaca-/GSM8K-format files; determinism; CLI; launch."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_stages_fixtures import files_source

from frpo.stages.rundir import is_complete, load_metrics, run_once
from frpo.stages.spec import EvalSpec, RLSpec, SFTSpec, Source, Track, to_dict
from frpo.stages.sweep import run_stage

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
TIMING = ("time", "runtime", "per_second", "seconds", "flos")


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    return files_source(tmp_path_factory.mktemp("data"))


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("FRPO_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


def rl_spec(src, **kw):
    base = dict(
        source=src,
        tasks=("gsm8k",),
        n_prompts=8,
        max_steps=2,
        batch_size=8,
        num_generations=4,
        max_completion_length=5,
        n_eval=4,
        lr=1e-3,
    )
    return RLSpec(**{**base, **kw})


def untimed(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if not any(t in k for t in TIMING)}


def read_csv(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("kw", [dict(method="grpo"), dict(method="frpo", lam=0.5)])
def test_rl_runner_writes_a_complete_run(src, runs, kw):
    path = run_stage(rl_spec(src, **kw), "smoke")
    assert is_complete(path) and (path / "model" / "config.json").is_file()
    m = load_metrics(path)
    assert m["frpo/steps"] == 2
    for key in ("frpo/final/kl_ref", "frpo/final/reward/gsm8k", "frpo/train/reward_std"):
        assert key in m and m[key] == m[key]  # present and not nan
    rows = [r for r in read_csv(path / "curves.csv") if r.get("reward")]
    assert len(rows) == 2 and "entropy" in rows[0] and "kl" in rows[0]
    if kw["method"] == "frpo":
        assert any(k.startswith("frpo/") for k in rows[0]), "FRPO metrics missing from curves"


def test_grpo_sam_runs_train_with_their_ascent_radius(runs):
    """The runner trains a ``grpo_sam`` spec with SAMGRPOTrainer at the spec's rho: from the
    same seed its weights differ from GRPO's, and from another rho's (the ascent step itself is
    checked by hand in test_stages_sampling). On the smoke toy world, whose safety rewards
    differ within a group, so the ascent gradient is not zero."""
    from frpo.stages.backend import load_model
    from frpo.stages.rlhf import trainer_class
    from frpo.stages.sam import SAMGRPOTrainer

    built = trainer_class(RLSpec(method="grpo_sam", sam_rho=0.3))
    assert built.func is SAMGRPOTrainer and built.keywords == {"sam_rho": 0.3}
    toy = Source(kind="toy", seed=0, size="smoke")
    base = dict(source=toy, n_prompts=8, max_steps=2, batch_size=16, num_generations=8,
                max_completion_length=6, n_eval=4, lr=1e-3)  # fmt: skip
    weights = {}
    for method, rho in (("grpo", 0.05), ("grpo_sam", 0.05), ("grpo_sam", 0.5)):
        path = run_stage(RLSpec(method=method, sam_rho=rho, **base), "smoke")
        assert load_metrics(path)["frpo/steps"] == 2
        weights[method, rho] = load_model(str(path / "model")).state_dict()

    def moved(a, b) -> bool:
        return any(not torch.equal(weights[a][k], weights[b][k]) for k in weights[a])

    assert moved(("grpo", 0.05), ("grpo_sam", 0.05))
    assert moved(("grpo_sam", 0.05), ("grpo_sam", 0.5))


def test_a_failed_evaluation_keeps_the_trained_model_and_the_rerun_only_evaluates(
    src, runs, monkeypatch
):
    """Issue 10 row 3: an evaluation failure after training must not delete the trained model,
    and the next attempt evaluates it instead of training again."""
    from frpo.stages import rlhf
    from frpo.stages.backend import load_model
    from frpo.stages.rundir import run_path

    spec = rl_spec(src, method="frpo", lam=0.5)
    real_eval = rlhf.held_out_metrics

    def broken(*args, **kwargs):
        raise RuntimeError("judge server down")

    monkeypatch.setattr(rlhf, "held_out_metrics", broken)
    with pytest.raises(RuntimeError, match="judge server down") as failed:
        run_stage(spec, "smoke")
    kept = rlhf.trained_path(spec, "smoke")
    assert failed.value.__notes__ == [
        f"the trained model is kept in {kept}: running the same spec again evaluates it "
        "without training"
    ]
    assert kept.parent == run_path(spec, "smoke").parent and not is_complete(
        run_path(spec, "smoke")
    )
    assert rlhf.is_trained(kept) and (kept / "model" / "config.json").is_file()
    trained = {k: v.clone() for k, v in load_model(str(kept / "model")).state_dict().items()}
    assert json.loads((kept / rlhf.TRAINED_METRICS).read_text())["frpo/steps"] == 2

    monkeypatch.setattr(rlhf, "held_out_metrics", real_eval)
    monkeypatch.setattr(rlhf, "_train", lambda *a: pytest.fail("the rerun trained again"))
    path = run_stage(spec, "smoke")
    assert is_complete(path) and not kept.exists()  # evaluated, then the kept copy removed
    m = load_metrics(path)
    assert m["frpo/steps"] == 2 and "frpo/final/kl_ref" in m and "frpo/train/reward" in m
    assert read_csv(path / "curves.csv") and not (path / rlhf.TRAINED_METRICS).exists()
    final = load_model(str(path / "model")).state_dict()
    assert all(torch.equal(final[k], v) for k, v in trained.items())
    assert sorted(p.name for p in (runs / "smoke" / "rl").iterdir()) == [path.name]


def test_same_spec_twice_gives_the_same_numbers(src, tmp_path, monkeypatch):
    spec = rl_spec(src, method="frpo", lam=0.5)
    out = []
    for name in ("a", "b"):
        monkeypatch.setenv("FRPO_RUNS", str(tmp_path / name))
        path = run_stage(spec, "smoke")
        out.append((untimed(load_metrics(path)), path))
    assert out[0][0] == out[1][0]
    from frpo.stages.backend import load_model

    a, b = (load_model(str(p / "model")) for _, p in out)
    for (n, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), n


def test_sft_lora_with_replay_tracks_reward_and_kl(src, runs):
    parent = rl_spec(src)
    spec = SFTSpec(
        source=src,
        dataset="alpaca",
        parent=parent,
        n_examples=8,
        batch_size=4,
        max_steps=4,
        lr=1e-3,
        full=False,
        lora_rank=4,
        replay_share=0.2,
        replay_tasks=("gsm8k",),
        track=Track(every=2, tasks=("gsm8k",), n_prompts=4, max_new_tokens=5),
    )
    path = run_stage(spec, "smoke")
    m = load_metrics(path)
    assert m["frpo/n_replay"] == 2 and m["frpo/n_train"] == 10  # 0.2 = 2 / (8 + 2)
    assert not (path / "model" / "adapter_config.json").exists()  # LoRA merged
    traj = json.loads((path / "trajectory.json").read_text())
    assert [r["step"] for r in traj] == [0, 2, 4]
    assert traj[0]["frpo/track/kl_start"] == 0.0  # step 0: the model is its start model
    assert traj[-1]["frpo/track/kl_start"] != 0.0
    parent_m = load_metrics(run_stage(parent, "smoke"))  # reused, not rerun
    assert parent_m["frpo/steps"] == 2
    assert len(list((runs / "smoke" / "rl").iterdir())) == 1


def test_a_runner_reads_a_built_upstream_run_only_and_run_stage_builds_it_first(src, runs):
    from frpo.stages.rundir import run_path
    from frpo.stages.sft import run_sft
    from frpo.stages.spec import run_name

    parent = rl_spec(src)
    spec = SFTSpec(source=src, parent=parent, n_examples=4, batch_size=4, max_steps=1)
    with pytest.raises(ValueError, match=f"model of {run_name(parent)}, which is not built"):
        run_sft(spec, "smoke")
    assert not run_path(spec, "smoke").parent.exists()
    path = run_stage(spec, "smoke")  # the parent first, then the SFT run
    assert is_complete(run_path(parent, "smoke")) and is_complete(path)
    assert run_sft(spec, "smoke") == path  # built: reused, its parent read as it is


def test_sft_full_from_base_and_tracking_starts_at_zero_kl_to_ref(src, runs):
    spec = SFTSpec(
        source=src,
        n_examples=8,
        batch_size=4,
        max_steps=2,
        track=Track(every=1, tasks=("gsm8k",), n_prompts=2, max_new_tokens=4),
    )
    path = run_stage(spec, "smoke")
    traj = read_csv(path / "trajectory.csv")
    assert [int(r["step"]) for r in traj] == [0, 1, 2]
    assert float(traj[0]["frpo/track/kl_ref"]) == 0.0  # no parent: start model = pi_ref
    assert load_metrics(path)["frpo/n_replay"] == 0


def test_eval_runner_is_deterministic_per_seed(src, tmp_path, monkeypatch):
    spec = EvalSpec(source=src, tasks=("gsm8k",), n_prompts=4, max_new_tokens=5, n_samples=3)
    got = []
    for name in ("a", "b"):
        monkeypatch.setenv("FRPO_RUNS", str(tmp_path / name))
        got.append(untimed(load_metrics(run_stage(spec, "smoke"))))
    assert got[0] == got[1]
    assert set(got[0]) >= {"frpo/eval/gsm8k/reward", "frpo/eval/kl_base"}
    assert got[0]["frpo/eval/kl_base"] == 0.0  # the base model against itself
    other = untimed(load_metrics(run_stage(dataclasses.replace(spec, seed=1), "smoke")))
    assert other["frpo/eval/gsm8k/reward"] == other["frpo/eval/gsm8k/reward"]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda s: rl_spec(s, tasks=("safety",)), "unknown task 'safety'"),
        (lambda s: SFTSpec(source=s, dataset="code"), "unknown task 'code'"),
        (lambda s: EvalSpec(source=s, tasks=("mmlu",)), "unknown task 'mmlu'"),
    ],
)
def test_unknown_tasks_are_rejected(src, runs, make, message):
    with pytest.raises(ValueError, match=message):
        run_stage(make(src), "smoke")


def test_missing_dataset_column_is_named(tmp_path, runs):
    base = files_source(tmp_path)
    bad = tmp_path / "bad.json"
    rows = json.loads(Path(dict(base.data)["alpaca"]).read_text())
    bad.write_text(json.dumps([{k: v for k, v in r.items() if k != "output"} for r in rows]))
    src = Source(kind="files", model=base.model, data=(("alpaca", str(bad)),))
    with pytest.raises(ValueError, match="missing dataset column 'output'"):
        run_stage(SFTSpec(source=src, n_examples=4, max_steps=1), "smoke")
    assert not any((runs / "smoke" / "sft").iterdir())


def test_cli_runs_a_stage_from_a_spec_file(src, runs, tmp_path):
    spec = EvalSpec(source=src, tasks=("gsm8k",), n_prompts=2, max_new_tokens=3)
    f = tmp_path / "spec.json"
    f.write_text(json.dumps(to_dict(spec)))
    env = {**os.environ, "FRPO_RUNS": str(runs), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "frpo.stages.evaluate", "--spec", str(f), "--profile", "smoke"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    path = Path(out.stdout.strip().splitlines()[-1])
    assert is_complete(path) and path.parent.parent.name == "smoke"
    from frpo.stages.sft import main as sft_main

    with pytest.raises(ValueError, match="holds a EvalSpec, not a SFTSpec"):
        sft_main(["--spec", str(f)])


def test_launch_command_and_plan(runs):
    from frpo.stages.launch import launch_command, plan

    spec = RLSpec(method="frpo", lam=0.2, batch_size=64)
    cmd = launch_command(spec, "runs/paper/specs/x.json", n_gpus=8)
    assert cmd == (
        "accelerate launch --config_file configs/accelerate/8gpu_zero2.yaml -m frpo.stages.rlhf "
        "--spec runs/paper/specs/x.json --profile paper"
    )
    p = plan(SFTSpec(parent=spec), n_gpus=4)
    assert "-m frpo.stages.sft" in p["command"] and Path(p["spec_file"]).is_file()
    with pytest.raises(ValueError, match="batch_size 64 does not split over 3 processes"):
        launch_command(spec, "x.json", n_gpus=3)


def test_beta_search_hits_a_power_law_target(runs):
    from frpo.stages.beta_search import KL_KEY, next_beta, search_beta

    # KL = 0.02 * beta^-0.5: the target 0.1 is at beta = 0.04 exactly (a secant step is exact)
    assert next_beta([(0.01, 0.2), (1.0, 0.02)], 0.1) == pytest.approx(0.04, rel=1e-12)

    def fake(spec, profile):
        return run_once(spec, profile, lambda tmp: {KL_KEY: 0.02 * spec.beta**-0.5})

    best, tries = search_beta(RLSpec(), 0.1, "smoke", betas=(0.01, 1.0), runner=fake)
    assert [t["beta"] for t in tries][:2] == [0.01, 1.0] and len(tries) == 3
    assert best.beta == pytest.approx(0.04, rel=1e-9)
    record = next((runs / "smoke" / "beta_search").iterdir())
    assert json.loads(record.read_text())["tries"] == tries


@pytest.mark.slow  # about a minute: a subprocess sweep of three RL runs, killed, then resumed
def test_killed_rl_sweep_resumes(src, runs, tmp_path):
    import signal
    import time

    from frpo.stages.rundir import run_path
    from frpo.stages.sweep import run_sweep

    specs = [rl_spec(src, seed=s, max_steps=3) for s in range(3)]
    f = tmp_path / "specs.json"
    f.write_text(json.dumps([to_dict(s) for s in specs]))
    env = {**os.environ, "FRPO_RUNS": str(runs), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "frpo.stages.sweep", "--specs", str(f), "--profile", "smoke"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = run_path(specs[0], "smoke")
    deadline = time.time() + 240
    while not is_complete(first) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert is_complete(first)
    done_before = [s for s in specs if is_complete(run_path(s, "smoke"))]
    stamps = {p: p.stat().st_mtime_ns for s in done_before for p in run_path(s, "smoke").rglob("*")}
    assert len(done_before) < len(specs), "the sweep finished before it could be killed"
    paths = run_sweep(specs, "smoke", progress=False)
    assert all(is_complete(p) for p in paths)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # finished runs untouched
    names = sorted(p.name for p in (runs / "smoke" / "rl").iterdir())
    assert names == sorted(p.name for p in paths)  # no half-written directory left or counted


def test_downstream_rl_from_a_parent_tracks_its_trajectory(src, runs):
    # an SFT parent: unlike 2 GRPO steps on a reward that is almost always 0, it surely moves
    parent = SFTSpec(source=src, n_examples=8, batch_size=4, max_steps=2, lr=1e-3)
    spec = rl_spec(
        src,
        parent=parent,
        max_steps=2,
        beta=0.0,
        track=Track(every=1, tasks=("gsm8k",), n_prompts=3, max_new_tokens=4),
    )
    path = run_stage(spec, "smoke")
    rows = json.loads((path / "trajectory.json").read_text())
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert rows[0]["frpo/track/kl_start"] == 0.0  # starts at the parent's model
    assert rows[0]["frpo/track/kl_ref"] != 0.0  # which is not pi_ref
    m = load_metrics(path)
    assert m["frpo/final/kl_start"] != m["frpo/final/kl_ref"]
