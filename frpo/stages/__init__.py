"""Stage runners: RLHF (GRPO / FRPO / GRPO+SAM), downstream SFT and RL, evaluation, benchmarks.

Every run is described by a frozen spec (:mod:`frpo.stages.spec`) and lives in its own run
directory under ``runs/<profile>/`` (:mod:`frpo.stages.rundir`), written atomically and reused
while its identity (:mod:`frpo.stages.identity`) holds. The same code runs the toy world and the
real models: a spec's :class:`Source` opens a backend (:mod:`frpo.stages.sources`) with one
interface (:mod:`frpo.stages.backend`): the ToyWorld, local files in the real formats
(:mod:`frpo.stages.files`), or the paper's hub models, data sets, rewards and judges
(:mod:`frpo.stages.hub`, :mod:`frpo.stages.hub_judges`).

The stages (:data:`frpo.stages.spec.STAGES`: spec, upstream run, runner module), each runner
returning the finished run's directory (``profile`` is smoke / toy / paper / rehearsal):

- ``rl``: ``rlhf.run_rl(RLSpec, profile)``: GRPO, FRPO (lam, baseline, jackknife), GRPO+SAM
  (:mod:`frpo.stages.sam`); downstream RL when the spec has a ``parent`` (and ``track``);
- ``sft``: ``sft.run_sft(SFTSpec, profile)``: full or LoRA SFT, optional replay and mixing;
- ``eval``: ``evaluate.run_eval(EvalSpec, profile)``: fixed held-out metrics;
- ``bench``: ``benchmarks.run_bench(BenchSpec, profile)``: the paper's benchmarks (lm-eval,
  EvalPlus, HarmBench and StrongREJECT through their judges) on one model.

The RL and SFT runners share one train-and-save skeleton (:mod:`frpo.stages.training`) and the
trajectory tracking of downstream runs (:mod:`frpo.stages.tracking`, on
:mod:`frpo.stages.sampling`). A runner reads its upstream run's model only once that run is
built; ``sweep.run_stage(spec, profile)`` builds the upstream runs first, ``sweep.run_sweep``
a list of specs. Also: ``beta_search.search_beta(RLSpec, target_kl, profile)`` (KL-matched
beta), ``launch.launch_command`` / ``launch.plan`` (the ``accelerate launch`` command of a
paper-profile run; :mod:`frpo.stages.processes` splits a step's batch over its processes) and
``quiet.library_output`` (the libraries' output of a run into its log file).

CLI: ``python -m frpo.stages.{rlhf,sft,evaluate,benchmarks} --spec spec.json --profile toy``
(one run), ``python -m frpo.stages.sweep --specs specs.json`` (a list, upstream runs included)
and ``python -m frpo.stages.launch --specs specs.json --n-gpus 8`` (writes the spec files,
prints one ``accelerate launch`` per run).
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
