"""Tests of frpo.losses against hand-worked numbers, a plain-loop float64 reference and autograd."""

import math
import random

import pytest
import torch

import frpo.losses
from frpo.losses import (
    entropic_advantages,
    frpo_loss,
    frpo_row_coefficients,
    frpo_surrogate_loss,
)

torch.set_num_threads(1)
F64 = torch.float64


# ----------------------------------------------------------------------------- helpers


def reference_loss(lp, old, adv, mask, gids, lam, eps=0.2, baseline=True, jackknife=True):
    """Plain-loop float64 FRPO loss (Algorithm 1), written independently of frpo.losses."""
    rows = len(adv)
    s, live = [], []
    for i in range(rows):
        total, count = 0.0, 0.0
        for t in range(len(lp[i])):
            if mask[i][t]:
                total += min(math.exp(lp[i][t] - old[i][t]), 1.0 + eps)
                count += 1.0
        s.append(total / count if count else 0.0)
        live.append(count > 0)
    groups = {}
    for i in range(rows):
        if live[i]:
            groups.setdefault(gids[i], []).append(i)
    per_group = []
    for members in groups.values():
        g = len(members)
        w = [math.exp(-adv[i] / lam) * s[i] for i in members]
        log_z = math.log(sum(w) / g)
        if jackknife:
            loo = 0.0
            for j in range(g):
                others = sum(w[k] for k in range(g) if k != j)
                loo += math.log(others / (g - 1))
            log_z = g * log_z - (g - 1) / g * loo
        value = lam * log_z
        if baseline:
            value -= lam * sum(s[i] for i in members) / g
        per_group.append(value)
    return sum(per_group) / len(per_group)


def random_batch(seed, n_groups=5, t=6, dead=True, off_policy=True, min_live=2):
    """Random groups of random sizes, shuffled rows, some dead rows and one all-dead group."""
    gen = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    gids, dead_rows = [], []
    for g in range(n_groups):
        size = rng.randint(min_live, 5)
        gids += [10 * g + 3] * size  # non-contiguous ids
        if dead and g % 2 == 0:
            gids.append(10 * g + 3)  # one extra row that will be dead
            dead_rows.append(len(gids) - 1)
    if dead:
        gids += [999, 999]  # a group whose every row is dead
        dead_rows += [len(gids) - 2, len(gids) - 1]
    b = len(gids)
    old = -torch.rand(b, t, generator=gen, dtype=F64) * 3
    shift = 0.3 * torch.randn(b, t, generator=gen, dtype=F64) if off_policy else 0.0
    lp = (old + shift).requires_grad_(True)
    mask = (torch.rand(b, t, generator=gen) > 0.3).to(F64)
    mask[:, 0] = 1.0
    for r in dead_rows:
        mask[r] = 0.0
    adv = torch.randn(b, generator=gen, dtype=F64)
    perm = torch.randperm(b, generator=gen)
    gid_t = torch.tensor(gids)[perm]
    return lp.detach()[perm].requires_grad_(True), old[perm], adv[perm], mask[perm], gid_t


def grad_of(loss, x):
    (g,) = torch.autograd.grad(loss, x)
    return g


def grpo_grad(lp, old, adv, mask, gids, eps=0.2):
    """Gradient of mean over groups of -(1/G) sum_i A_i s_i (live rows only)."""
    ratio = torch.clamp(torch.exp(lp - old), max=1 + eps)
    s = (ratio * mask).sum(1) / mask.sum(1).clamp(min=1)
    live = mask.sum(1) > 0
    total, n = 0.0, 0
    for g in torch.unique(gids[live]):
        rows = (gids == g) & live
        total = total - (adv[rows] * s[rows]).mean()
        n += 1
    return grad_of(total / n, lp)


# ----------------------------------------------------------------------------- hand-worked numbers


