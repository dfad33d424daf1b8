"""Exact numpy/scipy theory behind the lambda-theory and jackknife notebooks (no torch).

* :mod:`.risk` -- entropic risk, the KL-ball dual ``robust_reward`` (paper Eq. 3.3), the tilted
  worst-case policy and the Taylor approximation of Remark 3.3.
* :mod:`.primal` -- the KL-ball worst case solved directly, to verify duality.
* :mod:`.jackknife` -- exact / Monte-Carlo bias of the ``log Z`` estimators (App. F, Eq. 4.3).
* :mod:`.loglinear` -- the exact softmax-policy experiment of notebook 01.
"""

from .jackknife import log_partition_bias, log_partition_target, weight_bias
from .loglinear import (
    LogLinearProblem,
    adversarial_target,
    finetune_path,
    kept_reward_at_kl,
    make_problem,
    optimise_stage1,
    policy_stats,
    stage1_objective,
    worst_case_curve,
)
from .primal import worst_case_reward
from .risk import (
    as_distribution,
    average_tilted_kl,
    entropic_risk,
    kl,
    robust_reward,
    taylor_lambda,
    taylor_robust_reward,
    worst_case_policy,
)

__all__ = [
    "LogLinearProblem",
    "adversarial_target",
    "finetune_path",
    "kept_reward_at_kl",
    "log_partition_bias",
    "log_partition_target",
    "make_problem",
    "optimise_stage1",
    "policy_stats",
    "stage1_objective",
    "weight_bias",
    "worst_case_curve",
    "as_distribution",
    "average_tilted_kl",
    "entropic_risk",
    "kl",
    "robust_reward",
    "taylor_lambda",
    "taylor_robust_reward",
    "worst_case_policy",
    "worst_case_reward",
]
