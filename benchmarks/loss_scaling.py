"""Forward+backward time and memory of ``frpo_loss`` against a GRPO loss and a per-group loop.

Three losses on the same inputs (G = 8 completions a group, T = 512 tokens, fp32, CPU; one thread
unless ``--threads`` says otherwise):

* ``grpo``: TRL-style GRPO loss (token ratio times advantage, two-sided clip, pessimistic min,
  masked mean per sequence, mean over the batch); written here.
* ``frpo``: :func:`frpo.losses.frpo_loss` (baseline and jackknife on), vectorised over groups.
* ``loop``: the same FRPO loss structured like the authors' trainer: a vectorised token part
  (weighted clipped ratios and a separate baseline term), then a Python loop over groups (each
  found with a mask over the batch) with linear-space sums and leave-one-out sums.

A fourth timing, ``floor``, is no loss: one exp of every token's log-ratio into a fresh (B, T)
tensor. Every implementation of the FRPO loss does at least that (the ratio needs one exp a token;
backward returns a fresh (B, T) gradient) and more (it reads three (B, T) inputs, not one), so
``loop / floor`` bounds the speedup over the loop that any implementation could show on the
machine at hand.

Timing is best-of-k over interleaved repeats. Memory is the bytes autograd saves for backward
(unique storages, inputs excluded): the part of peak memory a loss adds between forward and
backward. ``python benchmarks/loss_scaling.py --json`` prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout uninstalled
from frpo.losses import frpo_loss  # noqa: E402

G, T, LAM, EPS = 8, 512, 0.5, 0.2


def grpo_loss(lp, old, adv, mask, eps=EPS):
    """TRL GRPO loss ('grpo' loss_type): per-sequence masked mean of the clipped surrogate."""
    ratio = torch.exp(lp - old)  # (B, T)
    clipped = torch.clamp(ratio, 1 - eps, 1 + eps)  # (B, T)
    a = adv.unsqueeze(1)  # (B, 1)
    per_token = -torch.min(ratio * a, clipped * a)  # (B, T)
    return ((per_token * mask).sum(1) / mask.sum(1).clamp(min=1.0)).mean()


def loop_loss(lp, old, adv, mask, gids, lam=LAM, eps=EPS):
    """FRPO loss (baseline and jackknife on) structured like the authors' trainer.

    Token part: per-token weighted ratios exp(-A/lam) * min(r, clip(r)) and, separately, the
    baseline's min(r, clip(r)), each reduced to a masked mean per sequence. Group part: a Python
    loop over groups, each found with a mask over the batch, linear-space sums and leave-one-out
    sums (no logsumexp), then the mean over groups.
    """
    ratio = torch.exp(lp - old)  # (B, T)
    clipped = torch.clamp(ratio, 1 - eps, 1 + eps)  # (B, T)
    w = torch.exp(-adv / lam).unsqueeze(1)  # (B, 1)
    n_tok = mask.sum(1).clamp(min=1.0)  # (B,)
    z_seq = (torch.min(ratio * w, clipped * w) * mask).sum(1) / n_tok  # (B,)
    s_seq = (torch.min(ratio, clipped) * mask).sum(1) / n_tok  # (B,)
    uniq, inv = torch.unique(gids, return_inverse=True)
    terms = []
    for g in range(uniq.numel()):
        rows = (inv == g).nonzero(as_tuple=True)[0]
        k = rows.numel()
        z = z_seq[rows]  # (k,)
        total = z.sum()
        loo = (total - z) / (k - 1)  # (k,)
        terms.append(k * torch.log(total / k) - (k - 1) * torch.log(loo).mean())
    counts = torch.bincount(inv).to(s_seq.dtype)
    s_group = torch.zeros(uniq.numel()).index_add(0, inv, s_seq) / counts  # (n,)
    return lam * torch.stack(terms).mean() - lam * s_group.mean()


def make_inputs(n_groups, seed=0):
    gen = torch.Generator().manual_seed(seed)
    b = n_groups * G
    old = -torch.rand(b, T, generator=gen) * 3
    lp = (old + 0.1 * torch.randn(b, T, generator=gen)).requires_grad_(True)
    lengths = torch.randint(T // 4, T + 1, (b,), generator=gen)
    mask = (torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)).float()
    adv = torch.rand(b, generator=gen)
    gids = torch.arange(n_groups).repeat_interleave(G)[torch.randperm(b, generator=gen)]
    adv = adv - torch.zeros(n_groups).index_add(0, gids, adv)[gids] / G  # centred per group
    return lp, old, adv, mask, gids


def runners(inputs):
    lp, old, adv, mask, gids = inputs
    return {
        "grpo": lambda: grpo_loss(lp, old, adv, mask),
        "frpo": lambda: frpo_loss(lp, old, adv, mask, gids, LAM, EPS)[0],
        "loop": lambda: loop_loss(lp, old, adv, mask, gids),
    }


def fwd_bwd_seconds(fn, x):
    x.grad = None
    start = time.perf_counter()
    fn().backward()
    return time.perf_counter() - start


def floor_seconds(log_ratio):
    """One exp per token into a fresh (B, T) tensor: a lower bound on any FRPO forward+backward."""
    start = time.perf_counter()
    torch.exp(log_ratio)
    return time.perf_counter() - start


def saved_bytes(fn, inputs):
    """Bytes of the unique storages autograd saves for backward, inputs excluded."""
    skip = {t.untyped_storage().data_ptr() for t in inputs}
    seen: dict[int, int] = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in skip:
            seen[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = fn()
    loss.backward()
    return sum(seen.values())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 32, 128, 512, 1024, 2048, 4096])
    parser.add_argument("--repeats", type=int, default=5, help="best-of-k for grpo and frpo")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (all three)")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)

    rows = []
    for n in args.sizes:
        inputs = make_inputs(n)
        run = runners(inputs)
        lp = inputs[0]
        # small sizes are cheap and noisy: more repeats; the slow loop gets fewer at large sizes
        repeats = args.repeats * max(1, 256 // n)
        loop_repeats = repeats if n <= 512 else (2 if n <= 1024 else 1)
        log_ratio = lp.detach() - inputs[1]
        best = {name: math.inf for name in [*run, "floor"]}
        for r in range(repeats):  # interleaved
            for name, fn in run.items():
                if name == "loop" and r >= loop_repeats:
                    continue
                best[name] = min(best[name], fwd_bwd_seconds(fn, lp))
            best["floor"] = min(best["floor"], floor_seconds(log_ratio))
        # sanity: the loop and the vectorised loss agree
        agree = abs(run["frpo"]().item() - run["loop"]().item())
        mem = {name: saved_bytes(fn, inputs) for name, fn in run.items() if name != "loop"}
        bt = lp.numel() * lp.element_size()
        rows.append(
            {
                "n_groups": n,
                "B": n * G,
                "best_of": [repeats, loop_repeats],
                "grpo_s": best["grpo"],
                "frpo_s": best["frpo"],
                "loop_s": best["loop"],
                "floor_s": best["floor"],
                "ratio_vs_grpo": best["frpo"] / best["grpo"],
                "speedup_vs_loop": best["loop"] / best["frpo"],
                "floor_speedup_vs_loop": best["loop"] / best["floor"],
                "saved_grpo_BT": mem["grpo"] / bt,
                "saved_frpo_BT": mem["frpo"] / bt,
                "frpo_minus_loop_abs": agree,
            }
        )

    last = rows[-1]
    summary = {
        "G": G,
        "T": T,
        "dtype": "float32",
        "threads": args.threads,
        "sizes": [r["n_groups"] for r in rows],
        "grpo_s": [round(r["grpo_s"], 5) for r in rows],
        "frpo_s": [round(r["frpo_s"], 5) for r in rows],
        "loop_s": [round(r["loop_s"], 5) for r in rows],
        "floor_s": [round(r["floor_s"], 5) for r in rows],
        "best_of_grpo_frpo_loop": [
            [r["best_of"][0], r["best_of"][0], r["best_of"][1]] for r in rows
        ],
        "ratio_vs_grpo": [round(r["ratio_vs_grpo"], 3) for r in rows],
        "speedup_vs_loop": [round(r["speedup_vs_loop"], 2) for r in rows],
        f"speedup_vs_loop_{last['n_groups']}": round(last["speedup_vs_loop"], 2),
        f"floor_speedup_vs_loop_{last['n_groups']}": round(last["floor_speedup_vs_loop"], 2),
        "saved_for_backward_in_BxT_fp32_units": {
            "grpo": [round(r["saved_grpo_BT"], 3) for r in rows],
            "frpo": [round(r["saved_frpo_BT"], 3) for r in rows],
        },
        "max_abs_frpo_minus_loop": max(r["frpo_minus_loop_abs"] for r in rows),
    }
    if args.json:
        print(json.dumps(summary))
        return
    print(f"G={G} T={T} fp32 CPU, {args.threads} thread(s); seconds forward+backward (best of k)")
    head = (
        "groups      B    grpo_s    frpo_s    loop_s   floor_s  frpo/grpo  loop/frpo  loop/floor"
        "  saved(BxT) grpo frpo"
    )
    print(head)
    for r in rows:
        print(
            f"{r['n_groups']:6d} {r['B']:6d} {r['grpo_s']:9.4f} {r['frpo_s']:9.4f} "
            f"{r['loop_s']:9.4f} {r['floor_s']:9.4f} {r['ratio_vs_grpo']:10.2f} "
            f"{r['speedup_vs_loop']:10.1f} {r['floor_speedup_vs_loop']:11.1f}"
            f"  {r['saved_grpo_BT']:9.2f} {r['saved_frpo_BT']:5.2f}"
        )
    print(f"max |frpo - loop| loss: {summary['max_abs_frpo_minus_loop']:.2e}")


if __name__ == "__main__":
    main()
