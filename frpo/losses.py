"""The FRPO objective (paper Eq. 4.1-4.3, Algorithm 1) as plain tensor functions.

Pure torch: no trl/transformers import. Every function returns ``(value, metrics)`` with metric
names under ``frpo/``; shapes use B = rows (completions), T = completion tokens, G = live rows of
one prompt's group, n = non-empty groups.

Per group of G live rows with outcome advantages A_i (Algorithm 1):

    s_i      = (1/|y_i|) sum_t min(ratio_{i,t}, 1 + eps)          ratio = pi_theta / pi_old
    Zhat     = (1/G) sum_i exp(-A_i/lam) s_i                       (Eq. 4.1)
    log Z~   = G log Zhat - (G-1)/G sum_j log Zhat_{-j}            (Eq. 4.3, jackknife)
    L_group  = lam log Z - lam (1/G) sum_i s_i                     (Eq. 4.2, baseline)

and the loss is the mean of L_group over the non-empty groups. Everything is done in log space:
with l_i = -A_i/lam + log s_i, log Zhat = logsumexp_i(l_i) - log G, and each leave-one-out
log Zhat_{-j} is a logsumexp over the other rows (never a difference of sums), so lam = 1e-3 with
|A|/lam in the hundreds stays finite and accurate.

Three public entry points share one core, :func:`_group_log_z`:

* :func:`frpo_loss` for whole groups;
* :func:`entropic_advantages`, the on-policy equivalent GRPO advantages;
* :func:`frpo_row_coefficients` + :func:`frpo_surrogate_loss`, the exact decomposition of the
  on-policy gradient for groups split across processes and micro-batches.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "check_lam",
    "entropic_advantages",
    "frpo_loss",
    "frpo_row_coefficients",
    "frpo_surrogate_loss",
    "reward_scaling_problem",
]


# ----------------------------------------------------------------------------- validation


def check_lam(lam: float) -> None:
    """ValueError unless lam is a finite number > 0 (lam = inf is GRPO: use GRPO for it)."""
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not math.isfinite(lam):
        raise ValueError(
            f"lam must be a finite number > 0, got lam={lam!r} (lam -> inf is GRPO; train with "
            "GRPO for that limit)"
        )
    if lam <= 0:
        raise ValueError(f"lam must be a finite number > 0, got lam={lam!r}")


def reward_scaling_problem(scale_rewards) -> str | None:
    """Why a reward scaling is refused for FRPO, or None for "none" (the one accepted value).

    The entropic weights exp(-A_i/lam) read the rewards on their own scale (Eq. 3.5): dividing
    the advantages by a std (TRL's ``scale_rewards="group"``/``"batch"``/``True``) changes the
    objective and the meaning of lam. The one rule for ``FRPOConfig`` and ``RLSpec``.
    """
    if scale_rewards in ("none", False):
        return None
    return (
        f"scale_rewards={scale_rewards!r} is refused for FRPO; use 'none': the entropic weights "
        "exp(-A/lam) read the rewards on their own scale, so dividing them by a std would change "
        "the objective and the meaning of lam"
    )


def _check_lam_eps(lam: float, epsilon: float | None = None) -> None:
    check_lam(lam)
    if epsilon is not None and (not math.isfinite(epsilon) or epsilon < 0):
        raise ValueError(f"epsilon must be a finite number >= 0, got epsilon={epsilon!r}")


def _check_rows(name: str, x: torch.Tensor, batch: int) -> None:
    if x.dim() != 1 or x.shape[0] != batch:
        raise ValueError(f"{name} must have shape (B,) = ({batch},), got {tuple(x.shape)}")


def _check_token_inputs(
    per_token_logps: torch.Tensor, old_per_token_logps: torch.Tensor, completion_mask: torch.Tensor
) -> int:
    if per_token_logps.dim() != 2:
        raise ValueError(f"per_token_logps must be (B, T), got {tuple(per_token_logps.shape)}")
    shape = per_token_logps.shape
    for name, x in (
        ("old_per_token_logps", old_per_token_logps),
        ("completion_mask", completion_mask),
    ):
        if x.shape != shape:
            raise ValueError(
                f"{name} has shape {tuple(x.shape)} but per_token_logps has {tuple(shape)}"
            )
    return shape[0]


# ----------------------------------------------------------------------------- group layout


def _group_layout(
    group_ids: torch.Tensor, live: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Place the live rows in a padded (n, Gmax) table, one row per non-empty group.

    Args:
        group_ids: (B,) ints, equal id = same prompt; any row order.
        live: (B,) bool, rows that belong to their group.
    Returns:
        rows (L,) indices of the live rows, grp (L,) their group in [0, n), pos (L,) their slot in
        [0, Gmax), counts (n,) live rows per group, and Gmax. Groups without a live row do not
        appear (they are skipped).
    """
    rows = torch.nonzero(live, as_tuple=False).squeeze(1)  # (L,)
    _, grp, counts = torch.unique(group_ids[rows], return_inverse=True, return_counts=True)
    order = torch.argsort(grp, stable=True)  # (L,) rows sorted by group
    starts = torch.cumsum(counts, 0) - counts  # (n,)
    pos = torch.empty_like(grp)
    pos[order] = torch.arange(grp.numel(), device=grp.device) - starts[grp[order]]
    gmax = int(counts.max().item()) if counts.numel() else 0
    return rows, grp, pos, counts, gmax


def _padded(values: torch.Tensor, grp: torch.Tensor, pos: torch.Tensor, n: int, gmax: int):
    """(L,) -> (n, Gmax), padding with -inf (differentiable scatter)."""
    out = values.new_full((n, gmax), -math.inf)
    return out.index_put((grp, pos), values)


# ----------------------------------------------------------------------------- the shared core


def _group_log_z(
    logits: torch.Tensor, counts: torch.Tensor, jackknife: bool, weights: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-group log Z of Eq. 4.1 (or the jackknifed log Z~ of Eq. 4.3) and its gradient weights.

    Args:
        logits: (n, Gmax) l_i = -A_i/lam + log s_i of the live rows in slots [0, G), -inf in
            the padding.
        counts: (n,) live rows G per group (>= 2 when jackknife).
        jackknife: use Eq. 4.3.
        weights: also return c (skip it when only log_z and its autograd are needed).
    Returns:
        log_z: (n,) differentiable in ``logits``.
        c: (n, Gmax) the closed-form gradient c_i = d log_z / d l_i (0 in the padding), computed
           from the same softmaxes; no autograd graph is needed to use it. None if not weights.

    Derivation. With p = softmax(l) over the group and p^{(-j)} = softmax over the rows other
    than j, d logsumexp(l)/d l_i = p_i and d logsumexp_{-j}(l)/d l_i = p^{(-j)}_i (i != j), so

        plain:     log Z  = lse(l) - log G,     c_i = p_i;
        jackknife: log Z~ = G (lse(l) - log G) - (G-1)/G sum_j (lse_{-j}(l) - log(G-1)),
                   c_i    = G p_i - (G-1)/G sum_{j != i} p^{(-j)}_i.

    At s = 1, p_i = w_i/S and p^{(-j)}_i = w_i/(S - w_j) with w = exp(-A/lam), S = sum w: the
    closed forms of the weights of Eqs. 4.1-4.3.
    """
    g = counts.to(logits.dtype)  # (n,)
    lse = torch.logsumexp(logits, dim=1)  # (n,)
    p = torch.exp(logits - lse.unsqueeze(1)) if weights else None  # (n, Gmax), 0 in the padding
    if not jackknife:
        return lse - torch.log(g), p
    gmax = logits.shape[1]
    live = torch.arange(gmax, device=logits.device) < counts.unsqueeze(1)  # (n, Gmax)
    eye = torch.eye(gmax, dtype=torch.bool, device=logits.device)
    loo = logits.unsqueeze(1).masked_fill(eye, -math.inf)  # (n, Gmax_j, Gmax_i), row j leaves j out
    loo_lse = torch.logsumexp(loo, dim=2)  # (n, Gmax); finite since every group has >= 2 rows
    shrink = (g - 1) / g  # (n,)
    loo_sum = (loo_lse * live).sum(1) - g * torch.log(g - 1)  # (n,) over live j only
    log_z = g * (lse - torch.log(g)) - shrink * loo_sum
    if not weights:
        return log_z, None
    loo_p = torch.exp(loo - loo_lse.unsqueeze(2)) * live.unsqueeze(2)  # (n, Gmax_j, Gmax_i), live j
    c = g.unsqueeze(1) * p - shrink.unsqueeze(1) * loo_p.sum(1)
    return log_z, c


def _weight_metrics(neg_a_over_lam: torch.Tensor) -> tuple[float, float]:
    """Mean over groups of the largest normalised weight and of the ESS of w = exp(-A/lam).

    Args:
        neg_a_over_lam: (n, Gmax) -A/lam, -inf in the padding.
    """
    with torch.no_grad():
        q = torch.softmax(neg_a_over_lam, dim=1)  # (n, Gmax)
        max_w = q.max(dim=1).values.mean().item()
        ess = (1.0 / (q * q).sum(1)).mean().item()
    return max_w, ess


# ----------------------------------------------------------------------------- s_i


# Rows per block in the CPU token pass: temporaries of about 2**17 elements (512 KiB in fp32) stay
# in a core's L2 cache, so the pass reads each (B, T) input once and allocates one (B, T) tensor.
# Fastest of 2**15..2**19 measured with benchmarks/loss_scaling.py (4096 groups, T = 512).
_BLOCK_ELEMENTS = 1 << 17


class _ClippedSequenceRatio(torch.autograd.Function):
    """sum_t min(ratio_t, 1 + eps) * mask_t per row, with a one-pass backward.

    Autograd through exp/clamp/mul would keep several (B, T) tensors alive until backward; this
    keeps one, w = ratio * [ratio <= 1 + eps] * mask = d(sum)/d log pi_theta, and the backward is
    a single multiply. With d = log pi_theta - log pi_old and c = log(1 + eps):

        keep = [d <= c] * mask                       1 on live unclipped tokens (float, not bool)
        sum_t min(ratio, 1 + eps) mask = sum_t w + (1 + eps) (n_tok - sum_t keep)

    exp is taken of min(d, c): that only changes clipped tokens, whose w is 0 anyway, and keeps
    exp finite. On CPU the rows are processed in blocks of about ``_BLOCK_ELEMENTS`` tokens whose
    temporaries stay in cache: the only (B, T) allocation is w (fresh large allocations cost page
    faults that dominated the unblocked pass). Other devices take the whole batch as one block.

    Inputs: per_token_logps (B, T), old (B, T) detached, mask (B, T) of any real or bool dtype.
    Returns the (B,) sums, the (B,) mask-weighted count of clipped tokens and the (B,) token
    counts (the last two not differentiable), in the promoted dtype of the log-probabilities and
    float32 (bf16/fp16 inputs are accumulated, and w kept, in float32; the gradient autograd
    returns is cast back to the input's dtype).
    """

    @staticmethod
    def forward(ctx, per_token_logps, old_per_token_logps, mask, epsilon):
        thr = 1.0 + epsilon
        cap = math.log(thr)
        batch, length = per_token_logps.shape
        # accumulate in float32 at least: a bf16 row sum of T ratios loses ~T * 2^-9 relative
        dtype = _compute_dtype(per_token_logps, old_per_token_logps)
        w = per_token_logps.new_empty((batch, length), dtype=dtype)  # (B, T) saved for backward
        sums = per_token_logps.new_empty((batch,), dtype=dtype)  # (B,)
        kept = torch.empty_like(sums)  # (B,) live unclipped tokens
        on_cpu = per_token_logps.device.type == "cpu"
        rows = min(batch, _BLOCK_ELEMENTS // max(length, 1)) if on_cpu else batch
        rows = max(rows, 1)
        log_ratio = w.new_empty((rows, length))  # (rows, T) block temporaries
        keep = w.new_empty((rows, length))
        for a in range(0, batch, rows):
            b = min(a + rows, batch)
            d, k = log_ratio[: b - a], keep[: b - a]
            torch.sub(per_token_logps[a:b], old_per_token_logps[a:b], out=d)
            torch.le(d, cap, out=k).mul_(mask[a:b])
            torch.sum(k, 1, out=kept[a:b])
            d.clamp_(max=cap).exp_()  # ratio where unclipped, 1 + eps elsewhere (times keep = 0)
            torch.sum(torch.mul(d, k, out=w[a:b]), 1, out=sums[a:b])
        n_tok = mask.sum(1, dtype=dtype)  # (B,)
        clipped = n_tok - kept  # (B,)
        sums.add_(clipped, alpha=thr)
        ctx.save_for_backward(w)
        ctx.mark_non_differentiable(clipped, n_tok)
        return sums, clipped, n_tok

    @staticmethod
    def backward(ctx, grad_sums, _grad_clipped, _grad_n_tok):
        (w,) = ctx.saved_tensors
        return w * grad_sums.unsqueeze(1), None, None, None


def _sequence_ratio(
    per_token_logps: torch.Tensor,
    old_per_token_logps: torch.Tensor,
    completion_mask: torch.Tensor,
    epsilon: float,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """s_i = (1/|y_i|) sum_t min(ratio_{i,t}, 1 + eps) (Algorithm 1; upper clip only).

    Returns s (B,) (0 for dead rows), live (B,) bool (rows with a completion token) and the
    fraction of completion tokens whose ratio was clipped.
    """
    sums, clipped, n_tok = _ClippedSequenceRatio.apply(
        per_token_logps, old_per_token_logps.detach(), completion_mask, float(epsilon)
    )
    if not bool(torch.isfinite(sums).all()):  # a NaN log-prob anywhere in a row makes it NaN
        _raise_nan_rows(per_token_logps, old_per_token_logps, sums)
    s = sums / n_tok.clamp(min=1.0)  # (B,)
    total = n_tok.double().sum()
    clip_frac = (clipped.double().sum() / total).item() if total > 0 else 0.0
    return s, n_tok > 0, clip_frac


def _raise_nan_rows(per_token_logps, old_per_token_logps, sums) -> None:
    rows = torch.nonzero(~torch.isfinite(sums)).squeeze(1)[:5].tolist()
    which = [
        name
        for name, x in (("per_token_logps", per_token_logps), ("old_per_token_logps",
                                                               old_per_token_logps))
        if bool(torch.isnan(x.detach()[rows]).any())
    ]  # fmt: skip
    raise ValueError(
        f"{' and '.join(which) or 'the log-probabilities'} contain NaN in rows {rows} (first "
        "five shown): the loss would be NaN; check the model's forward pass (fp16 overflow, a "
        "bad checkpoint)"
    )


def _compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    dtype = torch.float32
    for t in tensors:
        if t.is_floating_point():
            dtype = torch.promote_types(dtype, t.dtype)
    return dtype


# ----------------------------------------------------------------------------- public API


def frpo_loss(
    per_token_logps: torch.Tensor,
    old_per_token_logps: torch.Tensor,
    advantages: torch.Tensor,
    completion_mask: torch.Tensor,
    group_ids: torch.Tensor,
    lam: float,
    epsilon: float = 0.2,
    baseline: bool = True,
    jackknife: bool = True,
) -> tuple[torch.Tensor, dict[str, float]]:
    """FRPO loss of Algorithm 1: mean over groups of lam log Z - lam (1/G) sum_i s_i.

    Args:
        per_token_logps: (B, T) log pi_theta of the sampled tokens, with grad.
        old_per_token_logps: (B, T) log pi_old (detached here).
        advantages: (B,) outcome advantages A_i; a per-group shift c changes the loss by -c
            and leaves the gradient unchanged.
        completion_mask: (B, T) 1 on completion tokens. A row with no completion token leaves its
            group (G counts live rows only); a group with no live row is skipped.
        group_ids: (B,) ints; rows with equal id form one prompt's group, in any order.
        lam: lambda > 0 of Eq. 3.5.
        epsilon: upper clip 1 + epsilon on the token ratio.
        baseline: subtract lam (1/G) sum_i s_i (Eq. 4.2).
        jackknife: use the leave-one-out corrected log Z~ (Eq. 4.3); needs >= 2 live rows a group.
    Returns:
        loss: scalar in the promoted dtype of the inputs and float32 (bf16 inputs give fp32).
        metrics: ``frpo/log_z`` (mean log Z, jackknifed if asked), ``frpo/max_weight`` and
            ``frpo/ess`` (largest normalised weight and effective sample size of exp(-A/lam),
            averaged over groups), ``frpo/clip_frac``, ``frpo/n_groups``.
    """
    _check_lam_eps(lam, epsilon)
    batch = _check_token_inputs(per_token_logps, old_per_token_logps, completion_mask)
    _check_rows("advantages", advantages, batch)
    _check_rows("group_ids", group_ids, batch)
    if not torch.isfinite(advantages).all():
        raise ValueError("advantages contain non-finite values")
    dtype = _compute_dtype(per_token_logps, advantages)

    s, live, clip_frac = _sequence_ratio(
        per_token_logps, old_per_token_logps, completion_mask, epsilon
    )
    rows, grp, pos, counts, gmax = _group_layout(group_ids, live)
    n = counts.numel()
    if n == 0:
        zero = (per_token_logps.sum() * 0).to(dtype)
        return zero, {"frpo/log_z": 0.0, "frpo/max_weight": 0.0, "frpo/ess": 0.0,
                      "frpo/clip_frac": clip_frac, "frpo/n_groups": 0.0}  # fmt: skip
    if jackknife and bool((counts < 2).any()):
        bad = torch.unique(group_ids[rows])[counts < 2].tolist()
        raise ValueError(
            f"jackknife needs >= 2 live rows per group; group_ids {bad} have one "
            "(leave-one-out is impossible); use jackknife=False"
        )
    s_live = s[rows].to(dtype)  # (L,)
    neg_a = -advantages[rows].to(dtype) / lam  # (L,)
    logits = _padded(neg_a + torch.log(s_live), grp, pos, n, gmax)  # (n, Gmax)
    log_z, _ = _group_log_z(logits, counts, jackknife, weights=False)  # (n,)
    per_group = lam * log_z  # (n,)
    if baseline:
        mean_s = torch.zeros(n, dtype=dtype, device=s.device).index_add(0, grp, s_live)
        per_group = per_group - lam * mean_s / counts.to(dtype)
    loss = per_group.mean()
    max_w, ess = _weight_metrics(_padded(neg_a.detach(), grp, pos, n, gmax))
    metrics = {
        "frpo/log_z": log_z.detach().mean().item(),
        "frpo/max_weight": max_w,
        "frpo/ess": ess,
        "frpo/clip_frac": clip_frac,
        "frpo/n_groups": float(n),
    }
    return loss, metrics


def entropic_advantages(rewards: torch.Tensor, lam: float, jackknife: bool = True) -> torch.Tensor:
    """Per-sample advantages whose GRPO surrogate has exactly the FRPO gradient on-policy.

    Args:
        rewards: (n_groups, G) outcome rewards; centred per group inside (A = r - mean r).
        lam: lambda > 0.
        jackknife: match the jackknifed loss (Eq. 4.3); needs G >= 2.
    Returns:
        (n_groups, G) Ahat, same dtype as ``rewards`` (float32 at least).

    Derivation. A GRPO loss per group is -(1/G) sum_i Ahat_i s_i, so matching gradients in s_i
    needs Ahat_i = -G dL_group/ds_i. With baseline, L_group = lam log Z - (lam/G) sum_i s_i and
    l_i = -A_i/lam + log s_i, so dL_group/ds_i = lam c_i / s_i - lam/G with c_i = d log Z/d l_i
    (see :func:`_group_log_z`). On-policy s_i = 1, hence

        Ahat_i = lam (1 - G c_i),
        c_i = softmax(-A/lam)_i                                              (plain)
        c_i = G w_i/S - (G-1)/G sum_{j != i} w_i/(S - w_j),  w = e^{-A/lam}   (jackknife).

    sum_i c_i = 1 in both cases (each softmax sums to one), so sum_i Ahat_i = 0. As lam -> inf,
    plain: c_i -> 1/G - A_i/(G lam) and Ahat_i -> A_i, the GRPO advantage; jackknife: the
    second-order (variance) term becomes the unbiased variance, and Ahat_i -> G/(G-1) A_i.
    """
    _check_lam_eps(lam)
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be (n_groups, G), got shape {tuple(rewards.shape)}")
    if not torch.isfinite(rewards).all():
        raise ValueError("rewards contain non-finite values")
    n, g = rewards.shape
    if jackknife and g < 2:
        raise ValueError(f"jackknife needs G >= 2 rewards per group, got G={g}")
    dtype = _compute_dtype(rewards)
    r = rewards.detach().to(dtype)
    adv = r - r.mean(dim=1, keepdim=True)  # (n, G)
    counts = torch.full((n,), g, device=r.device)
    _, c = _group_log_z(-adv / lam, counts, jackknife)  # (n, G)
    return lam * (1.0 - g * c)


def frpo_row_coefficients(
    advantages: torch.Tensor,
    group_ids: torch.Tensor,
    row_live: torch.Tensor,
    lam: float,
    baseline: bool = True,
    jackknife: bool = True,
) -> tuple[torch.Tensor, dict[str, float]]:
    """coef_i = d frpo_loss(whole batch) / d s_i at s = 1 (on-policy), for the decomposed loss.

    Because the on-policy gradient is linear in the ds_i, sum over any partition of the rows of
    the gradients of ``frpo_surrogate_loss(..., coef[piece], ...)`` equals the gradient of
    ``frpo_loss`` on the whole batch. The coefficients already carry the 1/n_groups of the whole
    batch's mean over groups, so the pieces' surrogates must be SUMMED, not averaged.

    Args:
        advantages: (B,) outcome advantages of the whole batch (all processes).
        group_ids: (B,) ints, any row order.
        row_live: (B,) bool, rows with at least one completion token.
        lam, baseline, jackknife: as in :func:`frpo_loss`.
    Returns:
        coef: (B,) detached, 0 for dead rows:
            coef_i = (lam c_i - baseline * lam / G_group) / n_groups.
        metrics: ``frpo/log_z``, ``frpo/max_weight``, ``frpo/ess``, ``frpo/n_groups`` and
            ``frpo/loss_on_policy`` (the value of frpo_loss at s = 1).
    """
    _check_lam_eps(lam)
    batch = advantages.shape[0] if advantages.dim() == 1 else -1
    _check_rows("advantages", advantages, batch)
    _check_rows("group_ids", group_ids, batch)
    _check_rows("row_live", row_live, batch)
    if not torch.isfinite(advantages).all():
        raise ValueError("advantages contain non-finite values")
    dtype = _compute_dtype(advantages)
    with torch.no_grad():
        rows, grp, pos, counts, gmax = _group_layout(group_ids, row_live.bool())
        n = counts.numel()
        coef = torch.zeros(batch, dtype=dtype, device=advantages.device)
        if n == 0:
            return coef, {"frpo/log_z": 0.0, "frpo/max_weight": 0.0, "frpo/ess": 0.0,
                          "frpo/n_groups": 0.0, "frpo/loss_on_policy": 0.0}  # fmt: skip
        if jackknife and bool((counts < 2).any()):
            bad = torch.unique(group_ids[rows])[counts < 2].tolist()
            raise ValueError(
                f"jackknife needs >= 2 live rows per group; group_ids {bad} have one "
                "(leave-one-out is impossible); use jackknife=False"
            )
        neg_a = _padded(-advantages[rows].to(dtype) / lam, grp, pos, n, gmax)  # (n, Gmax)
        log_z, c = _group_log_z(neg_a, counts, jackknife)
        g = counts.to(dtype)
        per_row = lam * c[grp, pos]  # (L,)
        per_group = lam * log_z  # (n,)
        if baseline:
            per_row = per_row - lam / g[grp]
            per_group = per_group - lam
        coef[rows] = per_row / n
        max_w, ess = _weight_metrics(neg_a)
    metrics = {
        "frpo/log_z": log_z.mean().item(),
        "frpo/max_weight": max_w,
        "frpo/ess": ess,
        "frpo/n_groups": float(n),
        "frpo/loss_on_policy": per_group.mean().item(),
    }
    return coef, metrics


def frpo_surrogate_loss(
    per_token_logps: torch.Tensor,
    old_per_token_logps: torch.Tensor,
    coef: torch.Tensor,
    completion_mask: torch.Tensor,
    epsilon: float = 0.2,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Linear surrogate sum_i coef_i s_i whose gradient at ratio = 1 is the FRPO gradient.

    Args:
        per_token_logps: (B, T) with grad; old_per_token_logps: (B, T); completion_mask: (B, T).
        coef: (B,) from :func:`frpo_row_coefficients` (detached here).
        epsilon: upper clip on the token ratio, as in :func:`frpo_loss`.
    Returns:
        loss: scalar; SUM it over micro-batches and processes (coef carries 1/n_groups).
        metrics: ``frpo/clip_frac``.
    """
    _check_lam_eps(1.0, epsilon)
    batch = _check_token_inputs(per_token_logps, old_per_token_logps, completion_mask)
    _check_rows("coef", coef, batch)
    if not torch.isfinite(coef).all():
        raise ValueError("coef contains non-finite values")
    s, _, clip_frac = _sequence_ratio(
        per_token_logps, old_per_token_logps, completion_mask, epsilon
    )
    dtype = _compute_dtype(per_token_logps, coef)
    loss = (coef.detach().to(dtype) * s.to(dtype)).sum()
    return loss, {"frpo/clip_frac": clip_frac}
