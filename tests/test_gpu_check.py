"""benchmarks/gpu_check.py on a machine without a GPU: a clear refusal, and its CPU rehearsal.

The GPU checks themselves (bf16, flash-attn, vLLM, DeepSpeed) run only where a CUDA device is
lent; here the script must refuse with a message (exit 2), and its plumbing (a tiny model built
on the spot, one process per check, skipped checks, one JSON line) runs in ``--device cpu``.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_cuda_it_refuses_clearly(monkeypatch, capsys):
    gpu_check = _script()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main([]) == 2
    err = capsys.readouterr().err
    assert "gpu_check needs a CUDA device" in err and "torch.cuda.is_available() is False" in err


def test_the_cpu_rehearsal_runs_the_checks_in_their_own_processes(capsys):
    """~30 s: the attention check (SDPA against eager) and GRPO/FRPO steps in fp32, DeepSpeed
    skipped; one JSON line."""
    gpu_check = _script()
    argv = ["--device", "cpu", "--only", "attention", "grpo_frpo_steps", "zero2"]
    assert gpu_check.main([*argv, "--repeats", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    assert out["ok"] is True and out["device"] == "cpu" and out["attention"] == "sdpa"
    checks = out["checks"]
    assert checks["attention"]["ok"] and checks["attention"]["max_abs_diff_vs_eager"] < 1e-4
    steps = checks["grpo_frpo_steps"]
    assert steps["ok"] and steps["dtype"] == "fp32" and steps["moved_share"]["frpo"] > 0.5
    assert math.isfinite(out["ratio"]) and out["ratio"] > 0 and out["ratio"] == steps["ratio"]
    assert checks["zero2"] == {"ok": None, "skipped": "deepspeed needs a GPU (--device cpu)"}
