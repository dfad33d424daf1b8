"""Load a Hugging Face judge model once per process, from a hub id or a local directory.

Every classifier judge goes through :func:`load_judge_model`, whose module-level cache is keyed
by (class, path, adapter, dtype, device, revision): building a reward function twice, or a judge
for evaluation after training, reuses the weights already in memory.

How multi-process launches share a judge (``accelerate launch`` on 8 GPUs): each process holds
its own copy on its own GPU (``device=None`` picks ``cuda:LOCAL_RANK``); a 7-8B judge in bf16
fits beside a LoRA policy with vLLM colocated at ``vllm_gpu_memory_utilization`` <= 0.3. Where
memory is short, either score on process 0 and broadcast
(:func:`frpo.rewards.safety.on_main_process`), or serve the judge once per machine with
``vllm serve`` and point an API judge at it (:class:`frpo.judges.api.StrongRejectRubricJudge`
with ``Endpoint(base_url="http://127.0.0.1:8000/v1", api_key_env="")``).
"""

from __future__ import annotations

import os
from typing import Any

import torch

_CACHE: dict[tuple, tuple[Any, Any]] = {}

_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def default_device() -> str:
    """``cuda:LOCAL_RANK`` when a GPU is visible, else ``cpu``."""
    if torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    return "cpu"


def check_weights(path, model, tokenizer) -> None:
    """ValueError unless a judge is given its weights' ``path`` or a loaded model and tokenizer."""
    if (model is None) != (tokenizer is None):
        raise ValueError("pass both model and tokenizer, or neither")
    if model is None and path is None:
        raise ValueError(
            "pass the judge's weights (a hub id or directory; the paper's are listed in "
            "frpo.judges.catalogue), or a loaded model and tokenizer"
        )


def load_judge_model(
    path: str | os.PathLike,
    *,
    task: str = "causal",
    adapter: str | os.PathLike | None = None,
    tokenizer_path: str | os.PathLike | None = None,
    dtype: str | None = None,
    device: str | None = None,
    revision: str | None = None,
    padding_side: str = "left",
) -> tuple[Any, Any]:
    """``(model, tokenizer)`` in eval mode, cached per process.

    Args:
        path: hub id or directory of the (base) model.
        task: ``"causal"`` (AutoModelForCausalLM) or ``"sequence"``
            (AutoModelForSequenceClassification, a reward model).
        adapter: a PEFT adapter on top of ``path`` (StrongREJECT's fine-tuned judge).
        tokenizer_path: where the tokenizer lives; default the adapter, else ``path``.
        dtype: ``"bfloat16"``, ``"float16"`` or ``"float32"``; default bf16 on a GPU that has it,
            else float32 (:mod:`frpo.harness.capability`).
        device: default :func:`default_device`.
        revision: hub revision of ``path`` (the RB2 reward model has several).
        padding_side: ``"left"`` for last-token logits of a causal LM.
    """
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    if task not in ("causal", "sequence"):
        raise ValueError(f"task must be 'causal' or 'sequence', got {task!r}")
    if dtype is None:
        from frpo.harness.capability import detect

        dtype = detect().dtype
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    device = device or default_device()
    key = (task, str(path), str(adapter), dtype, device, revision, padding_side)
    if key in _CACHE:
        return _CACHE[key]
    auto = AutoModelForCausalLM if task == "causal" else AutoModelForSequenceClassification
    model = auto.from_pretrained(str(path), dtype=_DTYPES[dtype], revision=revision)
    base_config = model.config  # the tokenizer's model: an adapter repository holds no config
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    model = model.to(device).eval()
    tok_source = tokenizer_path or adapter or path
    tokenizer = AutoTokenizer.from_pretrained(
        str(tok_source),
        revision=None if (tokenizer_path or adapter) else revision,
        config=base_config,  # transformers 5 picks the tokenizer class from the model config
    )
    tokenizer.padding_side = padding_side
    if tokenizer.pad_token is None and task == "sequence":
        # A reward model reads the last non-pad token: a pad distinct from eos keeps the final
        # <|eot_id|> of the chat template readable (Llama 3.1 has no pad token).
        tokenizer.add_special_tokens({"pad_token": "<|pad|>"})
        model.resize_token_embeddings(len(tokenizer))
    elif tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"tokenizer at {tok_source} has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    _CACHE[key] = (model, tokenizer)
    return model, tokenizer


@torch.no_grad()
def last_token_logits(model: Any, batch: dict) -> torch.Tensor:
    """Next-token logits after each left-padded sequence, shape (B, V).

    Position ids are counted from each sequence's first real token (as ``generate`` does), so a
    padded row gives the same logits as the same row alone.
    """
    mask = batch["attention_mask"]  # (B, T)
    position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, T)
    out = model(input_ids=batch["input_ids"], attention_mask=mask, position_ids=position_ids)
    return out.logits[:, -1, :]


def clear_cache() -> None:
    """Forget every cached judge model (frees the memory once nothing else holds them)."""
    _CACHE.clear()


def clip_head(tokenizer: Any, text: str, max_tokens: int) -> str:
    """``text`` cut to its first ``max_tokens`` tokens, as HarmBench clips a generation
    (``evaluate_completions.py``): ``tokenizer.encode(text, max_length=max_tokens,
    truncation=True)`` with right truncation (the tokenizer's own special tokens count), decoded
    with ``skip_special_tokens=True``."""
    side = tokenizer.truncation_side
    tokenizer.truncation_side = "right"
    try:
        ids = tokenizer.encode(text, max_length=max_tokens, truncation=True)
    finally:
        tokenizer.truncation_side = side
    return tokenizer.decode(ids, skip_special_tokens=True)


def clip_tail(tokenizer: Any, text: str, max_tokens: int) -> str:
    """``text`` cut to its last ``max_tokens`` tokens, as strong_reject clips a response for its
    fine-tuned grader (``strong_reject/evaluate.py``, ``strongreject_finetuned``): the tokenizer,
    loaded with ``truncation_side="left"``, is called with ``max_length=max_tokens,
    truncation=True`` and the ids are decoded as they are (special tokens such as a BOS stay in
    the text, as upstream)."""
    side = tokenizer.truncation_side
    tokenizer.truncation_side = "left"
    try:
        ids = tokenizer(text, max_length=max_tokens, truncation=True)["input_ids"]
    finally:
        tokenizer.truncation_side = side
    return tokenizer.decode(ids)


def token_id(tokenizer: Any, token: str) -> int | None:
    """The id of ``token`` as one vocabulary entry, or None when it is not one."""
    vocab = tokenizer.get_vocab()
    return vocab.get(token)
