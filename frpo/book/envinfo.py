"""The software and hardware a profile ran on, recorded in the manifest for the book's
reproducibility page. Reads metadata only: imports no heavy package."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess

from frpo import numerics
from frpo.versions import package_versions

PACKAGES = (
    "frpo",
    "torch",
    "transformers",
    "trl",
    "accelerate",
    "peft",
    "datasets",
    "numpy",
    "scipy",
    "pandas",
    "math-verify",
    "matplotlib",
    "papermill",
    "jupyter-book",
    "vllm",
    "deepspeed",
)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def _gpus() -> list[str]:
    if not shutil.which("nvidia-smi"):
        return []
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
    except (subprocess.SubprocessError, OSError):
        return []
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def environment() -> dict:
    """Python, OS, CPU, memory, GPUs and package versions of this process's environment."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "gpus": _gpus(),
        "packages": package_versions(PACKAGES),
        "numerics": numerics.state(),
    }
