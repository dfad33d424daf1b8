"""Data loaders for the paper profile: hub id or local file/URL in, ``datasets.Dataset`` out.

RL format: ``prompt`` = ``[{"role": "user", "content": ...}]`` plus reward columns
(``category``, ``answer``); SFT format: ``messages``. Each loader checks its columns and names
the missing one (ValueError).
"""

from frpo.data._io import load_source, require_columns
from frpo.data.math import load_gsm8k, load_math500, load_math_train
from frpo.data.safety import (
    load_harmbench,
    load_safety_prompts,
    load_strongreject,
    load_ultrafeedback_prompts,
)
from frpo.data.sft import load_alpaca, load_harmful_pairs, load_opencodeinstruct

__all__ = [
    "load_alpaca",
    "load_gsm8k",
    "load_harmbench",
    "load_harmful_pairs",
    "load_math500",
    "load_math_train",
    "load_opencodeinstruct",
    "load_safety_prompts",
    "load_source",
    "load_strongreject",
    "load_ultrafeedback_prompts",
    "require_columns",
]
