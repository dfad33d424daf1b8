"""FRPO on top of TRL: ``FRPOConfig(GRPOConfig)`` and ``FRPOTrainer(GRPOTrainer)``.

The trainer is thin: the objective lives in :mod:`frpo.losses`; here we only route TRL's rows to
it so that the optimiser sees exactly the gradient of ``frpo_loss`` on the whole batch.

Why a decomposition, and why it is exact (Eq. 4.1-4.3)
------------------------------------------------------
The FRPO loss of one prompt's group, lam log Z~ - lam (1/G) sum_i s_i with
Zhat = (1/G) sum_i exp(-A_i/lam) s_i (Eq. 4.1), the baseline of Eq. 4.2 and the jackknife of
Eq. 4.3, couples all G completions of the group through log Z~. TRL does not keep a group
together: the generation batch is cut across processes (``accelerate``), shuffled, and split into
``steps_per_generation`` micro-batches, so one micro-batch may hold 3 of a group's 8 rows. A
group-level loss evaluated per micro-batch would be wrong.

The loss depends on the policy only through the per-row ratios s_i (one number per completion),
so by the chain rule its gradient is sum_i (dL/ds_i) grad s_i. On-policy, i.e. when the
optimiser has not moved since the completions were sampled, every s_i = 1 and dL/ds_i is a
number that depends on the advantages only. ``frpo_row_coefficients`` computes these numbers on
the WHOLE generation batch (after gathering the advantages of every process), and each
micro-batch then minimises the linear surrogate sum_{i in micro-batch} coef_i s_i. Summed over
any partition of the rows, the surrogates' gradients are exactly the whole-batch gradient. The
coefficients are stored in the batch dict TRL returns from ``_generate_and_score_completions``, so
they are shuffled and split together with their rows.

The identity needs s_i = 1 when a row's gradient is taken: the model may not change between
generation and the last micro-batch that uses it. That holds iff ``num_iterations == 1`` and
``gradient_accumulation_steps`` is a multiple of ``steps_per_generation`` (one or several
generations per optimiser step; TRL's own on-policy condition). Other layouts (several optimiser
steps per generation) make the coefficients stale and are refused with a ValueError.

Scaling. Trainer/accelerate add: DDP averages gradients over the P processes, and an optimiser
step sums ``gradient_accumulation_steps`` micro-batches covering
``gradient_accumulation_steps / steps_per_generation`` generation batches (each with
coefficients carrying 1/n_groups of its own batch). Each micro-batch therefore returns
P * (steps_per_generation / gradient_accumulation_steps) * surrogate, and the optimiser step sees
the gradient of the mean over groups of the whole step's batch. The KL term (TRL's k3,
``exp(ref - logp) - (ref - logp) - 1`` per token, TRL's reference log-probs) is aggregated as TRL's
default ``loss_type="dapo"``: a token mean over the generation batch (``num_items_in_batch``);
with several generation batches per optimiser step, the mean of their token means (as TRL). The
FRPO part of such a step is exactly frpo_loss on the union of the batches as long as every
generation batch has the same number of non-empty groups (always, unless all G completions of a
prompt are empty).

Tested (tests/test_trainer_exact.py, test_trainer_distributed.py): the parameters after one SGD
step equal a hand step on ``frpo_loss`` of the whole batch + beta * KL, to ~1e-7 relative to the
step (the floor set by TRL's float32 log-prob kernel), for one micro-batch, two micro-batches with
split groups, two generations per step, and two gloo processes x two micro-batches each with
groups straddling both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from trl import GRPOConfig, GRPOTrainer

from frpo.losses import (
    check_lam,
    frpo_row_coefficients,
    frpo_surrogate_loss,
    reward_scaling_problem,
)

__all__ = ["FRPOConfig", "FRPOTrainer", "LOSS_SCALES", "loss_scale_factor"]

LOSS_SCALES = ("max_lam_1", "none")
COEF_KEY = "frpo_coef"  # (B,) per-row coefficients in the batch dict TRL shuffles and splits
VALUE_KEY = "frpo_value"  # (B,) each row's share of the on-policy loss value (for logging only)


def loss_scale_factor(lam: float, loss_scale: str) -> float:
    """Factor on ``frpo_loss`` (which carries lam) for the configured loss scaling (App. C.1).

    "max_lam_1": the paper omits the lam factor of Eq. 4.1 and multiplies by max(lam, 1), i.e.
    per group max(lam, 1) * (log Z~ - (1/G) sum_i s_i) = frpo_loss * max(lam, 1) / lam.
    "none": frpo_loss itself, lam log Z~ - lam (1/G) sum_i s_i.
    """
    if loss_scale == "max_lam_1":
        return max(lam, 1.0) / lam
    if loss_scale == "none":
        return 1.0
    raise ValueError(f"loss_scale must be one of {LOSS_SCALES}, got {loss_scale!r}")


@dataclass
class FRPOConfig(GRPOConfig):
    r"""Configuration for [`FRPOTrainer`]: every GRPOConfig parameter plus the FRPO fields below.

    Only ``scale_rewards`` changes its inherited default, by re-declaring the field: FRPO centres
    rewards per group without dividing by the std (A_i = r_i - mean_j r_j, Algorithm 1), so the
    default is "none" instead of TRL's "group"; any other value is refused with the reason
    (:func:`frpo.losses.reward_scaling_problem`, the rule ``RLSpec`` applies too), as is TRL's
    ``multi_objective_aggregation="normalize_then_sum"``, which divides by a std per function.

    Parameters:
        lam: lambda > 0 of the entropic objective (Eq. 3.5); lam -> inf is GRPO.
        baseline: subtract lam (1/G) sum_i s_i (Eq. 4.2).
        jackknife: leave-one-out bias correction of log Z (Eq. 4.3).
        loss_scale: "max_lam_1" (paper, App. C.1) or "none"; see :func:`loss_scale_factor`.
    """

    lam: float = field(
        default=1.0,
        metadata={
            "help": "lambda > 0 of the entropic objective -lam log E[exp(-r/lam)] (Eq. 3.5). "
            "Smaller is more robust to downstream fine-tuning; lam -> inf recovers GRPO. "
            "The paper sweeps "
            "{10, 5, 4, 2, 1, 0.5, 0.2, 0.1}."
        },
    )
    baseline: bool = field(
        default=True,
        metadata={
            "help": "Subtract the baseline lam * (1/G) sum_i s_i (Eq. 4.2). Without it training "
            "collapses (paper Fig. 16)."
        },
    )
    jackknife: bool = field(
        default=True,
        metadata={
            "help": "Use the jackknifed log Z (Eq. 4.3), which cuts the O(1/G) bias of the "
            "self-normalised estimator to O(1/G^2). Needs >= 2 completions per group."
        },
    )
    loss_scale: str = field(
        default="max_lam_1",
        metadata={
            "help": "How the FRPO loss is scaled. 'max_lam_1' (paper, App. C.1): drop the lam "
            "factor of Eq. 4.1 and multiply by max(lam, 1), keeping gradient norms comparable "
            "across lam. "
            "'none': the plain objective lam log Z - lam mean(s)."
        },
    )
    scale_rewards: str = field(
        default="none",
        metadata={
            "help": "Reward scaling before the advantages (inherited from GRPOConfig). FRPO needs "
            "'none': A = r - group mean, as in Algorithm 1; 'group'/'batch' (a std division) are "
            "refused, since exp(-A/lam) reads the rewards on their own scale."
        },
    )

    def __post_init__(self):
        check_lam(self.lam)  # before TRL's checks: lam = inf or 0 is refused at construction
        super().__post_init__()
        problem = reward_scaling_problem(self.scale_rewards)
        if problem:
            raise ValueError(problem)
        if self.multi_objective_aggregation != "sum_then_normalize":
            raise ValueError(
                f"multi_objective_aggregation={self.multi_objective_aggregation!r} is refused "
                "for FRPO; use 'sum_then_normalize' (the other divides each reward by its std, "
                "which changes the entropic objective)"
            )
        loss_scale_factor(self.lam, self.loss_scale)  # validates loss_scale


def _unsupported_settings(args: GRPOConfig) -> list[str]:
    """Settings of GRPOConfig that change TRL's loss in ways FRPO does not implement."""
    bad = []
    if args.loss_type != "dapo":
        bad.append(
            f"loss_type={args.loss_type!r} (FRPO has its own policy loss; the KL term is "
            "aggregated as TRL's default 'dapo')"
        )
    if args.importance_sampling_level != "token":
        bad.append(f"importance_sampling_level={args.importance_sampling_level!r} (use 'token')")
    if args.top_entropy_quantile < 1.0:
        bad.append(f"top_entropy_quantile={args.top_entropy_quantile} (use 1.0)")
    if args.off_policy_mask_threshold is not None:
        bad.append(f"off_policy_mask_threshold={args.off_policy_mask_threshold} (use None)")
    if args.delta is not None:
        bad.append(f"delta={args.delta} (FRPO clips the token ratio at 1 + epsilon_high only)")
    if args.entropy_coef != 0.0 or args.use_adaptive_entropy:
        bad.append("an entropy bonus (use entropy_coef=0.0, use_adaptive_entropy=False)")
    if args.use_vllm and args.vllm_importance_sampling_correction:
        bad.append("use_vllm with vllm_importance_sampling_correction=True (set it False)")
    return bad


