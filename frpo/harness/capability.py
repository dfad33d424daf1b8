"""What this machine can run: the checks that switch the GPU-only parts of the paper path.

The paper profile's code path is the same on a GPU node and on a CPU: only the parts that need
a GPU library are switched, and only by these checks (never by a profile flag), so a CPU
rehearsal of the paper profile (``profiles/rehearsal.yaml``) runs exactly the code a GPU node
runs, minus what :class:`Capabilities` says is missing:

========================  =====================================  ============================
part                      on when                                else
========================  =====================================  ============================
vLLM generation           CUDA and ``vllm`` imports              transformers ``generate``
bf16 weights and compute  CUDA with bf16 support                 float32
lm-eval / EvalPlus model  vLLM as above                          their ``hf`` backends
========================  =====================================  ============================

(flash-attention is chosen in :mod:`frpo.harness.overrides`; DeepSpeed only under ``accelerate
launch`` with a DeepSpeed config, see :mod:`frpo.stages.launch`.)
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True)
class Capabilities:
    """What the paper path may use here (see the module docstring)."""

    cuda: bool
    """A CUDA device is visible to torch."""
    bf16: bool
    """bf16 weights and compute (a CUDA device that supports bf16)."""
    vllm: bool
    """vLLM generation (CUDA and the ``vllm`` package)."""

    @property
    def dtype(self) -> str:
        """The weights' dtype name for every model of the paper path."""
        return "bfloat16" if self.bf16 else "float32"


GPU_NODE = Capabilities(cuda=True, bf16=True, vllm=True)
"""A GPU node with the paper environment (``environment-gpu.yml``): everything on."""


def detect() -> Capabilities:
    """The capabilities of this process's machine (cheap: no model is loaded)."""
    import torch

    cuda = torch.cuda.is_available()
    bf16 = cuda and torch.cuda.is_bf16_supported()
    vllm = cuda and importlib.util.find_spec("vllm") is not None
    return Capabilities(cuda=cuda, bf16=bf16, vllm=vllm)


def describe(caps: Capabilities) -> str:
    """One line saying which GPU-only parts are on, e.g. for a run's log."""
    return (
        f"cuda={caps.cuda}, dtype={caps.dtype}, generation="
        f"{'vllm' if caps.vllm else 'transformers'}"
    )