def test_group_of_two_by_hand():
    # A = [1, -1], lam = 1, on-policy so s = [1, 1] and w = [e^{-1}, e^{1}].
    # Zhat = (e^{-1} + e) / 2 = cosh(1) -> log Z = log cosh 1 = 0.433781
    # jackknife: Zhat_{-1} = e, Zhat_{-2} = e^{-1}; log Z~ = 2 log cosh 1 - (1/2)(1 - 1) = 0.867562
    # loss = lam log Z~ - lam mean(s) = 0.867562 - 1 = -0.132438; plain: 0.433781 - 1 = -0.566219
    lp = torch.zeros(2, 3, dtype=F64, requires_grad=True)
    adv = torch.tensor([1.0, -1.0], dtype=F64)
    mask = torch.ones(2, 3, dtype=F64)
    gids = torch.tensor([7, 7])
    loss, m = frpo_loss(lp, lp.detach(), adv, mask, gids, lam=1.0)
    assert loss.item() == pytest.approx(2 * math.log(math.cosh(1.0)) - 1, abs=1e-12)
    assert loss.item() == pytest.approx(-0.132438, abs=1e-6)
    assert m["frpo/log_z"] == pytest.approx(0.867562, abs=1e-6)
    plain, m0 = frpo_loss(lp, lp.detach(), adv, mask, gids, lam=1.0, jackknife=False)
    assert plain.item() == pytest.approx(-0.566219, abs=1e-6)
    # normalised weights q = [e^{-1}, e] / (e^{-1} + e) = [0.119203, 0.880797]
    # ESS = 1 / (q1^2 + q2^2) = 1 / (0.014209 + 0.775803) = 1.265803
    assert m0["frpo/max_weight"] == pytest.approx(0.880797, abs=1e-6)
    assert m0["frpo/ess"] == pytest.approx(1.265803, abs=1e-6)
    assert m0["frpo/clip_frac"] == 0.0
    # plain Ahat = lam (1 - 2 q) = [tanh 1, -tanh 1] = [0.761594, -0.761594]
    # jackknife: c_i = 2 q_i - (1/2) * 1 -> Ahat = 1 - 2 c = 2 (1 - 2 q) = [1.523188, -1.523188]
    rewards = torch.tensor([[3.0, 1.0]], dtype=F64)  # centred inside to A = [1, -1]
    plain_a = entropic_advantages(rewards, 1.0, jackknife=False)
    jack_a = entropic_advantages(rewards, 1.0, jackknife=True)
    assert plain_a.tolist()[0] == pytest.approx([0.761594, -0.761594], abs=1e-6)
    assert jack_a.tolist()[0] == pytest.approx([1.523188, -1.523188], abs=1e-6)


def test_clip_fraction_by_hand():
    # ratios e^{0.5} = 1.65 (clipped at 1.2), e^{0} = 1, e^{-0.5}; one masked-out clipped token.
    old = torch.zeros(2, 2, dtype=F64)
    lp = torch.tensor([[0.5, 0.0], [-0.5, 0.5]], dtype=F64, requires_grad=True)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]], dtype=F64)
    loss, m = frpo_loss(
        lp, old, torch.tensor([0.0, 0.0], dtype=F64), mask, torch.tensor([0, 0]), 1.0
    )
    assert m["frpo/clip_frac"] == pytest.approx(1 / 3)
    # s = [(1.2 + 1)/2, e^{-0.5}] = [1.1, 0.606531]; A = 0 -> Zhat = mean(s)
    s = [1.1, math.exp(-0.5)]
    jack = 2 * math.log(sum(s) / 2) - 0.5 * (math.log(s[0]) + math.log(s[1]))
    assert loss.item() == pytest.approx(jack - sum(s) / 2, abs=1e-12)
    g = grad_of(loss, lp)
    assert g[0, 0].item() == 0.0  # clipped token: no gradient through min(ratio, 1 + eps)
    assert g[1, 1].item() == 0.0  # masked token


# ------------------------------------------------------------------- reference and autograd


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("baseline,jackknife", [(True, True), (True, False), (False, True)])
def test_matches_plain_loop_reference(seed, baseline, jackknife):
    lp, old, adv, mask, gids = random_batch(seed)
    lam = [0.3, 1.0, 2.5][seed % 3]
    loss, m = frpo_loss(lp, old, adv, mask, gids, lam, baseline=baseline, jackknife=jackknife)
    ref = reference_loss(
        lp.tolist(), old.tolist(), adv.tolist(), mask.tolist(), gids.tolist(), lam,
        baseline=baseline, jackknife=jackknife,
    )  # fmt: skip
    assert loss.item() == pytest.approx(ref, rel=1e-12, abs=1e-12)
    assert m["frpo/n_groups"] == 5.0  # the all-dead group 999 is skipped


