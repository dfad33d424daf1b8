"""The fine-tuning sweep of notebook 06 (Fig. 5, claim C9): settings, coverage, collapse, bound.

The paper's sweep crosses full fine-tuning / LoRA r16 / LoRA r32, six learning rates, one or two
epochs and two datasets (Alpaca, GSM8K): 72 settings, of which it ran 48. :func:`all_settings`
lists the 72 in a fixed order and :func:`sample_settings` takes the first ``n`` of a seeded
permutation, so a profile that runs fewer settings runs a reproducible subset of a larger one.

Statistics over settings (each setting is one draw; the "seeds" of C9 are settings):

- coverage: share of settings whose downstream per-token KL is ``<= threshold``, with a Wilson
  score interval (:func:`wilson_interval`);
- collapse: mean helpfulness beyond the threshold minus within it, with a Welch t-interval
  (:func:`welch_difference`); nan when either side is empty.

The robust-reward bound: before any fine-tuning, the stage-1 model's rewards on held-out prompts
(``(n_prompts, n_samples)``) give ``frpo.theory.robust_reward(rewards, rho)``, the least mean
reward any Q with ``E_x KL(Q || pi_theta) <= rho`` can have (Eq. 3.1-3.3). ``rho`` is a
*whole-response* KL; a per-token KL converts with the measured mean response length
(:func:`whole_response_kl`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy import stats

from frpo.splits import HELDOUT
from frpo.theory import robust_reward

MODES = {"full": 0, "lora16": 16, "lora32": 32}
"""Fine-tuning mode -> LoRA rank (0 = full fine-tuning)."""
EPOCHS = (1, 2)
DATASETS = ("alpaca", "gsm8k")
N_LRS = 6


def all_settings(lrs: Mapping[str, Sequence[float]]) -> list[dict]:
    """The 72 settings: mode x lr x epochs x dataset, in that nesting order.

    ``lrs = {"full": [6 lrs], "lora": [6 lrs]}`` (LoRA modes share the ``lora`` list). Each
    setting: ``{"mode", "lora_rank", "lr_index", "lr", "epochs", "dataset"}``.
    """
    for fam in ("full", "lora"):
        if fam not in lrs:
            raise ValueError(f"lrs needs a {fam!r} list of {N_LRS} learning rates")
        if len(lrs[fam]) != N_LRS or not all(float(v) > 0 for v in lrs[fam]):
            raise ValueError(f"lrs[{fam!r}] must hold {N_LRS} positive lrs, got {lrs[fam]!r}")
    out = []
    for mode, rank in MODES.items():
        fam = "full" if rank == 0 else "lora"
        for i, lr in enumerate(lrs[fam]):
            for epochs in EPOCHS:
                for dataset in DATASETS:
                    out.append(
                        {
                            "mode": mode,
                            "lora_rank": rank,
                            "lr_index": i,
                            "lr": float(lr),
                            "epochs": epochs,
                            "dataset": dataset,
                        }
                    )
    return out


def sample_settings(settings: Sequence[dict], n: int, seed: int) -> list[dict]:
    """The first ``n`` settings of a permutation drawn with ``numpy.random.default_rng(seed)``.

    Draws are nested: with one seed, the ``n = 20`` sample is a prefix of the ``n = 48`` one.
    """
    if not 1 <= n <= len(settings):
        raise ValueError(f"n_settings must be in [1, {len(settings)}], got {n}")
    order = np.random.default_rng(seed).permutation(len(settings))
    return [dict(settings[i]) for i in order[:n]]


def sft_overrides(setting: Mapping) -> dict:
    """SFTSpec fields of a setting (``lr``, ``epochs``, ``full``, ``lora_rank``, ``lora_alpha``)."""
    rank = int(setting["lora_rank"])
    return {
        "lr": float(setting["lr"]),
        "epochs": float(setting["epochs"]),
        "max_steps": -1,
        "full": rank == 0,
        "lora_rank": rank,
        "lora_alpha": rank,
    }


def wilson_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float, float]:
    """Share ``k / n`` with its Wilson score interval ``(share, lo, hi)``.

    ``lo, hi = (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)``, z the normal quantile.
    """
    if not (isinstance(k, int | np.integer) and isinstance(n, int | np.integer)):
        raise ValueError(f"k and n must be integers, got {k!r}, {n!r}")
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    z = float(stats.norm.ppf(0.5 + level / 2))
    p = k / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    den = 1 + z * z / n
    return p, (centre - half) / den, (centre + half) / den


def coverage(kls: Sequence[float], threshold: float = 0.3) -> dict:
    """Share of settings with KL ``<= threshold``: ``{"share", "lo", "hi", "k", "n"}`` (Wilson)."""
    a = np.asarray(kls, dtype=np.float64)
    if a.ndim != 1 or a.size == 0 or not np.all(np.isfinite(a)):
        raise ValueError("coverage needs a non-empty 1-D array of finite KLs")
    k = int(np.sum(a <= threshold))
    share, lo, hi = wilson_interval(k, int(a.size))
    return {"share": share, "lo": lo, "hi": hi, "k": k, "n": int(a.size)}


def welch_difference(a: Sequence[float], b: Sequence[float], level: float = 0.95):
    """``mean(a) - mean(b)`` with a Welch t-interval ``(diff, lo, hi)``.

    nan everywhere when either group is empty; a nan interval when either has one value.
    """
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.size == 0 or y.size == 0:
        return float("nan"), float("nan"), float("nan")
    diff = float(x.mean() - y.mean())
    if x.size < 2 or y.size < 2:
        return diff, float("nan"), float("nan")
    vx, vy = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se = math.sqrt(vx + vy)
    if se == 0:
        return diff, diff, diff
    dof = (vx + vy) ** 2 / (vx**2 / (x.size - 1) + vy**2 / (y.size - 1))
    half = float(stats.t.ppf(0.5 + level / 2, dof)) * se
    return diff, diff - half, diff + half


def collapse(helpfulness: Sequence[float], kls: Sequence[float], threshold: float = 0.3):
    """Mean helpfulness of settings beyond ``threshold`` minus within it (Welch; see above).

    Returns ``{"diff", "lo", "hi", "n_beyond", "n_within"}``.
    """
    h, k = np.asarray(helpfulness, dtype=np.float64), np.asarray(kls, dtype=np.float64)
    if h.shape != k.shape or h.ndim != 1:
        raise ValueError(
            f"helpfulness and kls must be 1-D of equal length, got {h.shape}, {k.shape}"
        )
    beyond, within = h[k > threshold], h[k <= threshold]
    diff, lo, hi = welch_difference(beyond, within)
    return {"diff": diff, "lo": lo, "hi": hi, "n_beyond": beyond.size, "n_within": within.size}


def whole_response_kl(per_token_kl, mean_length: float):
    """Whole-response KL from per-token KL: ``per_token * mean response length`` (tokens)."""
    if not mean_length > 0:
        raise ValueError(f"mean_length must be > 0, got {mean_length}")
    return np.asarray(per_token_kl, dtype=np.float64) * float(mean_length)


def predicted_robust(rewards, rhos_whole: Sequence[float]) -> np.ndarray:
    """``robust_reward(rewards, rho)[0]`` for each whole-response ``rho`` (negative rho -> 0).

    ``rewards``: ``(n_prompts, n_samples)`` stage-1 rewards on held-out prompts. A KL estimate
    slightly below 0 is noise around 0; it is read as rho = 0 (the plain mean reward).
    """
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim != 2:
        raise ValueError(f"rewards must be (n_prompts, n_samples), got shape {r.shape}")
    return np.array([robust_reward(r, max(float(rho), 0.0))[0] for rho in rhos_whole])


def reward_matrix(eval_run: str | Path, backend, task: str = "safety") -> np.ndarray:
    """``(n_prompts, n_samples)`` rewards of the sampled answers an eval run saved.

    Reads ``completions.jsonl`` (:mod:`frpo.stages.evaluate`) of ``eval_run`` and scores each
    sampled answer with the backend's reward functions of ``task`` (summed, as TRL sums them);
    the prompts' columns come from the held-out split, in the order the eval run used.
    """
    path = Path(eval_run) / "completions.jsonl"
    if not path.is_file():
        raise ValueError(f"{eval_run}: no completions.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r["task"] == task]
    if not rows:
        raise ValueError(f"{path}: no completions of task {task!r}")
    data = backend.dataset(task, HELDOUT, len(rows))
    if [r["prompt"] for r in rows] != list(data["prompt"]):
        raise ValueError(f"{path}: prompts differ from the first {len(rows)} held-out prompts")
    n_samples = {len(r["sampled"]) for r in rows}
    if len(n_samples) != 1:
        raise ValueError(f"{path}: unequal sample counts {sorted(n_samples)}")
    m = n_samples.pop()
    idx = [i for i in range(len(rows)) for _ in range(m)]
    rep = data.select(idx)
    texts = [t for r in rows for t in r["sampled"]]
    completions = [[{"role": "assistant", "content": t}] for t in texts]
    columns = {c: rep[c] for c in rep.column_names if c != "prompt"}
    total = np.zeros(len(texts))
    for f in backend.reward_funcs(task):
        vals = f(prompts=rep["prompt"], completions=completions, **columns)
        total += np.array([0.0 if v is None else float(v) for v in vals])
    return total.reshape(len(rows), m)


def bound_by_kl(kept, predicted, kls, edges=(0.02, 0.3)) -> list[dict]:
    """Does the kept reward stay above the predicted floor, per KL region?

    ``kept``, ``predicted``, ``kls``: one value per run (shape (n_runs,)); ``edges`` split the
    per-token KL axis into ``(-inf, e0], (e0, e1], ..., (e_last, inf)``. One row per region:
    ``lo``, ``hi``, ``n``, ``holds`` (runs with kept >= predicted), ``min_margin`` and
    ``mean_margin`` (kept - predicted; nan for an empty region).
    """
    k, p, x = (np.asarray(v, dtype=np.float64) for v in (kept, predicted, kls))
    if not (k.shape == p.shape == x.shape) or k.ndim != 1:
        raise ValueError(
            f"kept, predicted, kls must be 1-D of one length: {k.shape, p.shape, x.shape}"
        )
    bounds = [-math.inf, *map(float, edges), math.inf]
    if any(b >= c for b, c in zip(bounds, bounds[1:], strict=False)):
        raise ValueError(f"edges must increase, got {edges}")
    rows = []
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        sel = (x > lo) & (x <= hi)
        margin = k[sel] - p[sel]
        rows.append(
            {
                "lo": lo,
                "hi": hi,
                "n": int(sel.sum()),
                "holds": int((margin >= 0).sum()),
                "min_margin": float(margin.min()) if margin.size else float("nan"),
                "mean_margin": float(margin.mean()) if margin.size else float("nan"),
            }
        )
    return rows
