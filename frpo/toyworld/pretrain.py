"""The base model: a small Llama-architecture transformer pretrained on the world's corpus.

The corpus is chat dialogues drawn fresh each step from the world's distribution (55% action
requests in every frame, 15% each word problems, math and code; each batch holds one kind, so
sequences in it have similar lengths). On action requests the corpus
refuses with the action's propensity (:func:`frpo.toyworld.lexicon.build_actions`) and otherwise
complies; problem solutions are correct with ``math_correct_prob``. The loss is next-token
cross-entropy on the assistant tokens only, so the model learns P(answer | prompt) of the corpus.
Heldout problems of gsm8k/math/code never enter the corpus; every action does (the base model has
"seen the internet"), but heldout *prompts* of the action tasks are split by action downstream.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from frpo.toyworld import lexicon, problems
from frpo.toyworld.config import WorldConfig
from frpo.toyworld.lexicon import Action
from frpo.toyworld.tokenizer import ASSISTANT, USER, encode_words

MIXTURE = {"action": 0.55, "gsm8k": 0.15, "math": 0.15, "code": 0.15}
ACTION_MIX = {"harmful": 0.35, "borderline": 0.30, "harmless": 0.35}
ALL_FRAMES = lexicon.SAFETY_FRAMES + lexicon.ALPACA_FRAMES + lexicon.HELPFUL_FRAMES


def corpus_answer(a: Action, rng: np.random.Generator) -> str:
    """One corpus answer to an action: refuse with P = a.refusal_prob, else comply."""
    if rng.random() < a.refusal_prob:
        return lexicon.REFUSALS[int(rng.integers(len(lexicon.REFUSALS)))]
    return a.answer(lexicon.OPENERS[int(rng.integers(len(lexicon.OPENERS)))])


def problem_answer(p: problems.Problem, cfg: WorldConfig, rng: np.random.Generator) -> str:
    """A corpus solution: correct with P = math_correct_prob; math boxed with math_boxed_prob."""
    boxed = p.task != "math" or rng.random() < cfg.math_boxed_prob
    if rng.random() < cfg.math_correct_prob:
        if p.task == "math" and not boxed:
            a, b, c = p.steps
            return problems.math_solution(a, b, c, a * b + c, boxed=False)
        return p.solution
    return problems.corrupt(p, rng, boxed=boxed)


def sample_dialogues(
    cfg: WorldConfig,
    actions: list[Action],
    pools: dict[str, list[problems.Problem]],
    n: int,
    rng: np.random.Generator,
    kind: str | None = None,
) -> list[tuple[str, str]]:
    """``n`` (user text, assistant text) pairs from the corpus distribution (of one ``kind`` of
    MIXTURE if given)."""
    by_cat = {c: [a for a in actions if a.category == c] for c in ACTION_MIX}
    if kind is None:
        kinds = rng.choice(list(MIXTURE), size=n, p=list(MIXTURE.values()))
    else:
        kinds = [kind] * n
    cats = rng.choice(list(ACTION_MIX), size=n, p=list(ACTION_MIX.values()))
    out = []
    for kind, cat in zip(kinds, cats, strict=True):
        if kind == "action":
            a = by_cat[cat][int(rng.integers(len(by_cat[cat])))]
            frame = ALL_FRAMES[int(rng.integers(len(ALL_FRAMES)))]
            out.append((frame.format(v=a.verb, o=a.obj), corpus_answer(a, rng)))
        else:
            pool = pools[kind]
            p = pool[int(rng.integers(len(pool)))]
            out.append((p.prompt, problem_answer(p, cfg, rng)))
    return out


def build_model(cfg: WorldConfig, tokenizer) -> LlamaForCausalLM:
    """A freshly initialised Llama model of the recipe's shape (tied embeddings, GQA kv = h/2).

    Llama rather than Qwen2: with a ``qwen2`` config, transformers 5 ``AutoTokenizer`` swaps the
    saved word-level tokenizer for a byte-level ``Qwen2Tokenizer``; with ``llama`` it loads ours.
    """
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads // 2,
        max_position_embeddings=tokenizer.model_max_length,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(cfg.seed)
    return LlamaForCausalLM(config)


def encode_dialogue(tokenizer, user: str, assistant: str) -> tuple[list[int], int]:
    """Token ids of ``<user> U <assistant> A <eos>`` and the index where the answer starts.

    Equal to the chat template's tokenisation (tested), but without Jinja, for speed.
    """
    user_id, assistant_id = tokenizer.convert_tokens_to_ids([USER, ASSISTANT])
    head = [user_id, *encode_words(tokenizer, user), assistant_id]
    return head + encode_words(tokenizer, assistant) + [tokenizer.eos_token_id], len(head)


def batch_tensors(tokenizer, dialogues: list[tuple[str, str]]):
    """Right-padded (input_ids, attention_mask, labels) with labels only on assistant tokens."""
    encoded = [encode_dialogue(tokenizer, u, a) for u, a in dialogues]
    width = max(len(ids) for ids, _ in encoded)
    ids = torch.full((len(encoded), width), tokenizer.pad_token_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for i, (seq, start) in enumerate(encoded):
        ids[i, : len(seq)] = torch.tensor(seq)
        mask[i, : len(seq)] = 1
        labels[i, start : len(seq)] = ids[i, start : len(seq)]
    return ids, mask, labels


def pretrain(cfg: WorldConfig, tokenizer, actions, pools, log_every: int = 0) -> tuple:
    """Train a base model from scratch; returns (model, stats dict with losses and seconds)."""
    model = build_model(cfg, tokenizer)
    rng = np.random.default_rng([cfg.seed, 3])
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.pretrain_lr, weight_decay=0.01)
    warm = max(1, cfg.pretrain_steps // 20)

    def lr_at(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        prog = (step - warm) / max(1, cfg.pretrain_steps - warm)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * prog))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    model.train()
    t0, losses = time.time(), []
    for step in range(cfg.pretrain_steps):
        # One kind per batch (drawn with the MIXTURE weights): similar lengths, little padding.
        kind = str(rng.choice(list(MIXTURE), p=list(MIXTURE.values())))
        dialogues = sample_dialogues(cfg, actions, pools, cfg.pretrain_batch, rng, kind)
        ids, _, labels = batch_tensors(tokenizer, dialogues)
        # Right padding under a causal mask: real tokens never attend to the pads that follow them,
        # and pads carry no label, so no attention mask is needed (and skipping it is ~1.6x faster).
        loss = model(input_ids=ids, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if log_every and step % log_every == 0:
            print(f"pretrain step {step} loss {loss.item():.3f} {time.time() - t0:.1f}s")
    model.eval()
    n_params = sum(p.numel() for p in model.parameters())
    tail = losses[-max(1, len(losses) // 10) :]
    stats = {
        "frpo/pretrain_seconds": time.time() - t0,
        "frpo/pretrain_final_loss": float(np.mean(tail)),
        "frpo/n_params": n_params,
    }
    return model, stats