@pytest.mark.parametrize("baseline,jackknife", [(True, True), (False, False), (True, False)])
def test_gradcheck(baseline, jackknife):
    lp, old, adv, mask, gids = random_batch(11, n_groups=3, t=4)
    # keep every token ratio away from the kink of min(ratio, 1 + eps)
    ratio = torch.exp(lp.detach() - old)
    assert ((ratio - 1.2).abs() > 1e-3).all()

    def f(x):
        return frpo_loss(x, old, adv, mask, gids, 0.7, baseline=baseline, jackknife=jackknife)[0]

    assert torch.autograd.gradcheck(f, (lp,), eps=1e-6, atol=1e-8)


# ------------------------------------------------------------------- limits and equivalences


@pytest.mark.parametrize("jackknife", [True, False])
def test_large_lambda_gives_grpo_gradient(jackknife):
    # lam log Z - lam mean(s) -> -mean(A_i s_i) per group as lam -> inf, on-policy (s = 1),
    # with A centred over the group's live rows (the FRPO gradient ignores a per-group shift,
    # the GRPO one does not). Second order: lam log Zhat ~ lam mean(l) + lam var(l)/2 with
    # l = -A/lam + log s; the jackknife turns the plug-in variance into the unbiased one, so its
    # limit is G/(G-1) times the GRPO gradient (G = live rows of the group).
    lp, old, adv, mask, gids = random_batch(3, off_policy=False)
    loss, _ = frpo_loss(lp, old, adv, mask, gids, lam=1e6, jackknife=jackknife)
    g = grad_of(loss, lp)
    live = mask.sum(1) > 0
    scaled = adv.clone()
    for gid in torch.unique(gids):
        rows = (gids == gid) & live
        size = int(rows.sum())
        factor = size / (size - 1) if jackknife and size > 0 else 1.0
        scaled[rows] = factor * (adv[rows] - adv[rows].mean())
    g_grpo = grpo_grad(lp, old, scaled, mask, gids)
    assert g_grpo.abs().max() > 1e-3
    torch.testing.assert_close(g, g_grpo, rtol=1e-4, atol=1e-9)
    # and a moderate lam is measurably different, so the check above has teeth
    g1 = grad_of(frpo_loss(lp, old, adv, mask, gids, lam=0.5, jackknife=jackknife)[0], lp)
    assert (g1 - g_grpo).abs().max() > 1e-3
    # a per-group shift of A leaves the FRPO gradient unchanged
    g2 = grad_of(frpo_loss(lp, old, adv + 0.7 * gids, mask, gids, 0.5, jackknife=jackknife)[0], lp)
    torch.testing.assert_close(g2, g1, rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("jackknife", [True, False])
def test_entropic_advantages_give_frpo_gradient_on_policy(jackknife):
    gen = torch.Generator().manual_seed(5)
    n, g, t, lam = 4, 6, 5, 0.4
    rewards = torch.rand(n, g, generator=gen, dtype=F64)
    ahat = entropic_advantages(rewards, lam, jackknife=jackknife)  # (n, G)
    assert ahat.sum(1).abs().max() < 1e-12  # sum_i c_i = 1 -> advantages sum to zero
    perm = torch.randperm(n * g, generator=gen)
    gids = torch.arange(n).repeat_interleave(g)[perm]
    adv = (rewards - rewards.mean(1, keepdim=True)).reshape(-1)[perm]
    old = -torch.rand(n * g, t, generator=gen, dtype=F64)
    lp = old.clone().requires_grad_(True)
    mask = torch.ones(n * g, t, dtype=F64)
    g_frpo = grad_of(frpo_loss(lp, old, adv, mask, gids, lam, jackknife=jackknife)[0], lp)
    g_grpo = grpo_grad(lp, old, ahat.reshape(-1)[perm], mask, gids)
    torch.testing.assert_close(g_frpo, g_grpo, rtol=1e-10, atol=1e-13)


def test_entropic_advantages_limits():
    rewards = torch.tensor([[0.0, 1.0, 0.5, 0.2]], dtype=F64)
    centred = rewards - rewards.mean()
    for jack, factor in ((True, 4 / 3), (False, 1.0)):  # jackknife: G/(G-1), see above
        big = entropic_advantages(rewards, 1e6, jackknife=jack)
        torch.testing.assert_close(big, factor * centred, rtol=1e-5, atol=1e-6)
        # small lam: the worst sample (lowest reward) gets the most negative advantage
        small = entropic_advantages(rewards, 0.05, jackknife=jack)
        assert small.argmin().item() == 0 and torch.isfinite(small).all()


def test_row_order_invariance():
    lp, old, adv, mask, gids = random_batch(21)
    loss, _ = frpo_loss(lp, old, adv, mask, gids, 0.8)
    g = grad_of(loss, lp)
    perm = torch.randperm(len(adv), generator=torch.Generator().manual_seed(1))
    lp2 = lp.detach()[perm].requires_grad_(True)
    loss2, _ = frpo_loss(lp2, old[perm], adv[perm], mask[perm], gids[perm], 0.8)
    assert loss2.item() == pytest.approx(loss.item(), rel=1e-13)
    torch.testing.assert_close(grad_of(loss2, lp2), g[perm], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("jackknife", [True, False])
def test_small_lambda_fp32_accurate_and_bf16_finite(jackknife):
    # lam = 1e-3 with A in [-0.5, 0.5] gives |A|/lam up to 500: exp(500) overflows fp32.
    assert math.isinf(torch.exp(torch.tensor(500.0)).item())
    gen = torch.Generator().manual_seed(2)
    b, t, lam = 32, 16, 1e-3
    gids = torch.arange(8).repeat_interleave(4)
    adv = torch.rand(b, generator=gen, dtype=F64) - 0.5
    old = -torch.rand(b, t, generator=gen, dtype=F64) * 2
    lp = old + 0.05 * torch.randn(b, t, generator=gen, dtype=F64)
    mask = torch.ones(b, t, dtype=F64)
    results = {}
    for dtype in (F64, torch.float32, torch.bfloat16):
        x = lp.to(dtype).requires_grad_(True)
        loss, m = frpo_loss(x, old.to(dtype), adv.to(dtype), mask, gids, lam, jackknife=jackknife)
        g = grad_of(loss, x)
        assert torch.isfinite(loss) and torch.isfinite(g).all(), dtype
        assert all(math.isfinite(v) for v in m.values())
        results[dtype] = (loss.double(), g.double())
    ref_loss, ref_g = results[F64]
    scale = ref_g.abs().max().item()  # coef ~ lam / (G n) / T: small but not zero
    assert scale > 1e-6
    torch.testing.assert_close(results[torch.float32][0], ref_loss, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(results[torch.float32][1], ref_g, rtol=1e-3, atol=1e-4 * scale)


@pytest.mark.parametrize("jackknife", [True, False])
def test_higher_advantage_pushes_its_sequence_up(jackknife):
    # One group, on-policy. Gradient descent raises log pi of row i iff dloss/dlogp_i < 0, and
    # the push is stronger for a higher advantage. (For the jackknife this ordering only holds
    # for moderate lam; see the next test.)
    adv = torch.tensor([-1.0, -0.2, 0.3, 1.5], dtype=F64)
    lp = torch.zeros(4, 3, dtype=F64, requires_grad=True)
    mask = torch.ones(4, 3, dtype=F64)
    gids = torch.zeros(4)
    for lam in (0.1, 1.0, 10.0):
        loss = frpo_loss(lp, lp.detach(), adv, mask, gids, lam, jackknife=jackknife)[0]
        per_row = grad_of(loss, lp).sum(1)  # = dloss/ds_i
        assert per_row[-1] < 0 < per_row[0], (lam, per_row)
        if lam >= 1.0 or not jackknife:
            assert (per_row[1:] < per_row[:-1]).all(), (lam, per_row)


def test_jackknife_small_lambda_weights_by_hand():
    # A = [-1, -0.2, 0.3, 1.5], lam = 0.1: w = e^{-A/lam} = [e^{10}, e^{2}, e^{-3}, e^{-15}], so
    # p = softmax ~ [1, e^{-8}, 0, 0]; leaving row 0 out, p^{(-0)} ~ [., 1, e^{-5}, 0].
    # c_i = 4 p_i - (3/4) sum_{j != i} p^{(-j)}_i ~ [4 - 3/4 * 3, -3/4, 0, 0] = [1.75, -0.75, 0, 0]
    # dloss/ds_i = lam (c_i - 1/4) ~ [0.15, -0.1, -0.025, -0.025]: the second-worst row gets the
    # strongest push up (the jackknife's leave-one-out term), not the best one.
    adv = torch.tensor([-1.0, -0.2, 0.3, 1.5], dtype=F64)
    coef, _ = frpo_row_coefficients(adv, torch.zeros(4), torch.ones(4, dtype=torch.bool), 0.1)
    assert coef.tolist() == pytest.approx([0.15, -0.1, -0.025, -0.025], abs=2e-3)


def test_baseline_changes_gradient_by_exactly_the_baseline_term():
    lp, old, adv, mask, gids = random_batch(8)
    lam = 0.6
    g_on = grad_of(frpo_loss(lp, old, adv, mask, gids, lam, baseline=True)[0], lp)
    g_off = grad_of(frpo_loss(lp, old, adv, mask, gids, lam, baseline=False)[0], lp)
    # baseline term: -(lam / n_groups) sum_groups (1/G) sum_i s_i over live rows
    s = (torch.clamp(torch.exp(lp - old), max=1.2) * mask).sum(1) / mask.sum(1).clamp(min=1)
    live = mask.sum(1) > 0
    groups = torch.unique(gids[live])
    term = sum(-lam * s[(gids == g) & live].mean() for g in groups) / len(groups)
    g_term = grad_of(term, lp)
    assert g_term.abs().max() > 1e-3
    torch.testing.assert_close(g_on - g_off, g_term, rtol=1e-12, atol=1e-15)


def test_dead_rows_and_empty_groups():
    lp, old, adv, mask, gids = random_batch(4)
    dead = mask.sum(1) == 0
    assert dead.sum() >= 3
    loss, m = frpo_loss(lp, old, adv, mask, gids, 0.9)
    g = grad_of(loss, lp)
    assert (g[dead] == 0).all()
    keep = ~dead
    lp2 = lp.detach()[keep].requires_grad_(True)
    loss2, m2 = frpo_loss(lp2, old[keep], adv[keep], mask[keep], gids[keep], 0.9)
    assert loss.item() == pytest.approx(loss2.item(), rel=1e-13)
    assert m["frpo/n_groups"] == m2["frpo/n_groups"] == 5.0
    torch.testing.assert_close(g[keep], grad_of(loss2, lp2), rtol=1e-12, atol=1e-15)
    # a dead row's advantage is irrelevant (even a huge one)
    adv3 = adv.clone()
    adv3[dead] = 1e3
    assert frpo_loss(lp, old, adv3, mask, gids, 0.9)[0].item() == pytest.approx(loss.item())
    # no live row at all: zero loss, still differentiable
    zero, mz = frpo_loss(lp, old, adv, torch.zeros_like(mask), gids, 0.9)
    assert zero.item() == 0.0 and mz["frpo/n_groups"] == 0.0
    assert (grad_of(zero, lp) == 0).all()


# ----------------------------------------------------------------------------- decomposition


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("baseline,jackknife", [(True, True), (False, False), (True, False)])
def test_decomposition_over_random_partitions(seed, baseline, jackknife):
    lp, old, adv, mask, gids = random_batch(100 + seed, n_groups=6, off_policy=False)
    lam = [0.2, 1.0, 3.0, 0.05, 10.0][seed]
    loss, m = frpo_loss(lp, old, adv, mask, gids, lam, baseline=baseline, jackknife=jackknife)
    g_whole = grad_of(loss, lp)
    live = mask.sum(1) > 0
    coef, mc = frpo_row_coefficients(adv, gids, live, lam, baseline=baseline, jackknife=jackknife)
    assert not coef.requires_grad and (coef[~live] == 0).all()
    assert mc["frpo/loss_on_policy"] == pytest.approx(loss.item(), rel=1e-10, abs=1e-12)
    for key in ("frpo/log_z", "frpo/max_weight", "frpo/ess", "frpo/n_groups"):
        assert mc[key] == pytest.approx(m[key], rel=1e-10, abs=1e-12)
    gen = torch.Generator().manual_seed(seed)
    for n_pieces in (1, 3, 7):
        piece = torch.randint(0, n_pieces, (len(adv),), generator=gen)
        total = torch.zeros_like(lp)
        for k in range(n_pieces):
            rows = torch.nonzero(piece == k).squeeze(1)
            if rows.numel() == 0:
                continue
            x = lp.detach()[rows].requires_grad_(True)
            sur, ms = frpo_surrogate_loss(x, old[rows], coef[rows], mask[rows])
            total[rows] += grad_of(sur, x)
            assert ms["frpo/clip_frac"] == 0.0
        torch.testing.assert_close(total, g_whole, rtol=1e-10, atol=1e-14)


def test_row_coefficients_match_entropic_advantages():
    # Same maths: coef_i = -Ahat_i / (G n_groups) with full groups and the baseline.
    rewards = torch.rand(3, 5, generator=torch.Generator().manual_seed(9), dtype=F64)
    adv = (rewards - rewards.mean(1, keepdim=True)).reshape(-1)
    gids = torch.arange(3).repeat_interleave(5)
    live = torch.ones(15, dtype=torch.bool)
    for jack in (True, False):
        coef, _ = frpo_row_coefficients(adv, gids, live, 0.3, jackknife=jack)
        ahat = entropic_advantages(rewards, 0.3, jackknife=jack).reshape(-1)
        torch.testing.assert_close(coef, -ahat / (5 * 3), rtol=1e-12, atol=1e-15)


# ----------------------------------------------------------------------------- bad input


def _ok_inputs():
    lp = torch.zeros(4, 3, requires_grad=True)
    return lp, torch.zeros(4, 3), torch.tensor([1.0, 0.0, -1.0, 0.5]), torch.ones(4, 3)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"lam": 0.0}, "lam"),
        ({"lam": -1.0}, "lam"),
        ({"lam": math.inf}, "lam"),
        ({"lam": math.nan}, "lam"),
        ({"epsilon": -0.1}, "epsilon"),
    ],
)
def test_bad_scalars_raise(kwargs, match):
    lp, old, adv, mask = _ok_inputs()
    args = {"lam": 1.0, "epsilon": 0.2} | kwargs
    with pytest.raises(ValueError, match=match):
        frpo_loss(lp, old, adv, mask, torch.tensor([0, 0, 1, 1]), **args)
    if "lam" in kwargs:
        with pytest.raises(ValueError, match=match):
            entropic_advantages(torch.zeros(2, 3), kwargs["lam"])
        with pytest.raises(ValueError, match=match):
            frpo_row_coefficients(adv, torch.tensor([0, 0, 1, 1]), mask[:, 0] > 0, kwargs["lam"])
    else:
        with pytest.raises(ValueError, match=match):
            frpo_surrogate_loss(lp, old, torch.zeros(4), mask, **kwargs)


