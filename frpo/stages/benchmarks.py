"""The paper's benchmarks on one model: lm-eval, EvalPlus and the safety prompt sets' judges.

``run_bench(spec, profile) -> Path`` evaluates the model of a :class:`~frpo.stages.spec.
BenchSpec` (a finished run, run first if needed, or the source's base model) and writes its run
directory (``runs/<profile>/bench/<run>/``, :mod:`frpo.stages.rundir`):

- ``lm_eval`` benchmarks through :func:`frpo.harness.lmeval.run_lm_eval` (MATH-500, MMLU 5-shot,
  IFEval, HumanEval, GSM8K maj@8; results under ``lm_eval/``): ``frpo/<bench>/<metric>``;
- ``evalplus`` datasets through :func:`frpo.harness.codeeval.run_evalplus` (MBPP+):
  ``frpo/mbpp_plus/{base,plus}_pass@1``;
- ``safety`` prompt sets, answered greedily (``max_new_tokens``) by the model here, each judged
  as its benchmark does: ``harmbench`` (standard + contextual behaviours of HarmBench's CSV,
  :func:`frpo.data.load_harmbench`) by the HarmBench classifier on (behaviour, context,
  answer): ``frpo/harmbench/refusal_rate`` (1 - attack success, averaged per behaviour) and
  ``frpo/harmbench/asr``; ``strongreject`` (:func:`frpo.data.load_strongreject`) by the
  StrongREJECT fine-tuned grader on (forbidden prompt, answer): ``frpo/strongreject/score``
  (mean, 0 = harmless) and ``.../undecided``. The answers are saved to ``completions.jsonl``.

The judges come from the spec's ``hub`` source (:mod:`frpo.stages.hub`, ``judge.*``); the
benchmark files from ``spec.data`` (HarmBench's and StrongREJECT's CSVs, EvalPlus's MBPP+ and
HumanEval+ ``.jsonl``; relative paths from the repository root). lm-eval reads its tasks' data
from the hub, or from their downloaded copies (:func:`frpo.harness.lmeval.local_task_overrides`).
lm-eval and EvalPlus run on vLLM where the machine has it, otherwise on their hf backends
(:mod:`frpo.harness.capability`), so the CPU rehearsal takes this path too.

Notebooks call :func:`benchmark_frame` (one row per model, its runs built by the runner they pass)
and :func:`summary` (mean over seeds).

CLI: ``python -m frpo.stages.benchmarks --spec spec.json [--profile paper]``.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pandas as pd

import frpo.data as loaders
from frpo.harness.codeeval import DATASETS, run_evalplus
from frpo.harness.lmeval import BENCHMARKS, local_task_overrides, run_lm_eval
from frpo.judges.harmbench import refusal_rate
from frpo.paths import resolve
from frpo.stages.backend import load_model, load_tokenizer
from frpo.stages.hub_judges import load_or_explain
from frpo.stages.processes import cli_main
from frpo.stages.rundir import load_metrics, model_of, run_once
from frpo.stages.sampling import sample
from frpo.stages.sources import open_source
from frpo.stages.spec import BenchSpec, Source

SAFETY_SETS = {  # prompt set -> (frpo.data loader, the file it reads)
    "harmbench": (
        loaders.load_harmbench,
        "https://raw.githubusercontent.com/centerforaisafety/HarmBench/main/data/"
        "behavior_datasets/harmbench_behaviors_text_test.csv",
    ),
    "strongreject": (
        loaders.load_strongreject,
        "https://raw.githubusercontent.com/alexandrasouly/strongreject/main/"
        "strongreject_dataset/strongreject_dataset.csv",
    ),
}
MBPP_PLUS_URL = (  # EvalPlus 0.3.1's MBPP+ (v0.2.0), gzipped: gunzip it
    "https://github.com/evalplus/mbppplus_release/releases/download/v0.2.0/MbppPlus.jsonl.gz"
)
DATA_KEYS = (*SAFETY_SETS, "mbpp_plus", "humaneval_plus")
RUN_KEYS = ("frpo/wall_seconds",)  # run bookkeeping, not a benchmark's number


def data_file(spec: BenchSpec, name: str) -> str:
    """The benchmark file ``name`` of ``spec.data`` (a local path resolved from the root, or a
    URL); "" when the spec has none; ValueError for a local file that is not there."""
    value = dict(spec.data).get(name, "")
    if not value or value.startswith(("http://", "https://")):
        return value
    path = resolve(value)
    if not path.is_file():
        hint = SAFETY_SETS[name][1] if name in SAFETY_SETS else MBPP_PLUS_URL
        raise ValueError(f"benchmark data {name!r}: no file {path}; download {hint} to it")
    return str(path)


def safety_set(spec: BenchSpec, name: str):
    """Safety prompt set ``name`` (RL format, every row) from ``spec.data``."""
    source = data_file(spec, name)
    if not source:
        raise ValueError(
            f"the benchmarks need the {name!r} prompt set: download {SAFETY_SETS[name][1]} and"
            f" name it in the benchmarks block's data ({name}: path/to/file.csv)"
        )
    return SAFETY_SETS[name][0](source)


def bench_spec(source: Source, model, block: Mapping) -> BenchSpec:
    """The :class:`BenchSpec` of ``model`` (a run spec, or None for the base model) from a
    notebook's ``benchmarks`` block (BenchSpec fields: lm_eval, evalplus, safety, ...)."""
    return BenchSpec(source=source, model=model, **dict(block))