class FRPOTrainer(GRPOTrainer):
    """GRPOTrainer with the FRPO loss (Eq. 4.1-4.3) in place of GRPO's clipped surrogate.

    Overrides ``__init__`` (validates the layout and settings before anything is loaded),
    ``_calculate_rewards`` (refuses an infinite reward where it appears, naming the reward
    function, and records which rows were scored: a completion every reward function returned
    None or NaN for leaves its group, so it does not move the policy and its group's estimate is
    over the scored rows), ``_generate_and_score_completions`` (adds whole-batch per-row
    coefficients under
    ``"frpo_coef"`` and each row's share of the on-policy loss value under ``"frpo_value"``) and
    ``_compute_loss`` (linear surrogate + beta * TRL's k3 KL; its value is scale * frpo_loss +
    beta * KL, its gradient that of the surrogate). With ``jackknife``, a group left with fewer than
    2 non-empty completions (e.g. by ``mask_truncated_completions``) is left out of the loss.
    Generation, rewards, advantages, reference model, PEFT and logging are TRL's. Logged metrics:
    ``frpo/log_z``, ``frpo/max_weight``, ``frpo/ess``, ``frpo/n_groups``, ``frpo/loss_on_policy``
    (per generation batch), ``frpo/clip_frac`` (per micro-batch), and TRL's ``kl``, ``entropy``.
    """

    _tag_names = ["trl", "frpo"]

    def __init__(self, model, reward_funcs=None, args=None, **kwargs):
        if args is None:
            raise ValueError("FRPOTrainer needs args=FRPOConfig(...), got args=None")
        if not isinstance(args, FRPOConfig):
            raise ValueError(
                f"FRPOTrainer needs an FRPOConfig, got args of type {type(args).__name__}"
            )
        ga, spg = args.gradient_accumulation_steps, args.steps_per_generation
        if args.num_iterations != 1 or ga % spg != 0:
            raise ValueError(
                f"FRPOTrainer is exact only on-policy; got num_iterations={args.num_iterations}, "
                f"steps_per_generation={spg}, gradient_accumulation_steps={ga}. Use "
                "num_iterations=1 and a gradient_accumulation_steps that is a multiple of "
                "steps_per_generation (e.g. equal, TRL's default): the FRPO coefficients are "
                "d loss / d s_i at s_i = 1, stale once the optimiser has stepped."
            )
        bad = _unsupported_settings(args)
        if bad:
            raise ValueError("FRPOTrainer does not support: " + "; ".join(bad))
        super().__init__(model, reward_funcs, args=args, **kwargs)
        self._frpo_scale = loss_scale_factor(args.lam, args.loss_scale)

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(
            inputs, prompts, completions, completion_ids_list
        )  # (P * b, n_funcs), gathered over processes; NaN where a function returned None
        infinite = torch.isinf(rewards_per_func)
        if bool(infinite.any()):
            row, func = (int(i) for i in torch.nonzero(infinite)[0])
            local = row - self.accelerator.process_index * len(prompts)
            prompt = prompts[local] if 0 <= local < len(prompts) else "(on another process)"
            raise ValueError(
                f"reward function {self.reward_func_names[func]!r} returned "
                f"{rewards_per_func[row, func].item()} for completion {row} of this generation "
                f"batch (prompt {prompt!r}): FRPO's weights exp(-r/lam) need finite rewards; "
                "fix or bound the reward function"
            )
        self._frpo_scored = ~torch.isnan(rewards_per_func).all(dim=1)  # (P * b,)
        return rewards_per_func

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        mode = "train" if self.model.training else "eval"
        group_size = self.num_generations if mode == "train" else self.num_generations_eval
        mask = output["completion_mask"]
        if "tool_mask" in output:
            mask = mask * output["tool_mask"]
        local = torch.stack(
            [output["advantages"].to(torch.float64), (mask.sum(1) > 0).to(torch.float64)], dim=1
        )  # (b, 2)
        # TRL's process slices are contiguous and each prompt's G copies are adjacent, so global
        # row r belongs to group r // G (the same grouping TRL uses for its advantages).
        everything = self.accelerator.gather(local)  # (P * b, 2)
        group_ids = torch.arange(everything.shape[0], device=everything.device) // group_size
        # rows with a completion token and a reward (TRL zeroes an unscored row's advantage; here
        # it leaves its group, so the group's log Z is over its scored rows)
        live = (everything[:, 1] > 0) & self._frpo_scored.to(everything.device)  # (P * b,)
        if self.args.jackknife:
            # Eq. 4.3 needs >= 2 live rows a group; a group with fewer (e.g. truncated
            # completions masked by mask_truncated_completions, or unscored ones) is left out.
            by_group = live.view(-1, group_size)  # (n, G)
            live = (by_group & (by_group.sum(1, keepdim=True) >= 2)).view(-1)
        coef, metrics = frpo_row_coefficients(
            everything[:, 0],
            group_ids,
            live,
            self.args.lam,
            baseline=self.args.baseline,
            jackknife=self.args.jackknife,
        )
        b = local.shape[0]
        start = self.accelerator.process_index * b
        output[COEF_KEY] = coef[start : start + b]  # (b,) float64
        # The on-policy loss value, spread evenly over the live rows, so that the loss TRL logs
        # (summed over micro-batches, averaged over processes) is frpo_loss's value, not the
        # surrogate's (which is 0 with the baseline).
        share = metrics["frpo/loss_on_policy"] / max(int(live.sum().item()), 1)
        output[VALUE_KEY] = live[start : start + b].to(torch.float64) * share  # (b,)
        for name, value in metrics.items():
            self._metrics[mode][name].append(value)
        return output

    def _compute_loss(self, model, inputs):
        prompt_ids, prompt_mask = inputs["prompt_ids"], inputs["prompt_mask"]
        completion_ids, completion_mask = inputs["completion_ids"], inputs["completion_mask"]
        input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
        attention_mask = torch.cat([prompt_mask, completion_mask], dim=1)
        mask = (
            completion_mask if "tool_mask" not in inputs else completion_mask * inputs["tool_mask"]
        )
        per_token_logps, entropies, aux_loss = self._get_per_token_logps_and_entropies(
            model,
            input_ids,
            attention_mask,
            completion_ids.size(1),
            compute_entropy=True,
            compute_aux_loss=self.aux_loss_enabled,
            pixel_values=inputs.get("pixel_values"),
            image_grid_thw=inputs.get("image_grid_thw"),
            num_images=inputs.get("num_images"),
            pixel_attention_mask=inputs.get("pixel_attention_mask"),
            spatial_shapes=inputs.get("spatial_shapes"),
            num_tiles=inputs.get("num_tiles"),
            image_sizes=inputs.get("image_sizes"),
            token_type_ids=inputs.get("token_type_ids"),
            mm_token_type_ids=inputs.get("mm_token_type_ids"),
            image_position_ids=inputs.get("image_position_ids"),
        )  # (b, T)
        old_per_token_logps = inputs.get("old_per_token_logps")
        if old_per_token_logps is None:  # TRL skips it on-policy: ratio = 1
            old_per_token_logps = per_token_logps.detach()

        mode = "train" if self.model.training else "eval"
        # Undo DDP's mean over processes and spread the step over its generation batches.
        pieces = self.args.steps_per_generation / self.args.gradient_accumulation_steps
        layout = self.accelerator.num_processes * (pieces if mode == "train" else 1.0)
        surrogate, metrics = frpo_surrogate_loss(
            per_token_logps, old_per_token_logps, inputs[COEF_KEY], mask, epsilon=self.epsilon_high
        )
        # value of frpo_loss (on-policy), gradient of the surrogate (the exact decomposition)
        surrogate = surrogate - surrogate.detach() + inputs[VALUE_KEY].sum()
        loss = surrogate * (self._frpo_scale * layout)

        if self.beta != 0.0:  # TRL's k3 KL, token mean over the generation batch ("dapo")
            ref = inputs["ref_per_token_logps"]
            per_token_kl = torch.exp(ref - per_token_logps) - (ref - per_token_logps) - 1
            if self.args.use_bias_correction_kl:
                per_token_kl = per_token_kl * torch.exp(per_token_logps - old_per_token_logps)
            n_items = inputs["num_items_in_batch"].clamp(min=1.0)
            loss = loss + self.beta * (per_token_kl * mask).sum() / n_items * layout
        if self.aux_loss_enabled:  # MoE router loss, scaled as TRL does
            ga = self.current_gradient_accumulation_steps if mode == "train" else 1.0
            loss = loss + self.router_aux_loss_coef * aux_loss / ga

        def global_masked_mean(x):
            local = torch.stack([(x * mask).sum(), mask.sum().to(x.dtype)]).detach()
            totals = self.accelerator.reduce(local, reduction="sum")
            return (totals[0] / totals[1].clamp(min=1.0)).item()

        n_tok = float(mask.sum().item())
        clip = torch.tensor([metrics["frpo/clip_frac"] * n_tok, n_tok], device=mask.device)
        clip = self.accelerator.reduce(clip, reduction="sum")
        self._metrics[mode]["frpo/clip_frac"].append((clip[0] / clip[1].clamp(min=1.0)).item())
        if self.beta != 0.0:
            self._metrics[mode]["kl"].append(global_masked_mean(per_token_kl.detach()))
        self._metrics[mode]["entropy"].append(global_masked_mean(entropies))
        return loss
