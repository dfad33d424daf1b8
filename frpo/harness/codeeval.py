"""EvalPlus runs (MBPP+ and HumanEval+, greedy) and their results JSON.

The model runs on vLLM where the machine has it (:mod:`frpo.harness.capability`), otherwise on
EvalPlus's ``hf`` backend (float32 on a CPU), so the same call works in the CPU rehearsal. A
local copy of a dataset (EvalPlus's own ``MBPP_OVERRIDE_PATH`` / ``HUMANEVAL_OVERRIDE_PATH``,
a ``.jsonl`` in the released format) replaces the download for machines without network.

``python -m evalplus.evaluate --model DIR --dataset mbpp --backend vllm --greedy --root OUT``
generates solutions into ``OUT/<dataset>/<model id>_vllm_temp_0.0.jsonl``, runs the base and the
plus tests, and writes ``..._eval_results.json`` (``.eval_results.json`` in newer releases):
``{"date", "hash", "eval": {task_id: [{"base_status": "pass"|..., "plus_status": ...}, ...]},
"pass_at_k": {"base": {"pass@1": x}, "plus": {"pass@1": y}}}``. A "plus" pass needs both the
base and the extra tests to pass.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from frpo.harness._proc import Runner, newest, require_module, run_tool
from frpo.harness.capability import Capabilities

DATASETS = {"mbpp": "mbpp_plus", "humaneval": "humaneval_plus"}
OVERRIDE_ENV = {"mbpp": "MBPP_OVERRIDE_PATH", "humaneval": "HUMANEVAL_OVERRIDE_PATH"}
PASS = "pass"


def evalplus_command(
    model_dir: str | os.PathLike,
    dataset: str,
    root: str | os.PathLike,
    *,
    tensor_parallel_size: int = 1,
    caps: Capabilities | None = None,
) -> list[str]:
    """The ``python -m evalplus.evaluate`` command line: greedy decoding, bf16 on vLLM with
    ``tensor_parallel_size`` GPUs, or the ``hf`` backend in ``caps.dtype`` without vLLM."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown EvalPlus dataset {dataset!r}; expected one of {list(DATASETS)}")
    from frpo.harness import capability

    caps = caps or capability.detect()
    return [
        sys.executable,
        "-m",
        "evalplus.evaluate",
        "--model",
        str(model_dir),
        "--dataset",
        dataset,
        "--backend",
        "vllm" if caps.vllm else "hf",
        "--greedy",
        "--tp",
        str(tensor_parallel_size),
        "--dtype",
        caps.dtype,
        "--root",
        str(root),
    ]


def parse_results(path: str | os.PathLike, dataset: str) -> dict[str, float]:
    """``frpo/<dataset>_plus/base_pass@1`` and ``.../plus_pass@1`` from an EvalPlus results file.

    pass@1 is recomputed from the per-sample statuses (the mean over tasks of each task's share
    of passing samples; with greedy decoding one sample per task) and checked against the
    ``pass_at_k`` block when the file has one.
    """
    data = json.loads(Path(path).read_text())
    tasks = data.get("eval")
    if not isinstance(tasks, dict) or not tasks:
        raise ValueError(f"no 'eval' entries in EvalPlus results {path}")
    base, plus = [], []
    for task_id, samples in tasks.items():
        if not samples:
            raise ValueError(f"task {task_id} has no sample in {path}")
        base.append(sum(s["base_status"] == PASS for s in samples) / len(samples))
        plus.append(
            sum(s["base_status"] == PASS and s.get("plus_status") == PASS for s in samples)
            / len(samples)
        )
    name = DATASETS[dataset]
    out = {
        f"frpo/{name}/base_pass@1": sum(base) / len(base),
        f"frpo/{name}/plus_pass@1": sum(plus) / len(plus),
    }
    reported = data.get("pass_at_k") or {}
    for split in ("base", "plus"):
        value = (reported.get(split) or {}).get("pass@1")
        ours = out[f"frpo/{name}/{split}_pass@1"]
        if value is not None and abs(float(value) - ours) > 1e-9:
            raise ValueError(f"{path}: reported {split} pass@1 {value} but statuses give {ours}")
    return out


def run_evalplus(
    model_dir: str | os.PathLike,
    datasets: list[str],
    output_dir: str | os.PathLike,
    *,
    runner: Runner | None = None,
    tensor_parallel_size: int = 1,
    data_files: dict[str, str] | None = None,
    caps: Capabilities | None = None,
) -> dict[str, float]:
    """Generate and test each dataset on ``model_dir``; metrics of all datasets merged.

    Needs evalplus (the ``paper`` extra; ``harness`` for CPU). ``data_files`` maps a dataset to
    a local copy of its released ``.jsonl`` (read through EvalPlus's override variable).
    """
    require_module("evalplus", "evalplus")
    metrics: dict[str, float] = {}
    for dataset in datasets:
        root = Path(output_dir) / "evalplus"
        root.mkdir(parents=True, exist_ok=True)
        cmd = evalplus_command(
            model_dir, dataset, root, tensor_parallel_size=tensor_parallel_size, caps=caps
        )
        env = {"VLLM_WORKER_MULTIPROC_METHOD": "spawn"}
        local = (data_files or {}).get(dataset)
        if local:
            if not Path(local).is_file():
                raise ValueError(f"EvalPlus {dataset} data file {local} does not exist")
            env[OVERRIDE_ENV[dataset]] = str(local)
        run_tool(cmd, env=env, runner=runner, log=root / f"{dataset}.log")
        found = newest(root / dataset / "*eval_results.json", "EvalPlus results")
        metrics.update(parse_results(found, dataset))
    return metrics