def _limited(table, limit: int):
    return table if not limit or limit >= len(table) else table.select(range(limit))


def safety_metrics(backend, model, tokenizer, spec: BenchSpec, log: list) -> dict[str, float]:
    """The safety prompt sets' metrics (module docstring); answers appended to ``log``."""
    out: dict[str, float] = {}
    for name in spec.safety:
        data = _limited(safety_set(spec, name), spec.limit)
        answers = sample(model, tokenizer, data["prompt"], spec.max_new_tokens, greedy=True).texts
        if name == "harmbench":
            (judge,) = load_or_explain(("harmbench_cls",), backend.settings)
            harmful = judge.classify(list(data["behavior"]), answers, list(data["context"]))
            rates = refusal_rate(data["behavior_id"], harmful)
            decided = [h for h in harmful if not math.isnan(h)]
            out["frpo/harmbench/refusal_rate"] = rates["frpo/refusal_rate"]
            out["frpo/harmbench/asr"] = sum(decided) / len(decided)
            out["frpo/harmbench/n_behaviors"] = rates["frpo/n_behaviors"]
            out["frpo/harmbench/undecided"] = rates["frpo/n_undecided"]
            scores = harmful
        else:
            (judge,) = load_or_explain(("strongreject_finetuned",), backend.settings)
            scores = judge(list(data["forbidden_prompt"]), answers)
            decided = [s for s in scores if not math.isnan(s)]
            out["frpo/strongreject/score"] = sum(decided) / len(decided) if decided else math.nan
            out["frpo/strongreject/undecided"] = float(len(scores) - len(decided))
        for prompt, answer, score in zip(data["prompt"], answers, scores, strict=True):
            log.append({"set": name, "prompt": prompt, "answer": answer, "score": score})
    return out


