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
        try:
            return super().training_step(model, inputs, num_items_in_batch)
        finally:
            with torch.no_grad():
                for p, theta in self._sam_shift:
                    p.copy_(theta)  # exactly theta again, not theta + e - e
            self._sam_shift = []
