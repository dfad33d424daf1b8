"""GRPO + SAM: sharpness-aware minimisation on top of the GRPO loss (paper Sec. 5.3, Fig. 6).

SAM (Foret et al., 2021) minimises max_{||e|| <= rho} L(theta + e) to first order:

    g   = grad L(theta)                      ascent direction
    e   = rho * g / ||g||_2                  (||.||_2 over all trainable parameters jointly)
    g'  = grad L(theta + e)                  the gradient the optimizer uses
    theta <- optimizer step from theta with g'

:class:`SAMGRPOTrainer` overrides ``compute_loss`` (one extra forward/backward at theta, then
the perturbation, then the usual loss at theta + e) and ``training_step`` (undo the perturbation
after the backward pass, so the optimizer steps from theta). It is done per micro-batch: with
gradient accumulation each micro-batch ascends along its own gradient. With several processes
each process ascends along its local gradient (the ascent pass bypasses the DDP wrapper); the
descent gradients are averaged as usual. The ascent pass's logged metrics are discarded.

Under DeepSpeed the optimizer step happens *inside* the backward pass: accelerate's
``DeepSpeedEngineWrapper.backward`` runs ``engine.backward(loss)`` then ``engine.step()`` at an
accumulation boundary, and the optimizer's own ``step`` is a no-op. Restoring theta after
``training_step`` would then undo the step just taken (and under ZeRO-2 the model's bf16 weights
would stay theta for good while the fp32 master copy moves). So under DeepSpeed theta is put
back between the engine's backward and its step: the step starts from theta with the gradient
at theta + e, as without DeepSpeed. ZeRO-3 (parameters sharded, so the ascent pass cannot
perturb them) is refused.
"""

from __future__ import annotations

import torch
from trl import GRPOTrainer


def sam_perturbation(grads: list[torch.Tensor | None], rho: float) -> list[torch.Tensor | None]:
    """e = rho * g / ||g||_2 per parameter (None where a parameter has no gradient).

    The norm is over all gradients jointly; a zero gradient gives e = 0.
    """
    if rho <= 0:
        raise ValueError(f"SAM rho must be > 0, got {rho}")
    sq = sum(float((g.double() ** 2).sum()) for g in grads if g is not None)
    norm = sq**0.5
    if norm == 0.0:
        return [None if g is None else torch.zeros_like(g) for g in grads]
    return [None if g is None else g * (rho / norm) for g in grads]


class SAMGRPOTrainer(GRPOTrainer):
    """GRPOTrainer whose optimizer steps use the gradient at theta + rho g / ||g|| (SAM)."""

    def __init__(self, *args, sam_rho: float = 0.05, **kwargs):
        if sam_rho <= 0:
            raise ValueError(f"sam_rho must be > 0, got {sam_rho}")
        super().__init__(*args, **kwargs)
        plugin = getattr(self.accelerator.state, "deepspeed_plugin", None)
        if plugin is not None and plugin.zero_stage == 3:
            raise ValueError(
                "grpo_sam cannot run under DeepSpeed ZeRO-3: the parameters are sharded, so the "
                "ascent step cannot perturb them; launch it with ZeRO-2 (--zero 2)"
            )
        self.sam_rho = sam_rho
        self._sam_shift: list[tuple[torch.nn.Parameter, torch.Tensor]] = []  # (param, theta)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not model.training:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        params = [p for p in model.parameters() if p.requires_grad]
        mode_metrics = self._metrics["train"]
        before = {k: len(v) for k, v in mode_metrics.items()}
        ascent_loss = super().compute_loss(
            self.accelerator.unwrap_model(model), inputs, return_outputs, num_items_in_batch
        )
        grads = torch.autograd.grad(ascent_loss, params, allow_unused=True)
        for key in list(mode_metrics):  # forget what the ascent pass logged
            if key in before:
                del mode_metrics[key][before[key] :]
            else:
                del mode_metrics[key]
        shifts = sam_perturbation(list(grads), self.sam_rho)
        with torch.no_grad():
            for p, e in zip(params, shifts, strict=True):
                if e is not None:
                    self._sam_shift.append((p, p.detach().clone()))
                    p.add_(e)
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    def training_step(self, model, inputs, num_items_in_batch=None):
        engine = self._deepspeed_engine()
        if engine is not None:  # restore theta after the engine's backward, before its step
            engine_step = engine.step

            def step_from_theta(*args, **kwargs):
                self._restore_theta()
                return engine_step(*args, **kwargs)

            engine.step = step_from_theta
        try:
            return super().training_step(model, inputs, num_items_in_batch)
        finally:
            if engine is not None:
                del engine.step  # the instance attribute: the engine's own method again
            self._restore_theta()  # no step was taken (no DeepSpeed, or not at a boundary)

    def _restore_theta(self) -> None:
        """Put back the weights saved before the perturbation (exactly theta, not theta + e - e)."""
        with torch.no_grad():
            for p, theta in self._sam_shift:
                p.copy_(theta)
        self._sam_shift = []

    def _deepspeed_engine(self):
        """The DeepSpeed engine whose ``backward`` steps (None without DeepSpeed): the branch
        accelerate's ``Accelerator.backward`` takes."""
        from accelerate.utils import DistributedType

        if self.accelerator.distributed_type != DistributedType.DEEPSPEED:
            return None
        return self.accelerator.deepspeed_engine_wrapped.engine
