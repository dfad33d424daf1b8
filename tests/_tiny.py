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