def test_bad_tensors_raise():
    lp, old, adv, mask = _ok_inputs()
    gids = torch.tensor([0, 0, 1, 1])
    with pytest.raises(ValueError, match="advantages contain non-finite"):
        frpo_loss(lp, old, torch.tensor([1.0, math.nan, 0.0, 0.0]), mask, gids, 1.0)
    with pytest.raises(ValueError, match="old_per_token_logps"):
        frpo_loss(lp, old[:, :2], adv, mask, gids, 1.0)
    with pytest.raises(ValueError, match="completion_mask"):
        frpo_loss(lp, old, adv, mask[:3], gids, 1.0)
    with pytest.raises(ValueError, match="advantages must have shape"):
        frpo_loss(lp, old, adv.unsqueeze(1), mask, gids, 1.0)
    with pytest.raises(ValueError, match="advantages must have shape"):
        frpo_loss(lp, old, adv[:3], mask, gids, 1.0)
    with pytest.raises(ValueError, match="group_ids"):
        frpo_loss(lp, old, adv, mask, gids[:3], 1.0)
    with pytest.raises(ValueError, match="rewards contain non-finite"):
        entropic_advantages(torch.tensor([[0.0, math.inf]]), 1.0)
    with pytest.raises(ValueError, match="rewards must be"):
        entropic_advantages(torch.zeros(4), 1.0)
    with pytest.raises(ValueError, match="coef"):
        frpo_surrogate_loss(lp, old, torch.zeros(3), mask)
    with pytest.raises(ValueError, match="row_live"):
        frpo_row_coefficients(adv, gids, torch.ones(3, dtype=torch.bool), 1.0)


