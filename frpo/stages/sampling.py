"""Sampling answers and estimating per-token KL between two models on them.

The per-token KL of Q to P on prompts x (the ball's direction, KL(Q || P), as in the paper's
constraint on the downstream model Q) is estimated on answers y_i sampled from Q::

    KL_tok = sum_{i,t} KL(Q(. | x_i, y_i<t) || P(. | x_i, y_i<t)) / sum_i |y_i|

the KL of the two next-token distributions at every sampled prefix, over the whole vocabulary,
summed and divided by the answers' total length (the end-of-sequence token counts as a token, as
in TRL's completion mask). By the chain rule of the KL it has the same expectation as the
sampled-token estimator ``sum_{i,t} [log Q(y_it | ...) - log P(y_it | ...)] / sum_i |y_i|``
(:func:`per_token_kl`), without the variance of the token drawn at each position (measured on
the toy world's downstream runs, the sampled-token estimate on 32 answers wandered by a few
hundredths per token, enough to reorder the points of a trajectory), and it is never negative.
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

    Memory stays bounded at any vocabulary and length (:func:`completion_logits`); each target's
    log-prob is taken as ``logit[y] - logsumexp(logits)`` in fp32, ``chunk_budget`` logits at a
    time. No (B, L, V) tensor and no float64 vocabulary tensor is ever built.
    """
    out: list[torch.Tensor] = [torch.zeros(0, dtype=torch.float64)] * len(prompt_ids)
    for rows, logits, targets in completion_logits(
        model, prompt_ids, completion_ids, batch_size, logit_budget
    ):
        logps = target_logps(logits, targets, chunk_budget)  # (b, C) fp32
        for j, i in enumerate(rows):
            out[i] = logps[j, : len(completion_ids[i])].double().cpu()
    return out


@torch.no_grad()
def completion_logits(
    model,
    prompt_ids: list[list[int]],
    completion_ids: list[list[int]],
    batch_size: int = 64,
    logit_budget: int = LOGIT_BUDGET,
):
    """Yield ``(rows, logits, targets)`` per batch of non-empty completions: ``logits`` (b, C, V)
    with column t predicting completion token t, ``targets`` (b, C) the completion ids (padded
    past each row's length). Prompts are left-padded and completions right-padded, so every
    completion starts at the same column and the model computes logits for the last ``C + 1``
    columns only (``logits_to_keep``; explicit ``position_ids`` make the padding invisible); at
    most ``batch_size`` rows and ``logit_budget`` logits go through one forward. The batches
    depend only on the completions' lengths and the vocabulary, so two models of one tokenizer
    yield the same rows in the same order."""
    if len(prompt_ids) != len(completion_ids):
        raise ValueError(f"{len(prompt_ids)} prompts but {len(completion_ids)} completions")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    head = model.get_output_embeddings()
    vocab = head.weight.shape[0] if head is not None else model.config.vocab_size
    todo = [i for i, c in enumerate(completion_ids) if c]
    start = 0
    try:
        while start < len(todo):
            rows = _rows_within_budget(
                todo[start:], completion_ids, batch_size, logit_budget, vocab
            )
            start += len(rows)
            ps = [prompt_ids[i] for i in rows]
            cs = [completion_ids[i] for i in rows]
            width_p, width_c = max(map(len, ps)), max(map(len, cs))
            ids = torch.zeros((len(rows), width_p + width_c), dtype=torch.long)  # (b, P + C)
            mask = torch.zeros_like(ids)
            for j, (p, c) in enumerate(zip(ps, cs, strict=True)):
                ids[j, width_p - len(p) : width_p + len(c)] = torch.tensor(p + c)
                mask[j, width_p - len(p) : width_p + len(c)] = 1
            positions = (mask.cumsum(-1) - 1).clamp(min=0)  # (b, P + C): 0 at each first token
            logits = model(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                position_ids=positions.to(device),
                logits_to_keep=width_c + 1,
            ).logits[:, -(width_c + 1) : -1]  # (b, C, V): column t predicts completion token t
            yield rows, logits, ids[:, width_p:].to(logits.device)
            del logits
    finally:
        model.train(was_training)


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


def token_kls(
    model,
    other,
    prompt_ids: list[list[int]],
    completion_ids: list[list[int]],
    batch_size: int = 64,
    logit_budget: int = LOGIT_BUDGET,
    chunk_budget: int = CHUNK_BUDGET,
) -> list[torch.Tensor]:
    """KL(q(. | x, y_<t) || p(. | x, y_<t)) at every position t of every completion, over the
    whole vocabulary (q: ``model``, p: ``other``); shape (|y_i|,) each, fp32 sums returned as
    float64. With completions sampled from q, ``sum_t`` of these has the same expectation as
    ``sum_t [log q(y_t) - log p(y_t)]`` (the chain rule of the KL), without the variance of the
    sampled token at each position, and is never negative."""
    out: list[torch.Tensor] = [torch.zeros(0, dtype=torch.float64)] * len(prompt_ids)
    batches = zip(
        completion_logits(model, prompt_ids, completion_ids, batch_size, logit_budget),
        completion_logits(other, prompt_ids, completion_ids, batch_size, logit_budget),
        strict=True,
    )
    for (rows, lq, _), (rows_p, lp, _) in batches:
        if rows != rows_p:
            raise ValueError("the two models batched the completions differently (vocab sizes?)")
        b, n, v = lq.shape
        step = max(1, chunk_budget // max(1, b * v))
        kl = torch.empty((b, n), dtype=torch.float32, device=lq.device)
        for s in range(0, n, step):
            log_q = torch.log_softmax(lq[:, s : s + step].float(), dim=-1)  # (b, k, V)
            log_p = torch.log_softmax(lp[:, s : s + step].float().to(lq.device), dim=-1)
            kl[:, s : s + step] = (log_q.exp() * (log_q - log_p)).sum(-1)  # (b, k)
        for j, i in enumerate(rows):
            out[i] = kl[j, : len(completion_ids[i])].double().cpu()
    return out


def kl_to(model, other, samples: Samples) -> float:
    """Per-token KL(model || other) on ``samples`` drawn from ``model``:
    ``sum_i sum_t KL(q(. | x_i, y_i<t) || p(. | x_i, y_i<t)) / sum_i |y_i|``, the next-token KL
    at every sampled prefix over the whole vocabulary (:func:`token_kls`; Rao-Blackwellised: the
    same expectation as the sampled-token estimator :func:`per_token_kl` of the module
    docstring, a fraction of its variance, never negative)."""
    kls = token_kls(model, other, samples.prompt_ids, samples.completion_ids)
    den = sum(len(k) for k in kls)
    return sum(float(k.sum()) for k in kls) / den if den else float("nan")


def mean_rewards(reward_funcs: list, dataset, samples: Samples) -> dict[str, float]:
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
