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


LOGIT_BUDGET = 2**26
"""Logits one forward may return (elements): 128 MB in bf16. A paper-scale answer (2k tokens,
V = 32k-152k) fits one row at a time; the toy models take whole batches."""
CHUNK_BUDGET = 2**24
"""Logits upcast to fp32 at once in the log-prob reduction (elements): 64 MB."""


@torch.no_grad()
def completion_logps(
    model,
    prompt_ids: list[list[int]],
    completion_ids: list[list[int]],
    batch_size: int = 64,
    logit_budget: int = LOGIT_BUDGET,
    chunk_budget: int = CHUNK_BUDGET,
) -> list[torch.Tensor]:
    """Per-token log-probabilities log p(y_t | x, y_<t) of each completion under ``model``
    (shape (|y_i|,), computed in fp32, returned as float64 for exact sums downstream).

    Memory stays bounded at any vocabulary and length: prompts are left-padded and completions
    right-padded, so every completion starts at the same column and the model computes logits
    for the last ``C + 1`` columns only (``logits_to_keep``, C the longest completion of the
    group; explicit ``position_ids`` make the padding invisible); at most ``batch_size`` rows and
    ``logit_budget`` logits go through one forward; and each target's log-prob is taken as
    ``logit[y] - logsumexp(logits)`` in fp32, ``chunk_budget`` logits at a time. No (B, L, V)
    tensor and no float64 vocabulary tensor is ever built.
    """
    if len(prompt_ids) != len(completion_ids):
        raise ValueError(f"{len(prompt_ids)} prompts but {len(completion_ids)} completions")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    head = model.get_output_embeddings()
    vocab = head.weight.shape[0] if head is not None else model.config.vocab_size
    out: list[torch.Tensor] = [torch.zeros(0, dtype=torch.float64)] * len(prompt_ids)
    todo = [i for i, c in enumerate(completion_ids) if c]
    start = 0
    while start < len(todo):
        rows = _rows_within_budget(todo[start:], completion_ids, batch_size, logit_budget, vocab)
        start += len(rows)
        ps = [prompt_ids[i] for i in rows]
        cs = [completion_ids[i] for i in rows]
        width_p, width_c = max(map(len, ps)), max(map(len, cs))
        ids = torch.zeros((len(rows), width_p + width_c), dtype=torch.long)  # (b, P + C)
        mask = torch.zeros_like(ids)
        for j, (p, c) in enumerate(zip(ps, cs, strict=True)):
            ids[j, width_p - len(p) : width_p + len(c)] = torch.tensor(p + c)
            mask[j, width_p - len(p) : width_p + len(c)] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # (b, P + C): 0 at each first real token
        logits = model(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            position_ids=positions.to(device),
            logits_to_keep=width_c + 1,
        ).logits[:, -(width_c + 1) : -1]  # (b, C, V): column t predicts completion token t
        targets = ids[:, width_p:].to(logits.device)  # (b, C)
        logps = target_logps(logits, targets, chunk_budget)  # (b, C) fp32
        for j, (i, c) in enumerate(zip(rows, cs, strict=True)):
            out[i] = logps[j, : len(c)].double().cpu()
        del logits
    model.train(was_training)
    return out


def _rows_within_budget(todo, completion_ids, batch_size, logit_budget, vocab) -> list[int]:
    """The longest prefix of ``todo`` (at least one row) whose logits fit the budget."""
    rows, width = [], 0
    for i in todo[:batch_size]:
        w = max(width, len(completion_ids[i]))
        if rows and (len(rows) + 1) * (w + 1) * vocab > logit_budget:
            break
        rows.append(i)
        width = w
    return rows


def target_logps(logits: torch.Tensor, targets: torch.Tensor, chunk_budget: int) -> torch.Tensor:
    """log softmax(logits)[..., target] in fp32: (b, C, V), (b, C) -> (b, C).

    ``logit[y] - logsumexp(logit)`` over chunks of positions, each upcast to fp32 on its own.
    """
    b, n, v = logits.shape
    step = max(1, chunk_budget // max(1, b * v))
    out = torch.empty((b, n), dtype=torch.float32, device=logits.device)
    for s in range(0, n, step):
        x = logits[:, s : s + step].float()  # (b, k, V)
        picked = x.gather(-1, targets[:, s : s + step, None]).squeeze(-1)  # (b, k)
        out[:, s : s + step] = picked - torch.logsumexp(x, dim=-1)
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
