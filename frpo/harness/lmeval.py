"""lm-evaluation-harness runs for the paper's benchmarks (vLLM backend), and their results JSON.

Benchmarks (paper Sec. 5, Tables 1-2): MATH-500 (``minerva_math500``, 0-shot, chat template,
"put your final answer within \\boxed{}"), MMLU 5-shot, IFEval, HumanEval, GSM8K maj@8
(``gsm8k_cot_self_consistency``, filter ``maj@8``).

lm-eval writes ``<output_path>/<sanitized model name>/results_<timestamp>.json`` with
``{"results": {task: {"<metric>,<filter>": value, ...}}, "groups": {...}, ...}``;
:func:`parse_results` reads the keys listed in :data:`BENCHMARKS` into ``frpo/<bench>/<metric>``.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from frpo.harness._proc import Runner, newest, require_module, run_tool

BOXED_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."


@dataclass(frozen=True)
class Benchmark:
    """One lm-eval task and the metrics the book shows.

    Attributes:
        task: lm-eval task (or group) name.
        metrics: our metric name -> lm-eval result key ``"<metric>,<filter>"``; the first one is
            required in the results, the others are read when present.
        num_fewshot: None keeps the task's default.
        chat: pass ``--apply_chat_template`` (instruction-tuned models).
        system_instruction: ``--system_instruction``.
        gen_kwargs: ``--gen_kwargs``.
        unsafe_code: the task executes generated code (``--confirm_run_unsafe_code``).
    """

    task: str
    metrics: dict[str, str] = field(default_factory=dict)
    num_fewshot: int | None = None
    chat: bool = True
    system_instruction: str | None = None
    gen_kwargs: str | None = None
    unsafe_code: bool = False


BENCHMARKS: dict[str, Benchmark] = {
    "math500": Benchmark(
        "minerva_math500",
        {"exact_match": "exact_match,none", "math_verify": "math_verify,none"},
        num_fewshot=0,
        system_instruction=BOXED_SYSTEM,
        gen_kwargs="temperature=0",
    ),
    "mmlu": Benchmark("mmlu", {"acc": "acc,none"}, num_fewshot=5, chat=False),
    "ifeval": Benchmark(
        "ifeval",
        {
            "prompt_level_strict_acc": "prompt_level_strict_acc,none",
            "inst_level_strict_acc": "inst_level_strict_acc,none",
            "prompt_level_loose_acc": "prompt_level_loose_acc,none",
            "inst_level_loose_acc": "inst_level_loose_acc,none",
        },
    ),
    "humaneval": Benchmark(
        "humaneval", {"pass@1": "pass@1,create_test"}, chat=False, unsafe_code=True
    ),
    "gsm8k_maj8": Benchmark(
        "gsm8k_cot_self_consistency", {"maj@8": "exact_match,maj@8"}, chat=False
    ),
}


def lm_eval_command(
    model_dir: str | os.PathLike,
    benchmark: str,
    output_dir: str | os.PathLike,
    *,
    tensor_parallel_size: int = 1,
    gpu_memory_utilization: float = 0.9,
    max_gen_toks: int = 2048,
    batch_size: str = "auto",
    limit: int | None = None,
) -> list[str]:
    """The ``python -m lm_eval`` command line for one benchmark on a model directory."""
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; expected one of {sorted(BENCHMARKS)}")
    if tensor_parallel_size < 1:
        raise ValueError(f"tensor_parallel_size must be >= 1, got {tensor_parallel_size}")
    b = BENCHMARKS[benchmark]
    model_args = ",".join(
        [
            f"pretrained={model_dir}",
            f"tensor_parallel_size={tensor_parallel_size}",
            "dtype=bfloat16",
            f"gpu_memory_utilization={gpu_memory_utilization}",
            f"max_gen_toks={max_gen_toks}",
        ]
    )
    cmd = [
        sys.executable,
        "-m",
        "lm_eval",
        "--model",
        "vllm",
        "--model_args",
        model_args,
        "--tasks",
        b.task,
        "--batch_size",
        batch_size,
        "--output_path",
        str(output_dir),
        "--log_samples",
    ]
    if b.num_fewshot is not None:
        cmd += ["--num_fewshot", str(b.num_fewshot)]
    if b.chat:
        cmd += ["--apply_chat_template"]
    if b.system_instruction:
        cmd += ["--system_instruction", b.system_instruction]
    if b.gen_kwargs:
        cmd += ["--gen_kwargs", b.gen_kwargs]
    if b.unsafe_code:
        cmd += ["--confirm_run_unsafe_code"]
    if limit is not None:
        cmd += ["--limit", str(limit)]
    return cmd


def parse_results(path: str | os.PathLike, benchmark: str) -> dict[str, float]:
    """``frpo/<benchmark>/<metric>`` values from an lm-eval results JSON.

    The task's entry is looked up in ``results`` then ``groups`` (MMLU is a group). A missing
    required (first) metric raises ValueError naming the key and the file.
    """
    b = BENCHMARKS[benchmark]
    data = json.loads(Path(path).read_text())
    entry = (data.get("results") or {}).get(b.task) or (data.get("groups") or {}).get(b.task)
    if entry is None:
        raise ValueError(f"task {b.task!r} not found in the results of {path}")
    out: dict[str, float] = {}
    for i, (name, key) in enumerate(b.metrics.items()):
        if key in entry and entry[key] not in (None, "N/A"):
            out[f"frpo/{benchmark}/{name}"] = float(entry[key])
        elif i == 0:
            raise ValueError(f"metric {key!r} of task {b.task!r} missing from {path}")
    return out


def run_lm_eval(
    model_dir: str | os.PathLike,
    benchmarks: list[str],
    output_dir: str | os.PathLike,
    *,
    runner: Runner | None = None,
    **command_kwargs,
) -> dict[str, float]:
    """Run each benchmark on ``model_dir`` (one lm-eval process each); all metrics merged.

    Needs the ``paper`` extra (lm-eval with vLLM). Each benchmark writes under
    ``output_dir/<benchmark>/``; the newest results file there is parsed.
    """
    require_module("lm_eval", "lm-eval")
    metrics: dict[str, float] = {}
    for benchmark in benchmarks:
        out = Path(output_dir) / benchmark
        out.mkdir(parents=True, exist_ok=True)
        cmd = lm_eval_command(model_dir, benchmark, out, **command_kwargs)
        run_tool(cmd, env={"VLLM_WORKER_MULTIPROC_METHOD": "spawn"}, runner=runner)
        metrics.update(
            parse_results(newest(out / "**" / "results_*.json", "lm-eval results"), benchmark)
        )
    return metrics
