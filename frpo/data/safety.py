"""Safety data: the stage-1 training prompts, HarmBench, StrongREJECT, UltraFeedback prompts.

All return RL format: a ``prompt`` column of ``[{"role": "user", "content": ...}]`` plus the
columns the rewards and judges read (``category`` = ``"harmful"``/``"harmless"``, behaviour ids).
"""

from __future__ import annotations

import os

from datasets import Dataset

from frpo.data._io import load_source, require_columns, take, user_prompt

# The authors' training parquet labels each prompt's origin in ``ability``: WildJailbreak,
# RainbowTeaming and Aegis 2.0 are harmful; "refusal" marks the harmless OR-Bench prompts
# (paper Sec. 5.1; the labels are those of the parquet in the authors' repository).
ABILITY_CATEGORY = {
    "wildjailbreak": "harmful",
    "rainbow": "harmful",
    "aegis": "harmful",
    "refusal": "harmless",
}


def _as_prompt(value, source: str) -> list[dict[str, str]]:
    """A prompt cell as a conversation: strings are wrapped, message lists are checked."""
    if isinstance(value, str):
        return user_prompt(value)
    if (
        isinstance(value, list)
        and value
        and all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in value)
    ):
        return [{"role": str(m["role"]), "content": str(m["content"])} for m in value]
    raise ValueError(f"{source}: prompt {value!r} is neither a string nor a list of messages")


def load_safety_prompts(source: str | os.PathLike, n: int | None = None, seed: int = 0) -> Dataset:
    """The stage-1 safety prompts (parquet with ``prompt`` and ``ability`` columns).

    ``ability`` values map to ``category`` through :data:`ABILITY_CATEGORY`; rows with any
    other value are dropped. ``prompt`` may hold strings or message lists.

    Returns:
        columns ``prompt`` (conversation), ``category`` ("harmful"/"harmless"), ``ability``.
    """
    ds = load_source(source)
    require_columns(ds, ["prompt", "ability"], source)
    ds = ds.filter(lambda r: r["prompt"] is not None and r["ability"] in ABILITY_CATEGORY)
    if len(ds) == 0:
        raise ValueError(f"{source}: no row has an ability in {sorted(ABILITY_CATEGORY)}")
    ds = ds.map(
        lambda r: {
            "prompt": _as_prompt(r["prompt"], str(source)),
            "category": ABILITY_CATEGORY[r["ability"]],
        },
        remove_columns=[c for c in ds.column_names if c not in ("ability",)],
    )
    return take(ds, n, seed)


def harmbench_prompt(behavior: str, context: str | None) -> str:
    """The user turn HarmBench sends: the context, a ``---`` rule, then the behaviour."""
    if context:
        return f"{context}\n\n---\n\n{behavior}"
    return behavior


def load_harmbench(
    source: str | os.PathLike,
    functional_categories: tuple[str, ...] = ("standard", "contextual"),
) -> Dataset:
    """HarmBench behaviours (CSV: Behavior, FunctionalCategory, SemanticCategory,
    ContextString (optional), BehaviorID).

    Copyright behaviours are left out by default: HarmBench scores them with a hashing check,
    not the Llama-2 classifier. Returns ``prompt``, ``behavior``, ``context``, ``behavior_id``,
    ``functional_category``, ``semantic_category``, ``category`` (always "harmful").
    """
    ds = load_source(source)
    require_columns(
        ds, ["Behavior", "FunctionalCategory", "SemanticCategory", "BehaviorID"], source
    )
    has_context = "ContextString" in ds.column_names
    ds = ds.filter(lambda r: r["FunctionalCategory"] in functional_categories)
    if len(ds) == 0:
        raise ValueError(
            f"{source}: no behaviour has a FunctionalCategory in {functional_categories}"
        )

    def convert(r):
        context = (r["ContextString"] or "") if has_context else ""
        return {
            "prompt": user_prompt(harmbench_prompt(r["Behavior"], context)),
            "behavior": r["Behavior"],
            "context": context,
            "behavior_id": r["BehaviorID"],
            "functional_category": r["FunctionalCategory"],
            "semantic_category": r["SemanticCategory"],
            "category": "harmful",
        }

    return ds.map(convert, remove_columns=ds.column_names)


def load_strongreject(source: str | os.PathLike) -> Dataset:
    """StrongREJECT forbidden prompts (CSV: category, source, forbidden_prompt).

    Returns ``prompt``, ``forbidden_prompt``, ``sr_category`` (StrongREJECT's own category),
    ``sr_source`` and ``category`` (always "harmful", the reward's column).
    """
    ds = load_source(source)
    require_columns(ds, ["category", "source", "forbidden_prompt"], source)
    return ds.map(
        lambda r: {
            "prompt": user_prompt(r["forbidden_prompt"]),
            "forbidden_prompt": r["forbidden_prompt"],
            "sr_category": r["category"],
            "sr_source": r["source"],
            "category": "harmful",
        },
        remove_columns=ds.column_names,
    )


def load_ultrafeedback_prompts(
    source: str | os.PathLike = "HuggingFaceH4/ultrafeedback_binarized",
    split: str = "train_prefs",
    n: int | None = 15_000,
    seed: int = 0,
) -> Dataset:
    """UltraFeedback prompts for RL downstream (15k in the paper, Fig. 10).

    Reads ``prompt`` (HuggingFaceH4/ultrafeedback_binarized) or ``instruction``
    (openbmb/UltraFeedback, whose only split is ``train``). Returns ``prompt`` and
    ``category`` ("harmless": the reward is the helpfulness reward model).
    """
    ds = load_source(source, split=split)
    column = "prompt" if "prompt" in ds.column_names else "instruction"
    require_columns(ds, [column], source)
    ds = ds.filter(lambda r: isinstance(r[column], str) and r[column].strip() != "")
    ds = take(ds, n, seed)
    return ds.map(
        lambda r: {"prompt": user_prompt(r[column]), "category": "harmless"},
        remove_columns=ds.column_names,
    )
