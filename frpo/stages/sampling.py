"""Sampling answers and estimating per-token KL between two models on them.

The per-token KL of Q to P on prompts x (the ball's direction, KL(Q || P), as in the paper's
constraint on the downstream model Q) is estimated on answers sampled from Q::

    KL_tok = sum_{i,t} [log Q(y_it | x_i, y_i<t) - log P(y_it | x_i, y_i<t)] / sum_i |y_i|

i.e. the sequence-level KL estimator summed over sampled answers y_i ~ Q, divided by their total
length (the end-of-sequence token counts as a token, as in TRL's completion mask).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Samples:
    """Sampled answers: token ids per prompt (no padding) and decoded texts."""

    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    texts: list[str]


def encode_prompts(tokenizer, prompts: list) -> list[list[int]]:
    """Chat-template each conversational prompt (list of messages) with a generation prompt."""
    out = []
    for p in prompts:
        if isinstance(p, str):
            p = [{"role": "user", "content": p}]
        text = tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False)
        out.append(tokenizer(text, add_special_tokens=False)["input_ids"])
    return out


@torch.no_grad()
def sample(
    model,
    tokenizer,
    prompts: list,
    max_new_tokens: int,
    greedy: bool = False,
    seed: int = 0,
    temperature: float = 1.0,
    batch_size: int = 64,
) -> Samples:
    """Answers of ``model`` to ``prompts`` (one each; repeat prompts for more).

    Sampling draws from a private RNG stream seeded by ``seed`` (the caller's RNG state is
    restored), so equal seeds give equal answers and training randomness is untouched.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos = tokenizer.eos_token_id
    prompt_ids = encode_prompts(tokenizer, prompts)
    completions: list[list[int]] = []
    with torch.random.fork_rng(devices=[] if device.type == "cpu" else [device]):
        torch.manual_seed(seed)
        for start in range(0, len(prompt_ids), batch_size):
            chunk = prompt_ids[start : start + batch_size]
            width = max(len(p) for p in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)  # (B, P) left-padded
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for i, p in enumerate(chunk):
                ids[i, width - len(p) :] = torch.tensor(p)
                mask[i, width - len(p) :] = 1
            out = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=max_new_tokens,
                do_sample=not greedy,
                temperature=temperature if not greedy else None,
                top_k=0 if not greedy else None,
                top_p=1.0 if not greedy else None,
                pad_token_id=pad,
                eos_token_id=eos,
            )[:, width:]  # (B, <= max_new_tokens)
            for row in out.tolist():
                completions.append(_cut_at_eos(row, eos))
    model.train(was_training)
    texts = tokenizer.batch_decode(
        [[t for t in c if t != eos] for c in completions], skip_special_tokens=True
    )
    return Samples(prompt_ids, completions, texts)


def _cut_at_eos(row: list[int], eos: int | None) -> list[int]:
    if eos is not None and eos in row:
        return row[: row.index(eos) + 1]
    return row


@torch.no_grad()
def completion_logps(
    model, prompt_ids: list[list[int]], completion_ids: list[list[int]], batch_size: int = 64
) -> list[torch.Tensor]:
    """Per-token log-probabilities (float64, shape (|y_i|,)) of each completion under ``model``."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out: list[torch.Tensor] = []
    for start in range(0, len(prompt_ids), batch_size):
        ps = prompt_ids[start : start + batch_size]
        cs = completion_ids[start : start + batch_size]
        seqs = [p + c for p, c in zip(ps, cs, strict=True)]
        width = max(len(s) for s in seqs)
        ids = torch.zeros((len(seqs), width), dtype=torch.long)  # (B, L) right-padded
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        logp = torch.log_softmax(logits.double(), dim=-1)  # (B, L, V)
        for i, (p, c) in enumerate(zip(ps, cs, strict=True)):
            if not c:
                out.append(torch.zeros(0, dtype=torch.float64))
                continue
            pos = torch.arange(len(p) - 1, len(p) + len(c) - 1, device=logp.device)  # (|y|,)
            tok = torch.tensor(c, device=logp.device)
            out.append(logp[i, pos, tok].cpu())
    model.train(was_training)
    return out


def per_token_kl(q_logps: list[torch.Tensor], p_logps: list[torch.Tensor]) -> float:
    """sum_i sum_t (log q - log p) / sum_i |y_i|, on answers sampled from q (nan if no tokens)."""
    num = sum(float((q - p).sum()) for q, p in zip(q_logps, p_logps, strict=True))
    den = sum(len(q) for q in q_logps)
    return num / den if den else float("nan")


def kl_to(model, other, samples: Samples) -> float:
    """Per-token KL(model || other) on ``samples`` drawn from ``model``."""
    q = completion_logps(model, samples.prompt_ids, samples.completion_ids)
    p = completion_logps(other, samples.prompt_ids, samples.completion_ids)
    return per_token_kl(q, p)


def score(reward_funcs: list, dataset, samples: Samples) -> dict[str, float]:
    """Mean of each TRL reward function (and of their sum) on ``samples`` of ``dataset``'s prompts.

    ``dataset`` rows line up with ``samples`` (repeat rows for several samples per prompt); its
    other columns are passed to the reward functions as keyword arguments, as TRL does.
    """
    import math

    columns = {c: dataset[c] for c in dataset.column_names if c != "prompt"}
    completions = [[{"role": "assistant", "content": t}] for t in samples.texts]
    out: dict[str, float] = {}
    total = [0.0] * len(completions)
    for f in reward_funcs:
        name = getattr(f, "__name__", type(f).__name__)
        vals = f(
            prompts=dataset["prompt"],
            completions=completions,
            completion_ids=samples.completion_ids,
            **columns,
        )
        vals = [float("nan") if v is None else float(v) for v in vals]
        good = [v for v in vals if not math.isnan(v)]
        out[name] = sum(good) / len(good) if good else float("nan")
        total = [t + (0.0 if math.isnan(v) else v) for t, v in zip(total, vals, strict=True)]
    out["total"] = sum(total) / len(total) if total else float("nan")
    return out
