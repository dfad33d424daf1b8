"""lm-evaluation-harness runs for the paper's benchmarks, and their results JSON.

Benchmarks (paper Sec. 5, Tables 1-2): MATH-500 (``minerva_math500``, 0-shot, chat template,
"put your final answer within \\boxed{}"), MMLU 5-shot, IFEval, HumanEval, GSM8K maj@8
(``gsm8k_cot_self_consistency``, filter ``maj@8``). Facts of lm-eval 0.4.13 these settings rest on:

- ``minerva_math500``'s ``exact_match`` only reads an answer written as "Final Answer: The final
  answer is ... I hope it is correct." (the 4-shot Minerva format), so a 0-shot boxed answer
  scores 0 there; its ``math_verify`` compares the answer math-verify parses from the output
  with the reference solution: that is the metric read (the first of :attr:`Benchmark.metrics`).
- ``humaneval`` executes the generated code through ``evaluate``'s ``code_eval`` metric, which
  refuses to run unless ``HF_ALLOW_CODE_EVAL=1``: the variable is set for that process only.
- ``gsm8k_cot_self_consistency`` samples 64 answers per question (``repeats: 64``) and reads
  ``maj@8`` from the first 8 of them (also ``maj@64``): the GSM8K run costs 64 generations per
  question (84,416 for the 1,319 test questions), eight times what maj@8 needs.

The model runs on vLLM where the machine has it (:mod:`frpo.harness.capability`), otherwise on
lm-eval's ``hf`` backend (CPU: float32, ``--device cpu``), so the same call works in the CPU
rehearsal. ``include_path`` adds task configs (e.g. the real tasks pointed at local copies of
their data, for machines without the hub; same task names, so the results read alike).

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
from frpo.harness.capability import Capabilities

BOXED_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."


@dataclass(frozen=True)
class Benchmark:
    """One lm-eval task and the metrics the book shows.

    Attributes:
        task: lm-eval task (or group) name.
        metrics: our metric name -> lm-eval result key ``"<metric>,<filter>"``; the first one is
            the benchmark's score (:func:`score_key`) and required in the results, the others
            are read when present.
        num_fewshot: None keeps the task's default.
        chat: pass ``--apply_chat_template`` (instruction-tuned models).
        system_instruction: ``--system_instruction``.
        gen_kwargs: ``--gen_kwargs``.
        unsafe_code: the task executes generated code (``--confirm_run_unsafe_code``).
        env: environment variables of this benchmark's process only.
        task_dir: the folder of lm-eval's ``tasks/`` holding the task's configs (and its
            subtasks', for a group).
    """

    task: str
    metrics: dict[str, str] = field(default_factory=dict)
    num_fewshot: int | None = None
    chat: bool = True
    system_instruction: str | None = None
    gen_kwargs: str | None = None
    unsafe_code: bool = False
    env: dict[str, str] = field(default_factory=dict)
    task_dir: str = ""


BENCHMARKS: dict[str, Benchmark] = {
    "math500": Benchmark(
        "minerva_math500",
        {"math_verify": "math_verify,none", "exact_match": "exact_match,none"},
        num_fewshot=0,
        system_instruction=BOXED_SYSTEM,
        gen_kwargs="temperature=0",
        task_dir="minerva_math",
    ),
    "mmlu": Benchmark(
        "mmlu", {"acc": "acc,none"}, num_fewshot=5, chat=False, task_dir="mmlu/default"
    ),
    "ifeval": Benchmark(
        "ifeval",
        {
            "prompt_level_strict_acc": "prompt_level_strict_acc,none",
            "inst_level_strict_acc": "inst_level_strict_acc,none",
            "prompt_level_loose_acc": "prompt_level_loose_acc,none",
            "inst_level_loose_acc": "inst_level_loose_acc,none",
        },
        task_dir="ifeval",
    ),
    "humaneval": Benchmark(
        "humaneval",
        {"pass@1": "pass@1,create_test"},
        chat=False,
        unsafe_code=True,
        env={"HF_ALLOW_CODE_EVAL": "1"},
        task_dir="humaneval",
    ),
    "gsm8k_maj8": Benchmark(
        "gsm8k_cot_self_consistency", {"maj@8": "exact_match,maj@8"}, chat=False, task_dir="gsm8k"
    ),
}


def local_task_overrides(benchmarks, out_dir: str | os.PathLike) -> str | None:
    """Task configs that point lm-eval at downloaded copies of its tasks' data sets.

    ``datasets`` cannot open a hub id offline from the hub cache alone, so a task whose data set
    was downloaded (``hf download --repo-type dataset <id>``, :func:`frpo.data._io.
    local_snapshot`) gets, in ``out_dir``, a config with the same task name that includes the
    real one (prompts, metrics, filters unchanged) and sets ``dataset_path`` to the local copy
    (its dataset card keeps the configs and splits). lm-eval lets an ``--include_path`` config
    replace the built-in task of the same name. Returns ``out_dir``, or None when no task's
    data are downloaded (lm-eval then reads the hub) or lm-eval is not installed.
    """
    import importlib.util

    spec = importlib.util.find_spec("lm_eval")
    if spec is None or not spec.submodule_search_locations:
        return None
    from lm_eval.tasks._yaml_loader import load_yaml

    from frpo.data._io import local_snapshot

    tasks_root = Path(list(spec.submodule_search_locations)[0]) / "tasks"
    out = Path(out_dir)
    written = 0
    for benchmark in benchmarks:
        folder = tasks_root / BENCHMARKS[benchmark].task_dir
        for config in sorted(folder.glob("*.yaml")):
            cfg = load_yaml(config, resolve_func=False)
            name, path = cfg.get("task"), cfg.get("dataset_path")
            if not isinstance(name, str) or not isinstance(path, str):
                continue
            local = local_snapshot(path)
            if local is None:
                continue
            out.mkdir(parents=True, exist_ok=True)
            text = json.dumps({"include": str(config), "task": name, "dataset_path": local})
            (out / f"{name}.yaml").write_text(text + "\n")  # JSON is YAML
            written += 1
    return str(out) if written else None


def score_key(benchmark: str) -> str:
    """The metric name of ``benchmark``'s score, e.g. ``frpo/math500/math_verify``."""
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; expected one of {sorted(BENCHMARKS)}")
    return f"frpo/{benchmark}/{next(iter(BENCHMARKS[benchmark].metrics))}"


def lm_eval_command(
    model_dir: str | os.PathLike,
    benchmark: str,
    output_dir: str | os.PathLike,
    *,
    tensor_parallel_size: int = 1,
    gpu_memory_utilization: float = 0.9,
    max_gen_toks: int = 2048,
    batch_size: str | None = None,
    limit: int | None = None,
    include_path: str | os.PathLike | None = None,
    caps: Capabilities | None = None,
) -> list[str]:
    """The ``python -m lm_eval`` command line for one benchmark on a model directory.

    With vLLM (``caps``, default :func:`frpo.harness.capability.detect`) the model runs in bf16
    on ``tensor_parallel_size`` GPUs and ``max_gen_toks`` is the default of tasks that set none;
    without it, on lm-eval's ``hf`` backend in ``caps.dtype`` and ``max_gen_toks`` caps every
    task's generation (``--gen_kwargs``; a CPU rehearsal keeps answers short). ``batch_size``
    defaults to lm-eval's ``auto`` on a GPU and to 8 on a CPU (where ``auto``'s probe, a forward
    pass of 64 full-length rows, takes minutes).
    """
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; expected one of {sorted(BENCHMARKS)}")
    if tensor_parallel_size < 1:
        raise ValueError(f"tensor_parallel_size must be >= 1, got {tensor_parallel_size}")
    from frpo.harness import capability

    caps = caps or capability.detect()
    b = BENCHMARKS[benchmark]
    backend, model_args, device, gen_kwargs = _model_flags(
        model_dir, caps, tensor_parallel_size, gpu_memory_utilization, max_gen_toks
    )
    cmd = [sys.executable, "-m", "lm_eval", "--model", backend, "--model_args", model_args]
    cmd += ["--tasks", b.task, "--batch_size", batch_size or ("auto" if caps.cuda else "8")]
    cmd += ["--output_path", str(output_dir), "--log_samples"]
    cmd += _task_flags(b, gen_kwargs)
    if device is not None:
        cmd += ["--device", device]
    if limit is not None:
        cmd += ["--limit", str(limit)]
    if include_path is not None:
        cmd += ["--include_path", str(include_path)]
    return cmd


def _model_flags(model_dir, caps: Capabilities, tensor_parallel_size: int,
                 gpu_memory_utilization: float, max_gen_toks: int):  # fmt: skip
    """``(backend, model_args, device, gen_kwargs)``: vLLM in bf16 on ``tensor_parallel_size``
    GPUs (``max_gen_toks`` the default of tasks that set none; no ``--device``), else the ``hf``
    backend in ``caps.dtype`` with ``max_gen_toks`` capping every task's generation."""
    if caps.vllm:
        model_args = ",".join(
            [
                f"pretrained={model_dir}",
                f"tensor_parallel_size={tensor_parallel_size}",
                f"dtype={caps.dtype}",
                f"gpu_memory_utilization={gpu_memory_utilization}",
                f"max_gen_toks={max_gen_toks}",
            ]
        )
        return "vllm", model_args, None, []
    model_args = f"pretrained={model_dir},dtype={caps.dtype}"
    return "hf", model_args, "cuda" if caps.cuda else "cpu", [f"max_gen_toks={max_gen_toks}"]


def _task_flags(b: Benchmark, gen_kwargs: list[str]) -> list[str]:
    """The benchmark's own flags: few-shot count, chat template, system instruction, its
    generation settings (before ``gen_kwargs``), unsafe code."""
    flags = []
    if b.num_fewshot is not None:
        flags += ["--num_fewshot", str(b.num_fewshot)]
    if b.chat:
        flags += ["--apply_chat_template"]
    if b.system_instruction:
        flags += ["--system_instruction", b.system_instruction]
    gen = ([b.gen_kwargs] if b.gen_kwargs else []) + gen_kwargs
    if gen:
        flags += ["--gen_kwargs", *gen]
    if b.unsafe_code:
        flags += ["--confirm_run_unsafe_code"]
    return flags


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

    Needs lm-eval (the ``paper`` extra; ``harness`` for CPU). Each benchmark writes under
    ``output_dir/<benchmark>/``; the newest results file there is parsed. A benchmark's own
    environment (:attr:`Benchmark.env`) is set for its process only.
    """
    require_module("lm_eval", "lm-eval")
    metrics: dict[str, float] = {}
    for benchmark in benchmarks:
        out = Path(output_dir) / benchmark
        out.mkdir(parents=True, exist_ok=True)
        cmd = lm_eval_command(model_dir, benchmark, out, **command_kwargs)
        env = {"VLLM_WORKER_MULTIPROC_METHOD": "spawn", **BENCHMARKS[benchmark].env}
        run_tool(cmd, env=env, runner=runner, log=out / "lm_eval.log")
        metrics.update(
            parse_results(newest(out / "**" / "results_*.json", "lm-eval results"), benchmark)
        )
    return metrics
