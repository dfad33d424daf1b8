"""Stage 1 through ``accelerate launch --num_processes 2`` on CPU (gloo), end to end.

The RL runner's CLI (``-m frpo.stages.rlhf``, as the paper's launch lines run it) on a tiny local
model and GSM8K-format file, FRPO, 8 prompts x G = 4 = 32 completions an epoch at
``batch_size`` 8: 4 optimizer steps if each of the 2 processes takes 8 / 2 = 4 completions a
step (issue 10 row 1; a per-device batch of 8 would make it 2 steps of 16). The reward scores
through ``on_main_process``, the gather-to-rank-0 collective of the paper's moderation judge. The
test checks what ``tests/_stage1_worker.py`` records on each rank: TRL's per-device and generation
batch, that only rank 0 saves a model (row 12) and evaluates, and that rank 0's evaluation,
after rank 1 has returned, scores locally (row 5: a gather there would wait for a rank that is
gone). accelerate spawns the processes with torchrun (``--multi_gpu``; ``--cpu`` would run one
process); ``CUDA_VISIBLE_DEVICES=""`` keeps them on CPU on any machine. About 60-90 s on a
loaded 2-core machine.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from test_stages_fixtures import files_source

from frpo.stages.rundir import is_complete, load_metrics, run_path
from frpo.stages.spec import RLSpec, to_dict

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.distributed
def test_stage1_under_accelerate_launch_on_two_cpu_processes(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    monkeypatch.setenv("FRPO_RUNS", str(runs))
    src = files_source(tmp_path / "data")
    spec = RLSpec(
        source=src,
        method="frpo",
        lam=0.5,
        tasks=("gsm8k",),
        n_prompts=8,
        batch_size=8,
        num_generations=4,
        max_completion_length=4,
        n_eval=4,
        lr=1e-3,
    )
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(to_dict(spec)))
    out = tmp_path / "out"
    out.mkdir()
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        OMP_NUM_THREADS="1",
        CUDA_VISIBLE_DEVICES="",
        HF_HOME=str(tmp_path / "hf"),  # no user accelerate config file applies
    )
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
        "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
        "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
        str(ROOT / "tests" / "_stage1_worker.py"), str(spec_file), str(out),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stderr[-6000:]

    r0, r1 = (json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2
    for r in (r0, r1):  # TRL's own arithmetic: 4 per process, 8 completions a step
        assert r["configs"] == [{"per_device": 4, "generation_batch": 8, "world_size": 2}]
    path = run_path(spec, "smoke")
    assert is_complete(path) and (path / "model" / "config.json").is_file()
    m = load_metrics(path)
    assert m["frpo/steps"] == 4  # 32 completions / 8 a step
    assert "frpo/final/reward/gsm8k" in m and "frpo/final/kl_ref" in m
    # only rank 0 saves (the model, once) and evaluates
    assert r1["saves"] == [] and r1["evaluations"] == 0
    assert len(r0["saves"]) == 1 and r0["evaluations"] == 1
    # during training both ranks gather each step's rewards to rank 0 (4 steps, 4 gathers);
    # rank 0's evaluation, after rank 1 returned, scores too but gathers nothing
    assert r0["gathers"] == r1["gathers"] == r1["reward_calls"] == 4
    assert r0["reward_calls"] > 4
    assert sorted(p.name for p in (runs / "smoke" / "rl").iterdir()) == [path.name]
