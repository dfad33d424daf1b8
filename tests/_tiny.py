"""A tiny local causal LM, word-level tokenizer, prompt set and reward for trainer tests.

Everything is built from scratch and saved to a local directory, then loaded back from disk, so
TRL can rebuild the reference model from the model's path when ``beta > 0``. Nothing is downloaded.

- ``build_tiny(dirpath, ...) -> str``: writes a Qwen2-architecture model (random init, fixed seed)
  and its tokenizer (with a chat template) to ``dirpath``; returns the path.
- ``load_tiny(path, dtype) -> (model, tokenizer)``.
- ``prompt_dataset(n) -> datasets.Dataset``: ``n`` distinct conversational prompts.
- ``target_fraction_reward``: TRL-signature reward, the fraction of completion tokens equal to
  ``TARGET_WORD`` (a rule-based task a tiny model can learn in a few dozen steps).
"""

from __future__ import annotations

import os

import torch

WORDS = [
    "apple", "river", "stone", "cloud", "green", "blue", "seven", "north", "quiet", "lamp",
    "tree", "sand", "fire", "wind", "glass", "paper", "moon", "salt", "bread", "wolf",
]  # fmt: skip
TARGET_WORD = "moon"
SPECIALS = ["<pad>", "<unk>", "<eos>"]
ROLE_TOKENS = ["user", "assistant", ":"]
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }} : {{ message['content'] }} "
    "{% endfor %}{% if add_generation_prompt %}assistant : {% endif %}"
)


