"""Reward-against-KL trajectories during downstream fine-tuning (the data of Fig. 3).

:class:`TrajectoryCallback` measures, at step 0, every ``track.every`` optimizer steps and at the
end, on fixed held-out prompts of the stage-1 tasks:

- ``frpo/track/reward/<task>``: mean stage-1 reward of answers sampled from the current model;
- ``frpo/track/kl_start``: per-token KL(current || starting model) on those answers;
- ``frpo/track/kl_ref``: per-token KL(current || pi_ref) on the same answers;
- ``frpo/exact/...``: the metrics the world computes exactly for the tracked tasks, when it has
  them (:func:`frpo.stages.backend.exact_metrics`).

Both KLs are KL(Q || P) with Q the current model (the paper's ball constraint direction),
estimated as in :mod:`frpo.stages.sampling`. Rows go to ``self.rows`` (one dict per measurement).
"""

from __future__ import annotations

import time

import torch
from transformers import TrainerCallback

from frpo.splits import HELDOUT
from frpo.stages.backend import exact_metrics
from frpo.stages.sampling import Samples, kl_to, mean_rewards, sample
from frpo.stages.spec import Track


class TrajectoryCallback(TrainerCallback):
    """Tracks stage-1 rewards and KL to the start model and to pi_ref while fine-tuning."""

    def __init__(self, backend, track: Track, start_model, ref_model, tokenizer):
        self.backend = backend
        self.track = track
        self.start_model = start_model.eval()
        self.ref_model = ref_model.eval()
        self.tokenizer = tokenizer
        self.sets = {t: backend.dataset(t, HELDOUT, track.n_prompts) for t in track.tasks}
        self.rows: list[dict] = []
        self._last_step = None

    @torch.no_grad()
    def measure(self, model, step: int) -> dict:
        """One row of the trajectory for ``model`` at optimizer step ``step``."""
        t0 = time.perf_counter()
        row: dict = {"step": step}
        prompts_all, ids_p, ids_c = [], [], []
        for task, data in self.sets.items():
            samples = sample(
                model,
                self.tokenizer,
                data["prompt"],
                self.track.max_new_tokens,
                seed=self.track.seed,
            )
            rewards = mean_rewards(self.backend.reward_funcs(task), data, samples)
            row[f"frpo/track/reward/{task}"] = rewards["total"]
            prompts_all += data["prompt"]
            ids_p += samples.prompt_ids
            ids_c += samples.completion_ids
        pooled = Samples(ids_p, ids_c, [])
        row["frpo/track/kl_start"] = kl_to(model, self.start_model, pooled)
        row["frpo/track/kl_ref"] = kl_to(model, self.ref_model, pooled)
        for task, data in self.sets.items():
            row.update(exact_metrics(self.backend, task, model, data["prompt"]))
        row["frpo/track/seconds"] = time.perf_counter() - t0
        self.rows.append(row)
        self._last_step = step
        return row

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.measure(model, 0)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.track.every == 0:
            self.measure(model, state.global_step)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if self._last_step != state.global_step:
            self.measure(model, state.global_step)