def test_group_of_one_with_jackknife_raises():
    lp, old, adv, mask = _ok_inputs()
    gids = torch.tensor([0, 0, 0, 5])  # group 5 has one row
    with pytest.raises(ValueError, match=r"group_ids \[5\]"):
        frpo_loss(lp, old, adv, mask, gids, 1.0)
    assert torch.isfinite(frpo_loss(lp, old, adv, mask, gids, 1.0, jackknife=False)[0])
    # a group left with one LIVE row also raises
    mask2 = mask.clone()
    mask2[0] = 0
    gids2 = torch.tensor([0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"group_ids \[0\]"):
        frpo_loss(lp, old, adv, mask2, gids2, 1.0)
    with pytest.raises(ValueError, match=r"group_ids \[0\]"):
        frpo_row_coefficients(adv, gids2, mask2[:, 0] > 0, 1.0)
    with pytest.raises(ValueError, match="G >= 2"):
        entropic_advantages(torch.zeros(3, 1), 1.0)


def test_overflowing_ratio_is_clipped_not_inf():
    # exp(200) overflows fp32: a live token is clipped to 1 + eps (no gradient), a masked one is
    # ignored; loss and gradient stay finite.
    old = torch.zeros(2, 3)
    lp = torch.tensor([[200.0, 0.0, 0.0], [0.0, 0.0, 200.0]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    loss, m = frpo_loss(lp, old, torch.tensor([0.5, -0.5]), mask, torch.tensor([1, 1]), 0.3)
    g = grad_of(loss, lp)
    assert torch.isfinite(loss) and torch.isfinite(g).all()
    assert g[0, 0].item() == 0.0 and g[1, 2].item() == 0.0
    assert m["frpo/clip_frac"] == pytest.approx(1 / 5)
    # s = [(1.2 + 1 + 1)/3, 1]; w_i = e^{-A_i/lam} s_i; jackknife with G = 2 (see the group of two)
    s0 = 3.2 / 3
    w = [math.exp(-0.5 / 0.3) * s0, math.exp(0.5 / 0.3)]
    expected = 0.3 * (2 * math.log(sum(w) / 2) - 0.5 * math.log(w[0] * w[1])) - 0.3 * (s0 + 1) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_ratio_exactly_at_the_clip_keeps_its_gradient():
    # epsilon = 0 on-policy: every ratio is exactly 1 = 1 + eps, and min(ratio, 1 + eps) still
    # passes the gradient (as torch.clamp does at its bound), so the gradient equals eps = 0.2's.
    lp, old, adv, mask, gids = random_batch(6, off_policy=False)
    g0 = grad_of(frpo_loss(lp, old, adv, mask, gids, 0.5, epsilon=0.0)[0], lp)
    g2 = grad_of(frpo_loss(lp, old, adv, mask, gids, 0.5, epsilon=0.2)[0], lp)
    assert g2.abs().max() > 1e-3
    torch.testing.assert_close(g0, g2, rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------- the blocked token pass


@pytest.mark.parametrize("block", [1, 6, 33, 10_000])
def test_blocked_token_pass_matches_the_loop_reference(monkeypatch, block):
    # random_batch has T = 6: blocks of 1 token (one row a block), exactly one row, five rows
    # with a ragged last block (33 // 6 = 5 rows), and the whole batch in one block.
    monkeypatch.setattr(frpo.losses, "_BLOCK_ELEMENTS", block)
    lp, old, adv, mask, gids = random_batch(4)
    assert len(adv) % 5 != 0  # so that five-row blocks leave a ragged last one
    loss, m = frpo_loss(lp, old, adv, mask, gids, 0.6)
    ref = reference_loss(lp.tolist(), old.tolist(), adv.tolist(), mask.tolist(), gids.tolist(), 0.6)
    assert loss.item() == pytest.approx(ref, rel=1e-12, abs=1e-12)
    monkeypatch.setattr(frpo.losses, "_BLOCK_ELEMENTS", 10_000)
    loss_one, m_one = frpo_loss(lp, old, adv, mask, gids, 0.6)
    assert m == m_one
    torch.testing.assert_close(grad_of(loss, lp), grad_of(loss_one, lp), rtol=0, atol=0)


def test_bool_and_int_masks_give_the_float_mask_result():
    lp, old, adv, mask, gids = random_batch(9)
    loss, m = frpo_loss(lp, old, adv, mask, gids, 0.4)
    g = grad_of(loss, lp)
    for other in (mask.bool(), mask.long()):
        loss2, m2 = frpo_loss(lp, old, adv, other, gids, 0.4)
        assert loss2.item() == loss.item() and m2 == m
        torch.testing.assert_close(grad_of(loss2, lp), g, rtol=0, atol=0)


@pytest.mark.parametrize("where", ["per_token_logps", "old_per_token_logps"])
def test_nan_log_probs_raise_naming_the_tensor_and_row(where):
    lp, old, adv, mask = _ok_inputs()
    inputs = {"per_token_logps": lp.detach().clone(), "old_per_token_logps": old.clone()}
    inputs[where][2, 1] = math.nan
    with pytest.raises(ValueError, match=rf"{where} contain NaN in rows \[2\]"):
        frpo_loss(inputs["per_token_logps"], inputs["old_per_token_logps"], adv, mask,
                  torch.tensor([0, 0, 1, 1]), 1.0)  # fmt: skip
    with pytest.raises(ValueError, match="contain NaN"):  # the trainer's path, too
        frpo_surrogate_loss(inputs["per_token_logps"], inputs["old_per_token_logps"],
                            torch.ones(4), mask)  # fmt: skip


def _bf16_case(seed, b=64, t=512, g=8):
    gen = torch.Generator().manual_seed(seed)
    lp = (torch.randn(b, t, generator=gen) * 0.5 - 1.0).to(torch.bfloat16)
    old = (lp.double() + 0.02 * torch.randn(b, t, generator=gen, dtype=F64)).to(torch.bfloat16)
    adv = torch.randn(b, generator=gen)
    lengths = torch.randint(t // 4, t + 1, (b,), generator=gen)
    mask = (torch.arange(t) < lengths[:, None]).float()
    return lp, old, adv, mask, torch.arange(b) // g


def test_bf16_gradient_is_at_the_bf16_floor_of_a_float64_reference():
    # Each row's mean ratio over T = 128..512 tokens is accumulated in float32: summed in bf16 it
    # drifts by ~T * 2^-9 relative, and the gradient error over these five cases was 4.8e-3 to
    # 7.5e-3 of its largest entry (measured). Accumulated in float32, what is left is rounding the
    # returned gradient to bf16, at most 2^-8 relative: 2.0e-3 to 2.8e-3 measured.
    errors = []
    for seed in range(5):
        lp, old, adv, mask, gids = _bf16_case(seed)
        grads = []
        for dtype, adv_dtype in ((torch.bfloat16, torch.float32), (F64, F64)):
            x = lp.to(dtype).requires_grad_(True)
            loss, _ = frpo_loss(x, old.to(dtype), adv.to(adv_dtype), mask, gids, 0.5)
            assert loss.dtype == (torch.float32 if dtype == torch.bfloat16 else F64)
            grads.append(grad_of(loss, x).double())
        errors.append(((grads[0] - grads[1]).abs().max() / grads[1].abs().max()).item())
    assert max(errors) < 2.0**-8, errors
