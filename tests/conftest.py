"""Test-wide settings: nothing may reach a model or dataset hub; CPU numerics pinned to AVX2
(frpo.numerics) before anything imports torch, as the ``frpo`` command line does."""

import os

from frpo import numerics

numerics.pin()

for _name, _value in {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "WANDB_DISABLED": "true",
    "TOKENIZERS_PARALLELISM": "false",
    # one BLAS thread: contended OpenBLAS threads made SLSQP 20x slower on a 2-core machine
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
}.items():
    os.environ.setdefault(_name, _value)
