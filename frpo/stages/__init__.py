"""Stage runners: RLHF (GRPO / FRPO / GRPO+SAM), downstream SFT and RL, evaluation, sweeps.

Every run is described by a frozen spec (:mod:`frpo.stages.spec`) and lives in its own run
directory under ``runs/<profile>/`` (:mod:`frpo.stages.rundir`), written atomically and skipped
when complete. The same code runs the toy world and the real models (:mod:`frpo.stages.sources`:
the ToyWorld, local files in the real formats (:mod:`frpo.stages.files`), or the paper's hub
models, datasets, rewards and judges (:mod:`frpo.stages.hub`)).

Entry points (each returns the finished run's directory; ``profile`` is smoke / toy / paper):

- ``rlhf.run_rl(RLSpec, profile)``: GRPO, FRPO (lam, baseline, jackknife), GRPO+SAM
  (:mod:`frpo.stages.sam`); downstream RL when the spec has a ``parent`` (and ``track``);
- ``sft.run_sft(SFTSpec, profile)``: full or LoRA SFT, optional replay, trajectory tracking
  (:mod:`frpo.stages.tracking`);
- ``evaluate.run_eval(EvalSpec, profile)``: fixed held-out metrics;
- ``benchmarks.run_bench(BenchSpec, profile)``: the paper's benchmarks (lm-eval, EvalPlus,
  HarmBench and StrongREJECT through their judges) on one model;
- ``sweep.run_stage(spec, profile)`` / ``sweep.run_sweep(specs, profile)``: any spec, resuming;
- ``beta_search.search_beta(RLSpec, target_kl, profile)``: KL-matched beta;
- ``launch.launch_command(spec, spec_file, n_gpus)`` / ``launch.plan(spec, profile, n_gpus)``:
  the ``accelerate launch`` command of a paper-profile run.

CLI: ``python -m frpo.stages.{rlhf,sft,evaluate,benchmarks} --spec spec.json --profile toy``,
``python -m frpo.stages.sweep --specs specs.json`` and ``python -m frpo.stages.launch --specs
specs.json --n-gpus 8`` (writes the spec files, prints one ``accelerate launch`` per run).
"""

from frpo.stages.spec import (
    BenchSpec,
    EvalSpec,
    RLSpec,
    SFTSpec,
    Source,
    Track,
    from_dict,
    to_dict,
)

__all__ = ["BenchSpec", "EvalSpec", "RLSpec", "SFTSpec", "Source", "Track", "from_dict", "to_dict"]
