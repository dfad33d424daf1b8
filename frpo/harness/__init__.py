"""Evaluation harnesses (lm-eval, EvalPlus) and the paper profile's trainer settings.

The harnesses need the ``paper`` extra (``pip install 'frpo[paper]'``); importing this package
does not: each runner checks for its tool when called and names the extra when it is missing.
"""

from frpo.harness.codeeval import evalplus_command, run_evalplus
from frpo.harness.lmeval import BENCHMARKS, lm_eval_command, run_lm_eval
from frpo.harness.overrides import paper_trainer_overrides

__all__ = [
    "BENCHMARKS",
    "evalplus_command",
    "lm_eval_command",
    "paper_trainer_overrides",
    "run_evalplus",
    "run_lm_eval",
]