def _build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + ROLE_TOKENS + WORDS)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        unk_token="<unk>",
        eos_token="<eos>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny(
    dirpath: str | os.PathLike,
    hidden_size: int = 96,
    num_layers: int = 4,
    intermediate_size: int = 256,
    seed: int = 0,
) -> str:
    """Save a tiny Qwen2 model (about 0.45M parameters at the defaults) and tokenizer to dirpath."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = _build_tokenizer()
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = None
    path = str(dirpath)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def load_tiny(path: str, dtype: torch.dtype = torch.float32):
    """Load the model (in dtype) and tokenizer saved by build_tiny."""
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    # Not AutoTokenizer: it would pick the Qwen2 BPE class from the model config. Pass this
    # tokenizer to the trainer as processing_class.
    tokenizer = PreTrainedTokenizerFast.from_pretrained(path)
    return model, tokenizer


def prompt_dataset(n: int, seed: int = 0):
    """n distinct conversational prompts of three words each (requires n <= 20 * 19 * 18)."""
    from datasets import Dataset

    gen = torch.Generator().manual_seed(seed)
    seen, prompts = set(), []
    while len(prompts) < n:
        idx = torch.randperm(len(WORDS), generator=gen)[:3].tolist()
        key = tuple(idx)
        if key in seen:
            continue
        seen.add(key)
        text = " ".join(WORDS[i] for i in idx)
        prompts.append([{"role": "user", "content": text}])
    return Dataset.from_dict({"prompt": prompts})


def target_fraction_reward(prompts, completions, completion_ids, **kwargs) -> list[float]:
    """Fraction of completion tokens equal to TARGET_WORD (0 for an empty completion)."""
    target_id = _target_id()
    return [sum(t == target_id for t in ids) / max(len(ids), 1) for ids in completion_ids]


def _target_id() -> int:
    return len(SPECIALS) + len(ROLE_TOKENS) + WORDS.index(TARGET_WORD)


# ----------------------------------------------------------------------------- exactness helpers


def exact_config(output_dir: str, **overrides):
    """FRPOConfig for one exact SGD step on CPU: no momentum, no decay, no clipping, constant lr."""
    from frpo.trainer import FRPOConfig

    kwargs = dict(
        output_dir=output_dir,
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        report_to="none",
        save_strategy="no",
        optim="sgd",
        learning_rate=0.5,
        weight_decay=0.0,
        lr_scheduler_type="constant",
        max_grad_norm=1e9,
        max_steps=1,
        logging_steps=1,
        num_generations=4,
        max_completion_length=6,
        temperature=1.0,
        seed=0,
        disable_tqdm=True,
        cast_lm_head_to_fp32=False,  # keep float64 end to end (TRL upcasts only to fp32)
    )
    kwargs.update(overrides)
    return FRPOConfig(**kwargs)


def recording_trainer_class():
    """FRPOTrainer subclass that keeps a copy of every micro-batch dict its loss sees."""
    from frpo.trainer import FRPOTrainer

    class RecordingFRPOTrainer(FRPOTrainer):
        recorded: list

        def _compute_loss(self, model, inputs):
            if not hasattr(self, "recorded"):
                self.recorded = []
            if self.model.training:
                copy = {k: v.detach().clone() for k, v in inputs.items() if torch.is_tensor(v)}
                self.recorded.append(copy)
            return super()._compute_loss(model, inputs)

    return RecordingFRPOTrainer


def exact_recording_trainer(model_path: str, output_dir: str, **config):
    """The recording trainer on the float64 tiny model, 64 prompts, for one exact step.

    ``config`` goes to :func:`exact_config` (learning rate, batch layout, FRPO settings).
    """
    model, tok = load_tiny(model_path, torch.float64)
    return recording_trainer_class()(
        model=model,
        reward_funcs=target_fraction_reward,
        args=exact_config(output_dir, **config),
        train_dataset=prompt_dataset(64),
        processing_class=tok,
    )


def _row_logps(model, batch) -> torch.Tensor:
    """(b, T) log-probs of the completion tokens, computed directly (not with TRL's helper)."""
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
    attn = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
    t = batch["completion_ids"].shape[1]
    logits = model(input_ids=ids, attention_mask=attn).logits[:, -t - 1 : -1]  # (b, T, V)
    logps = torch.log_softmax(logits, dim=-1)
    return logps.gather(-1, batch["completion_ids"].unsqueeze(-1)).squeeze(-1)


def _pad_cols(x: torch.Tensor, t: int) -> torch.Tensor:
    return torch.nn.functional.pad(x, (0, t - x.shape[1]))


def prompt_group_ids(batches) -> torch.Tensor:
    """(B,) group ids from the prompt tokens themselves (distinct prompts = distinct groups)."""
    keys, ids = {}, []
    for batch in batches:
        for row, m in zip(batch["prompt_ids"], batch["prompt_mask"], strict=True):
            key = tuple(row[m.bool()].tolist())
            ids.append(keys.setdefault(key, len(keys)))
    return torch.tensor(ids)


def reference_step(model, batches, *, lam, beta, epsilon, lr, scale, baseline=True, jackknife=True):
    """One hand SGD step on frpo_loss(whole batch) * scale + beta * KL, in place on model.

    batches: the micro-batch dicts the trainer's loss saw (all processes, all micro-batches).
    KL: k3 = exp(ref - logp) - (ref - logp) - 1 per token, token mean over the whole batch.
    Returns the loss value.
    """
    from frpo.losses import frpo_loss

    t = max(b["completion_ids"].shape[1] for b in batches)
    logps = torch.cat([_pad_cols(_row_logps(model, b), t) for b in batches])  # (B, T)
    mask = torch.cat([_pad_cols(b["completion_mask"], t) for b in batches])  # (B, T)
    adv = torch.cat([b["advantages"] for b in batches])  # (B,)
    loss, _ = frpo_loss(
        logps, logps.detach(), adv, mask, prompt_group_ids(batches), lam, epsilon,
        baseline=baseline, jackknife=jackknife,
    )  # fmt: skip
    total = scale * loss
    if beta != 0.0:
        ref = torch.cat([_pad_cols(b["ref_per_token_logps"], t) for b in batches])
        k3 = torch.exp(ref - logps) - (ref - logps) - 1
        total = total + beta * (k3 * mask).sum() / mask.sum()
    model.zero_grad()
    total.backward()
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p -= lr * p.grad
    return total.item()


def naive_step(model, batches, *, lam, epsilon, lr, scale, n_micro, jackknife=False):
    """Negative control: frpo_loss per micro-batch (split groups), averaged, one SGD step."""
    from frpo.losses import frpo_loss

    model.zero_grad()
    for b in batches:
        logps = _row_logps(model, b)
        gids = prompt_group_ids([b])
        loss, _ = frpo_loss(
            logps, logps.detach(), b["advantages"], b["completion_mask"], gids, lam, epsilon,
            jackknife=jackknife,
        )  # fmt: skip
        (scale * loss / n_micro).backward()
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p -= lr * p.grad


def max_rel_diff(a: dict, b: dict, base: dict) -> float:
    """max |a - b| over all tensors, relative to max |a - base| (the size of the step)."""
    step = max((a[k] - base[k]).abs().max().item() for k in a)
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    return diff / step
