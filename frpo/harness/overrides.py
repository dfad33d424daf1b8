"""GRPOConfig settings that only the paper profile switches on (GPUs, vLLM, flash-attn 2 or SDPA).

The stage runners build their GRPOConfig/FRPOConfig from the profile's parameters, then update it
with :func:`paper_trainer_overrides` when the source is ``hub``; the toy and smoke profiles
run the same code without these keys (CPU, eager attention, transformers generation). vLLM and
bf16 are switched on by what the machine can do (:mod:`frpo.harness.capability`), so the CPU
rehearsal of the paper profile takes the same path with transformers generation in float32.
"""

from __future__ import annotations

import logging
from typing import Any

from frpo.harness import capability
from frpo.harness.capability import Capabilities

log = logging.getLogger(__name__)
FLASH = "flash_attention_2"
FALLBACK = "sdpa"  # torch's scaled_dot_product_attention: in every torch build, no extra wheel


def attention_implementation() -> str:
    """``flash_attention_2`` when flash-attn imports and transformers accepts it, else ``sdpa``.

    flash-attn is an optional wheel built for one torch/CUDA pair; a model load that asks for it
    without it fails. The choice is logged (a warning when falling back, with the reason).
    """
    try:
        import flash_attn  # noqa: F401
    except (ImportError, OSError) as exc:  # absent, or built against another torch/CUDA
        log.warning("flash-attn does not import (%s): attention falls back to %s", exc, FALLBACK)
        return FALLBACK
    from transformers.utils import is_flash_attn_2_available

    if not is_flash_attn_2_available():
        log.warning(
            "flash-attn imports but transformers cannot use it (no CUDA device, or a version "
            "below 2.3.3): attention falls back to %s",
            FALLBACK,
        )
        return FALLBACK
    log.info("attention: %s (flash-attn imports)", FLASH)
    return FLASH


def paper_trainer_overrides(
    n_gpus: int,
    *,
    vllm_tensor_parallel_size: int = 1,
    vllm_gpu_memory_utilization: float = 0.3,
    caps: Capabilities | None = None,
) -> dict[str, Any]:
    """GRPOConfig keyword arguments for a paper-scale run on ``n_gpus`` GPUs (one process each).

    - vLLM generation colocated with training in every process (``vllm_mode="colocate"``), taking
      ``vllm_gpu_memory_utilization`` of each GPU (0.3 leaves room for a 7B LoRA policy and the
      judges); ``vllm_tensor_parallel_size`` must divide ``n_gpus``.
    - bf16 weights and compute, flash-attention 2 where it imports (else SDPA, see
      :func:`attention_implementation`), no KV cache during training, non-reentrant gradient
      checkpointing (required with LoRA + DeepSpeed ZeRO).
    - ``ds3_gather_for_generation`` so ZeRO-3 runs gather the weights for vLLM.

    ``caps`` (default: :func:`frpo.harness.capability.detect`) switches vLLM and bf16: without
    them (a CPU) generation is transformers' and the weights are float32.
    """
    if n_gpus < 1:
        raise ValueError(f"n_gpus must be >= 1, got {n_gpus}")
    if vllm_tensor_parallel_size < 1 or n_gpus % vllm_tensor_parallel_size:
        raise ValueError(
            f"vllm_tensor_parallel_size={vllm_tensor_parallel_size} must divide n_gpus={n_gpus}"
        )
    if not 0.0 < vllm_gpu_memory_utilization < 1.0:
        raise ValueError(
            f"vllm_gpu_memory_utilization must be in (0, 1), got {vllm_gpu_memory_utilization}"
        )
    caps = caps or capability.detect()
    return {
        "use_vllm": caps.vllm,
        "vllm_mode": "colocate",
        "vllm_tensor_parallel_size": vllm_tensor_parallel_size,
        "vllm_gpu_memory_utilization": vllm_gpu_memory_utilization,
        "bf16": caps.bf16,
        "gradient_checkpointing": True,
        "gradient_checkpointing_kwargs": {"use_reentrant": False},
        "ds3_gather_for_generation": True,
        "model_init_kwargs": {
            "dtype": caps.dtype,
            "attn_implementation": attention_implementation(),
            "use_cache": False,
        },
    }
