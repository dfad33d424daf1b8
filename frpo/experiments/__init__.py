"""Experiment wiring behind the notebooks: profile parameters -> run specs -> runs -> tables and
evidence, one module per idea, so that a notebook is its parameters, one or two calls and its
figures and prose.

- :mod:`~frpo.experiments.specs`: spec sets (``{key: spec}``) for stage-1, SFT and evaluation runs;
- :mod:`~frpo.experiments.runs`: :func:`~frpo.experiments.runs.run_specs`, the one way a notebook
  runs a set of specs (one progress line; the libraries' output in log files);
- :mod:`~frpo.experiments.matched`: two sets of downstream runs compared at a matched KL;
- :mod:`~frpo.experiments.evidence`: the one NaN policy, claim evidence and ``metrics.json``;
- :mod:`~frpo.experiments.plots`: seaborn figures of seeds with t-intervals, method colours;
- one module per notebook: :mod:`~frpo.experiments.jackknife` (02),
  :mod:`~frpo.experiments.rlhf_safety` (03), :mod:`~frpo.experiments.baseline_ablation` (04),
  :mod:`~frpo.experiments.downstream_sft` (05), :mod:`~frpo.experiments.finetuning_sweep` (06),
  :mod:`~frpo.experiments.downstream_rl` (07), :mod:`~frpo.experiments.math_code` (08),
  :mod:`~frpo.experiments.baselines` (09). Each has ``run(profile, run_dir, **parameters)``
  returning an object that reads the runs, and a ``record`` that writes the notebook's evidence
  and ``metrics.json``.

The statistics these use live in :mod:`frpo.analysis` and :mod:`frpo.stats`.
"""
