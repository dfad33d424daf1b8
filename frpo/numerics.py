"""Pinned CPU numerics: the same toy results on every x86-64 CPU with AVX2.

A tiny model trained for a few dozen RL steps is a chaotic system: a rounding difference in the
first step grows into a different model. The rounding depends on the SIMD code paths the CPU
offers: PyTorch's own kernels dispatch on the CPU's capability (AVX-512, AVX2, none) and MKL picks
its GEMM kernels by processor. Measured on the toy world's world-property test (GRPO, 120 steps,
seed 0; ``tests/test_stages_toy.py``): held-out safety reward 0.863 with the AVX-512 paths of an
AMD EPYC, 0.951 with its AVX2 paths, 0.844 with no SIMD at all; with one thread or two, the same.

So every process that trains or evaluates on the CPU pins the code paths to AVX2, which nearly
every x86-64 CPU of the last decade has (Intel from Haswell, AMD from Excavator):

- ``ATEN_CPU_CAPABILITY=avx2``: PyTorch's vectorised kernels use their AVX2 versions;
- ``MKL_CBWR=AVX2,STRICT``: MKL's conditional numerical reproducibility, the AVX2 branch on any
  processor that supports it (Intel or AMD), independent of memory alignment;
- ``ONEDNN_MAX_CPU_ISA=AVX2``: oneDNN's kernels likewise.

The variables must be set before ``torch`` is imported, so :func:`pin` runs at the start of the
``frpo`` command line (whose notebook kernels inherit them) and in the tests' ``conftest.py``. A
value already in the environment wins; ``FRPO_NATIVE_NUMERICS=1`` turns pinning off; machines
without AVX2 (or not x86-64) run their native paths, and :func:`state` says so, for the manifest.
Verified here: an AVX-512 machine pinned to AVX2 writes a base model bit-identical to the same
machine restricted to AVX2 instructions (``MKL_ENABLE_INSTRUCTIONS=AVX2``), the closest stand-in
for another CPU this workplace has; Intel CPUs and AVX2-only machines were not available to test.
"""

from __future__ import annotations

import os
import platform

PINNED = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2,STRICT",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
}
OPT_OUT = "FRPO_NATIVE_NUMERICS"


def cpu_flags() -> set[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def can_pin() -> bool:
    """True on an x86-64 machine whose CPU has AVX2 and FMA (the AVX2 code paths' needs)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    return {"avx2", "fma"} <= cpu_flags()


def pin(environ: dict | None = None) -> dict[str, str]:
    """Set the :data:`PINNED` variables in ``environ`` (default ``os.environ``) where they are not
    set already; returns what was set. Nothing on a machine that cannot pin or with
    ``FRPO_NATIVE_NUMERICS`` set."""
    env = os.environ if environ is None else environ
    if env.get(OPT_OUT) or not can_pin():
        return {}
    added = {k: v for k, v in PINNED.items() if k not in env}
    env.update(added)
    return added


def state(environ: dict | None = None) -> dict:
    """What this process's numerics are, for the manifest: pinned or native, and why."""
    env = os.environ if environ is None else environ
    values = {k: env.get(k) for k in PINNED}
    if env.get(OPT_OUT):
        mode = f"native ({OPT_OUT} set)"
    elif not can_pin():
        mode = "native (no AVX2 on this CPU, or not x86-64)"
    elif values == PINNED:
        mode = "pinned to AVX2"
    else:
        mode = "custom"
    return {"mode": mode, "variables": values}


def unpinned_note(capability: str, environ: dict | None = None) -> str:
    """One line for a notebook whose torch runs other code paths than the pinned AVX2 ones on a
    machine that could pin them (``capability``: ``torch.backends.cpu.get_cpu_capability()``);
    empty when pinned, opted out, or unable to pin."""
    env = os.environ if environ is None else environ
    if env.get(OPT_OUT) or not can_pin() or capability == "AVX2":
        return ""
    exports = " ".join(f"{k}={v}" for k, v in PINNED.items())
    return (
        f"note: this kernel runs torch's {capability} code paths, not the pinned AVX2 ones, so "
        "its numbers may differ from the reference build's; run it through `frpo book run`, or "
        f"export {exports} before starting Jupyter (frpo.numerics)"
    )
