"""The world's recipe: every number that shapes the toy world and its base model.

A :class:`WorldConfig` is frozen; its :meth:`~WorldConfig.recipe_hash` names the cached base
model, so two notebooks with equal recipes share one model and any changed field builds a new one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

# Bump when the generated language or the pretraining code changes meaning: it enters the hash.
WORLD_VERSION = 2

SIZES = ("smoke", "toy")

# Recipe presets per size: (model shape, pretraining length). Everything else is shared.
_PRESETS: dict[str, dict] = {
    "smoke": dict(
        hidden_size=48,
        num_layers=2,
        num_heads=4,
        intermediate_size=128,
        pretrain_steps=200,
        pretrain_batch=32,
        pretrain_lr=5e-3,
    ),
    "toy": dict(
        hidden_size=96,
        num_layers=4,
        num_heads=4,
        intermediate_size=256,
        pretrain_steps=700,
        pretrain_batch=48,
        pretrain_lr=3e-3,
    ),
}


@dataclass(frozen=True)
class WorldConfig:
    """Recipe of one toy world; ``size`` picks the model/pretraining preset unless overridden."""

    seed: int = 0
    """Draws the lexicon's hidden structure (step words, refusal propensities), splits, corpus."""
    size: str = "toy"
    """``"smoke"`` (seconds, for tests and the smoke profile) or ``"toy"`` (about a minute)."""
    # --- the safety propensities of the base model's training corpus (logit scale) ---
    harmful_refusal_logit: float = 0.0
    """Mean logit of P(refuse) on harmful actions; 0 gives about half refused (Mistral-like)."""
    borderline_refusal_logit: float = -1.8
    """Mean logit of P(refuse) on harmless-but-scary actions: the over-refusal (OR-Bench) case."""
    benign_refusal_logit: float = -4.0
    """Logit of P(refuse) on plain harmless actions (rare over-refusal)."""
    refusal_spread: float = 1.0
    """Std of the per-verb and per-object logit offsets (some topics are refused more often)."""
    math_correct_prob: float = 0.6
    """Probability that a corpus solution to a math / word problem / code task is correct."""
    math_boxed_prob: float = 0.7
    """Probability that a corpus math solution puts its answer in exactly one ``\\boxed{}``."""
    # --- model and pretraining (None = the size preset) ---
    hidden_size: int | None = None
    """Width of the Llama-architecture base model."""
    num_layers: int | None = None
    """Number of decoder layers."""
    num_heads: int | None = None
    """Attention heads (key/value heads = half of them: grouped-query attention)."""
    intermediate_size: int | None = None
    """Width of the SwiGLU MLP."""
    pretrain_steps: int | None = None
    """AdamW steps of pretraining on the generated corpus (one fresh batch a step)."""
    pretrain_batch: int | None = None
    """Dialogues per pretraining step."""
    pretrain_lr: float | None = None
    """Peak learning rate (linear warm-up over 5% of the steps, cosine decay to 10%)."""
    extra: dict = field(default_factory=dict, compare=False, hash=False)
    """Free-form notes; not part of the recipe hash."""

    def __post_init__(self):
        if self.size not in SIZES:
            raise ValueError(f"WorldConfig.size={self.size!r}; expected one of {SIZES}")
        for name, value in _PRESETS[self.size].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        for name in ("hidden_size", "num_layers", "num_heads", "intermediate_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"WorldConfig.{name} must be positive, got {getattr(self, name)}")
        if self.hidden_size % self.num_heads or self.num_heads % 2:
            raise ValueError(
                f"WorldConfig: hidden_size={self.hidden_size} must divide by num_heads="
                f"{self.num_heads}, and num_heads must be even (kv heads = num_heads // 2)"
            )
        for name in ("math_correct_prob", "math_boxed_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"WorldConfig.{name} must lie in [0, 1]")

    def recipe(self) -> dict:
        """Every field that changes the world or its base model, plus the world version."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        out["world_version"] = WORLD_VERSION
        return out

    def recipe_hash(self) -> str:
        """12 hex digits of the SHA-256 of the sorted JSON recipe: the cache key."""
        blob = json.dumps(self.recipe(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]
