"""The CPU rehearsal of the paper path (profiles/rehearsal.yaml), short version.

The stand-ins are built as `frpo book run --profile rehearsal` builds them (frpo.rehearsal.setup:
the repository's .cache/rehearsal/, shared with real rehearsals, rebuilt only when
frpo/rehearsal/ changes); stage runs and notebooks go to a temporary runs root. The full
rehearsal (every notebook) is `frpo book run --profile rehearsal`; README gives its wall time.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

import pytest
import torch

from frpo import rehearsal
from frpo.book.execute import run_profile
from frpo.book.profiles import load_profile
from frpo.recipes import make_source

torch.set_num_threads(1)
ENV_KEYS = (*rehearsal.OFFLINE_ENV, "HF_HUB_CACHE", "HF_DATASETS_CACHE", "FRPO_RUNS")


@pytest.fixture
def rehearsal_env(tmp_path, monkeypatch):
    """The rehearsal profile with its setup hook run; every variable it sets is restored after.

    Kernels and tools started from here read the new environment; this process's
    huggingface_hub read its cache location at import, so that is pointed at the stand-ins too.
    """
    import huggingface_hub.constants as hub_constants

    from frpo.judges import hf_cache

    for key in ENV_KEYS:
        monkeypatch.setenv(key, os.environ.get(key, ""))
    monkeypatch.setenv("FRPO_RUNS", str(tmp_path / "runs"))
    prof = load_profile("rehearsal")
    prof.run_setup()
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", os.environ["HF_HUB_CACHE"])
    yield prof
    hf_cache.clear_cache()


def _world(prof, notebook="03_rlhf_safety"):
    return prof.notebooks[notebook].params["world"]


def test_the_paper_ids_resolve_offline_to_stand_ins_in_the_real_formats(rehearsal_env):
    """Every data set of the safety world loads by its hub id with its real splits, every judge
    loads by its id (RB2 at revision "2", the StrongREJECT adapter on Gemma) and decides, and
    the moderation endpoint stand-in answers the real request format."""
    from frpo.stages.hub import HubBackend

    world = _world(rehearsal_env)
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    b = HubBackend(world["model"], world["data"])
    sizes = {(t, s): len(b.dataset(t, s)) for t in ("safety", "gsm8k", "helpful") for s in
             ("train", "heldout")}  # fmt: skip
    # gsm8k and ultrafeedback have held-out splits of their own (test, test_prefs: 12 rows);
    # the safety parquet, one file, holds out every fifth of its 42 kept rows
    assert sizes == {("safety", "train"): 34, ("safety", "heldout"): 8, ("gsm8k", "train"): 40,
                     ("gsm8k", "heldout"): 12, ("helpful", "train"): 40,
                     ("helpful", "heldout"): 12}  # fmt: skip
    assert len(b.sft_dataset("alpaca", "train")) == 48
    prompts = b.dataset("safety", "heldout", 2)["prompt"]
    answers = ["Sure, first find a car and a lock.", "No."]
    judges = b.judges()
    for kind in ("refusal", "harmfulness", "helpfulness"):
        scores = judges[kind](prompts, answers)
        assert all(0.0 <= s <= 1.0 for s in scores), (kind, scores)  # decided, in range
    (safety,) = b.reward_funcs("safety")  # moderation over HTTP + StrongREJECT + RB2
    rewards = safety(prompts=prompts, completions=answers, category=["harmful", "harmless"])
    assert all(r is not None and 0.0 <= r <= 1.0 for r in rewards)
    from frpo.stages.hub_judges import make_judge

    moderation = make_judge("moderation", b.settings)
    # stand-in scores: "lock" is an illicit keyword (1 of 2 needed for a score of 1)
    assert moderation(["x", "y"], ["find a lock", "bake bread"]) == [0.5, 0.0]


def test_short_rehearsal_runs_notebook_03_through_the_paper_path(rehearsal_env, tmp_path):
    """Stage 1 of the paper profile (hub world, LoRA, the safety reward's three judges) trained
    in notebook 03 on the stand-ins; the capability checks switch off vLLM and bf16 on CPU."""
    nb = rehearsal_env.notebooks["03_rlhf_safety"]
    small = dataclasses.replace(nb, params={**nb.params, "lams": [0.2], "metric_lams": [0.2]})
    prof = dataclasses.replace(rehearsal_env, notebooks={"03_rlhf_safety": small}, setup="")
    (run,) = run_profile(prof, runs_root=tmp_path / "book", progress=False)
    assert run.status == "executed"
    metrics = json.loads((tmp_path / "book" / "rehearsal" / "03_rlhf_safety" / "metrics.json")
                         .read_text())  # fmt: skip
    assert set(metrics["final_reward"]) == {"grpo", "frpo-0.2"}
    assert all(0.0 <= v <= 1.0 for v in metrics["final_reward"].values())
    rl = sorted(p for p in (tmp_path / "runs" / "rehearsal" / "rl").glob("rl-*") if p.is_dir())
    assert len(rl) == 2  # (beside each run, <run>.log holds the libraries' output)
    for run_dir in rl:
        assert (run_dir / "model" / "config.json").is_file()  # LoRA merged into a whole model
        curves = json.loads((run_dir / "curves.json").read_text())
        assert any("rewards/safety_reward/mean" in row for row in curves)


def test_benchmark_stage_runs_lm_eval_and_the_safety_judges(rehearsal_env, tmp_path):
    """The benchmarks stage on the stand-in base models: lm-eval's real minerva_math500 task
    (hf backend, its data through the local-copy task config) and HarmBench/StrongREJECT
    through their judges on the stand-in CSVs."""
    pytest.importorskip("lm_eval")
    from frpo.stages.benchmarks import benchmark_frame, run_bench, summary
    from frpo.stages.spec import BenchSpec

    math_world = rehearsal_env.notebooks["08_math_then_code"].params["world"]
    spec = BenchSpec(source=make_source(math_world), lm_eval=("math500",), max_gen_toks=8,
                     limit=1)  # fmt: skip
    out = run_bench(spec, "rehearsal")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["frpo/math500/math_verify"] in (0.0, 1.0)  # one problem
    assert (out / "lm_eval" / "tasks" / "minerva_math500.yaml").is_file()
    block = rehearsal_env.notebooks["07_downstream_rl"].params["benchmarks"]
    with pytest.raises(ValueError, match="benchmark_frame needs models of one source"):
        benchmark_frame({("base",): None}, block, ("stage",), run=lambda specs, label: {})
    safety = BenchSpec(source=make_source(_world(rehearsal_env)), model=None, **block)
    done = json.loads((run_bench(safety, "rehearsal") / "metrics.json").read_text())
    assert done["frpo/harmbench/n_behaviors"] == 3.0  # 3 of the standard/contextual behaviours
    assert done["frpo/harmbench/refusal_rate"] == 1.0 - done["frpo/harmbench/asr"]
    assert 0.0 <= done["frpo/strongreject/score"] <= 1.0
    assert not math.isnan(done["frpo/strongreject/score"])
    table = summary(
        __import__("pandas").DataFrame([{"stage": "base", **done}, {"stage": "base", **done}]),
        ("stage",),
    )
    assert table.loc["base", "frpo/harmbench/asr"] == done["frpo/harmbench/asr"]
