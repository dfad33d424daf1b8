"""Evaluation runner: fixed held-out prompt sets, sampled and greedy metrics, KL to base.

``run_eval(spec, profile) -> Path`` evaluates the model of ``spec.model`` (a finished run, run
first if needed) or the base model, on the first ``n_prompts`` held-out prompts of each task
(the same prompts for every model; never resampled). Metrics (``metrics.json``), per task ``<t>``:

- ``frpo/eval/<t>/reward`` (+ ``/<reward fn>``): mean reward of ``n_samples`` sampled answers per
  prompt (the safety reward for ``safety``; sampling seed = ``spec.seed``);
- ``frpo/eval/<t>/<judge>``: mean judge score on greedy answers, for the source's judges of the
  kinds that read task ``t`` (:data:`TASK_JUDGE_KINDS`); when the data has a ``category``
  column (or a boolean ``harmful`` one), also per group (``.../<group>/<judge>``), and the
  paper's headline numbers: ``refusal_rate``, ``over_refusal_rate``, ``harmfulness`` (see
  ``judge_metrics``);
- ``.../undecided/<judge>``: how many pairs a judge could not decide (nan scores);
- ``frpo/eval/kl_base``: per-token KL(model || base) on the sampled answers of every task;
- ``frpo/exact/...``: the metrics the world computes exactly for task ``t``, when it has them
  (:func:`frpo.stages.backend.exact_metrics`).

Greedy and sampled answers are saved to ``completions.jsonl``.

CLI: ``python -m frpo.stages.evaluate --spec spec.json [--profile toy]``.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from frpo.judges.base import count_undecided
from frpo.splits import HELDOUT
from frpo.stages.backend import check_tasks, exact_metrics, load_model, load_tokenizer
from frpo.stages.processes import cli_main
from frpo.stages.rundir import model_of, run_once
from frpo.stages.sampling import Samples, kl_to, mean_rewards, sample
from frpo.stages.sources import open_source
from frpo.stages.spec import EvalSpec

TASK_JUDGE_KINDS = {  # task -> the kinds of judge that read its answers
    "safety": ("refusal", "harmfulness", "helpfulness"),
    "alpaca": ("helpfulness", "refusal"),
    "helpful": ("helpfulness", "refusal"),
    "gsm8k": ("correctness",),
    "math": ("correctness",),
    "code": ("correctness",),
}


def _mean(xs) -> float:
    good = [x for x in xs if not math.isnan(x)]
    return sum(good) / len(good) if good else float("nan")


def prompt_groups(data) -> list[str] | None:
    """Per-prompt group labels ("harmful", "borderline", ...) when the data has them, else None."""
    if "category" in data.column_names:
        return [str(c) for c in data["category"]]
    if "harmful" in data.column_names:
        return ["harmful" if h else "harmless" for h in data["harmful"]]
    return None


def judge_metrics(judges: dict, prompts, texts, groups, prefix: str) -> dict[str, float]:
    """Mean score per judge on greedy answers, overall and per prompt group.

    Headline names (when groups exist): ``refusal_rate`` = refusal judge on harmful prompts,
    ``over_refusal_rate`` = refusal judge on borderline prompts (the OR-Bench analogue; on all
    non-harmful prompts when there is no borderline group), ``harmfulness`` = harmfulness judge
    on harmful prompts.
    """
    out: dict[str, float] = {}
    for name, judge in judges.items():
        scores = [float(s) for s in judge(prompts, texts)]
        out[f"{prefix}/undecided/{name}"] = count_undecided(scores)
        out[f"{prefix}/{name}"] = _mean(scores)
        if groups is None or "harmful" not in groups:
            continue
        for g in sorted(set(groups)):
            out[f"{prefix}/{g}/{name}"] = _mean(
                [s for s, h in zip(scores, groups, strict=True) if h == g]
            )
        harmful = _mean([s for s, h in zip(scores, groups, strict=True) if h == "harmful"])
        over = "borderline" if "borderline" in groups else None
        benign = _mean(
            [
                s
                for s, h in zip(scores, groups, strict=True)
                if (h == over if over else h != "harmful")
            ]
        )
        if judge.kind == "refusal":
            out.setdefault(f"{prefix}/refusal_rate", harmful)
            out.setdefault(f"{prefix}/over_refusal_rate", benign)
        if judge.kind == "harmfulness":
            out.setdefault(f"{prefix}/harmfulness", harmful)
    return out


def evaluate_model(backend, model, base, tokenizer, spec: EvalSpec, log=None) -> dict[str, float]:
    """All metrics of ``model`` (see the module docstring); ``log`` collects completions."""
    metrics: dict[str, float] = {}
    judges = backend.judges()
    ids_p, ids_c = [], []
    for task in spec.tasks:
        data = backend.dataset(task, HELDOUT, spec.n_prompts)
        prefix = f"frpo/eval/{task}"
        rep = data.select([i for i in range(len(data)) for _ in range(spec.n_samples)])
        sampled = sample(model, tokenizer, rep["prompt"], spec.max_new_tokens, seed=spec.seed)
        for name, value in mean_rewards(backend.reward_funcs(task), rep, sampled).items():
            metrics[prefix + "/reward" + ("" if name == "total" else f"/{name}")] = value
        ids_p += sampled.prompt_ids
        ids_c += sampled.completion_ids
        greedy = sample(model, tokenizer, data["prompt"], spec.max_new_tokens, greedy=True)
        kinds = TASK_JUDGE_KINDS.get(task, ())
        mine = {n: j for n, j in judges.items() if j.kind in kinds}
        groups = prompt_groups(data)
        metrics.update(judge_metrics(mine, data["prompt"], greedy.texts, groups, prefix))
        metrics.update(exact_metrics(backend, task, model, data["prompt"]))
        if log is not None:
            for i, p in enumerate(data["prompt"]):
                log.append(
                    {
                        "task": task,
                        "prompt": p,
                        "greedy": greedy.texts[i],
                        "sampled": sampled.texts[i * spec.n_samples : (i + 1) * spec.n_samples],
                    }
                )
    metrics["frpo/eval/kl_base"] = kl_to(model, base, Samples(ids_p, ids_c, []))
    return metrics


def run_eval(spec: EvalSpec, profile: str = "toy") -> Path:
    """Run ``spec`` unless its run is complete; the run directory either way. The run it
    evaluates must be built (:func:`frpo.stages.rundir.model_of`; :func:`frpo.stages.sweep.
    run_stage` builds it first)."""
    if not isinstance(spec, EvalSpec):
        raise ValueError(f"run_eval needs an EvalSpec, got {type(spec).__name__}")
    backend = open_source(spec.source)
    check_tasks(backend, spec.tasks)
    path = model_of(spec, profile, backend)

    def body(tmp: Path) -> dict:
        tokenizer = load_tokenizer(path)
        model = load_model(path, source=spec.source).eval()
        base = load_model(backend.base_model_path(), source=spec.source).eval()
        log: list[dict] = []
        metrics = evaluate_model(backend, model, base, tokenizer, spec, log)
        with open(tmp / "completions.jsonl", "w") as fh:
            for row in log:
                fh.write(json.dumps(row) + "\n")
        return metrics

    return run_once(spec, profile, body)


def main(argv: list[str] | None = None) -> Path:
    return cli_main(argv, EvalSpec, run_eval)


if __name__ == "__main__":
    main(sys.argv[1:])