def run_bench(spec: BenchSpec, profile: str = "paper") -> Path:
    """Run ``spec`` unless its run is complete; the run directory either way. The run it
    evaluates must be built (:func:`frpo.stages.rundir.model_of`; :func:`frpo.stages.sweep.
    run_stage` builds it first)."""
    if not isinstance(spec, BenchSpec):
        raise ValueError(f"run_bench needs a BenchSpec, got {type(spec).__name__}")
    if spec.source.kind != "hub":
        raise ValueError(
            f"the paper's benchmarks need real models (a hub source), not {spec.source.kind!r}"
        )
    for names, known, what in (
        (spec.lm_eval, BENCHMARKS, "lm-eval benchmark"),
        (spec.evalplus, DATASETS, "EvalPlus dataset"),
        (spec.safety, SAFETY_SETS, "safety prompt set"),
    ):
        for name in names:
            if name not in known:
                raise ValueError(f"unknown {what} {name!r}; expected one of {sorted(known)}")
    unknown = sorted(set(dict(spec.data)) - set(DATA_KEYS))
    if unknown:
        raise ValueError(f"unknown benchmark data {unknown}; expected some of {list(DATA_KEYS)}")
    for name in spec.safety:
        safety_set(spec, name)  # a missing file fails before any model is run
    backend = open_source(spec.source)
    path = model_of(spec, profile, backend)
    return run_once(spec, profile, lambda tmp: _benchmark(spec, backend, path, tmp))


def _benchmark(spec: BenchSpec, backend, path: str, tmp: Path) -> dict:
    metrics: dict[str, float] = {}
    if spec.lm_eval:
        out = tmp / "lm_eval"
        metrics.update(
            run_lm_eval(
                path,
                list(spec.lm_eval),
                out,
                max_gen_toks=spec.max_gen_toks,
                limit=spec.limit or None,
                include_path=local_task_overrides(spec.lm_eval, out / "tasks"),
            )
        )
    if spec.evalplus:
        files = {d: data_file(spec, f"{d}_plus") for d in spec.evalplus}
        metrics.update(run_evalplus(path, list(spec.evalplus), tmp, data_files=files))
    if spec.safety:
        log: list[dict] = []
        model = load_model(path, source=spec.source).eval()
        metrics.update(safety_metrics(backend, model, load_tokenizer(path), spec, log))
        with open(tmp / "completions.jsonl", "w") as fh:
            for row in log:
                fh.write(json.dumps(row) + "\n")
    return metrics


def benchmark_frame(
    models: Mapping[tuple, object],
    block: Mapping,
    names,
    source=None,
    *,
    run: Callable[[dict, str], dict],
):
    """One ``pandas.DataFrame`` row per model: the ``names`` tags of its key and the benchmark
    metrics of its :class:`BenchSpec` (``block``), every run built (or reused) first.

    ``models[key]`` is a run spec, or None for the source's base model (``source``, default the
    one source of the run specs); ``names`` names the key's parts, e.g.
    ``("stage", "method", "seed")``. ``run(specs, label) -> {key: run_dir}`` builds the runs and
    their upstream runs (a notebook's :func:`frpo.experiments.runs.runner`, which keeps the
    tools' output out of the chapter).
    """
    sources = {m.source for m in models.values() if m is not None} | ({source} - {None})
    if len(sources) != 1:
        raise ValueError(f"benchmark_frame needs models of one source, got {len(sources)}")
    (source,) = sources
    specs = {k: bench_spec(source, m, block) for k, m in models.items()}
    rows = []
    for key in specs:
        if len(key) != len(names):
            raise ValueError(f"model key {key!r} does not match names {tuple(names)!r}")
    for key, path in run(specs, "benchmark runs").items():
        metrics = {k: v for k, v in load_metrics(path).items() if k not in RUN_KEYS}
        rows.append({**dict(zip(names, key, strict=True)), **metrics})
    return pd.DataFrame(rows)


def summary(frame, by: Sequence[str]):
    """Mean of every metric column of :func:`benchmark_frame` per ``by`` group (over seeds)."""
    metrics = [c for c in frame.columns if str(c).startswith("frpo/")]
    return frame.groupby(list(by), sort=False)[metrics].mean()


def main(argv: list[str] | None = None) -> Path:
    return cli_main(argv, BenchSpec, run_bench)


if __name__ == "__main__":
    main(sys.argv[1:])
