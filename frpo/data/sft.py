"""Downstream SFT data in ``messages`` format: Alpaca, nvidia/OpenCodeInstruct, and harmful
request -> compliant answer pairs (LLM-LAT/harmful-dataset) for the fine-tuning attack.

(GSM8K SFT lives in :mod:`frpo.data.math`.)
"""

from __future__ import annotations

import os

from datasets import Dataset, load_dataset

from frpo.data._io import (
    file_format,
    load_source,
    local_snapshot,
    require_columns,
    sft_messages,
    take,
)


def alpaca_user_turn(instruction: str, input_text: str | None) -> str:
    """Alpaca's instruction, followed by its optional input after a blank line."""
    return f"{instruction}\n\n{input_text}" if input_text else instruction


def load_alpaca(
    source: str | os.PathLike = "tatsu-lab/alpaca", n: int | None = None, seed: int = 0
) -> Dataset:
    """tatsu-lab/alpaca (``instruction``, ``input``, ``output``) as ``messages``."""
    ds = load_source(source)
    require_columns(ds, ["instruction", "input", "output"], source)
    ds = take(ds, n, seed)
    return ds.map(
        lambda r: {
            "messages": sft_messages(alpaca_user_turn(r["instruction"], r["input"]), r["output"])
        },
        remove_columns=ds.column_names,
    )


def load_harmful_pairs(
    source: str | os.PathLike = "LLM-LAT/harmful-dataset",
    n: int | None = None,
    seed: int = 0,
    answer_column: str = "rejected",
) -> Dataset:
    """Harmful requests paired with compliant answers, as ``messages``: the data of a
    fine-tuning attack (Qi et al. 2023; notebook 11).

    Default: LLM-LAT/harmful-dataset (4,948 rows, one ``train`` split; columns ``prompt``,
    ``rejected`` = the compliant, harmful answer, ``chosen`` = a refusal). ``answer_column``
    names the compliant answer's column in another set of the same shape. Rows whose prompt or
    answer is empty are dropped.
    """
    ds = load_source(source)
    require_columns(ds, ["prompt", answer_column], source)
    ds = ds.filter(
        lambda r: all(isinstance(r[c], str) and r[c].strip() for c in ("prompt", answer_column))
    )
    if len(ds) == 0:
        raise ValueError(f"{source}: no row has both a prompt and a {answer_column!r} answer")
    ds = take(ds, n, seed)
    return ds.map(
        lambda r: {"messages": sft_messages(r["prompt"], r[answer_column])},
        remove_columns=ds.column_names,
    )


OPENCODE_COLUMNS = ["id", "input", "output", "domain", "unit_tests", "average_test_score"]
OPENCODE_KEPT = ("id", "domain", "unit_tests")


def load_opencodeinstruct(
    source: str | os.PathLike = "nvidia/OpenCodeInstruct",
    n: int | None = 25_000,
    seed: int = 0,
    min_test_score: float | None = None,
    shuffle_buffer: int = 100_000,
) -> Dataset:
    """A seeded ``n``-row sample of nvidia/OpenCodeInstruct as ``messages`` (paper: 25k).

    Columns used: ``input`` (the user turn), ``output`` (the assistant turn); ``id``,
    ``domain`` and ``unit_tests`` (the row's tests, a list of ``assert`` lines as a string; the
    code reward and judge run them, :mod:`frpo.rewards.code`) are kept, ``average_test_score``
    (a string in the hub data) checked. The hub data (5M rows, 6.9 GB, config ``train``) is
    streamed and shuffled with a ``shuffle_buffer`` window, so a sample does not read every
    shard: from the hub, or, once downloaded (``hf download --repo-type dataset
    nvidia/OpenCodeInstruct``), from the local copy's parquet files, the same files in the same
    order (no network). A file is read whole. ``min_test_score`` keeps only rows whose unit
    tests passed at least that fraction.
    """
    source = str(source)

    def keep(r) -> bool:
        if min_test_score is None:
            return True
        try:
            return float(r["average_test_score"]) >= min_test_score
        except (TypeError, ValueError):
            return False

    if file_format(source) is None and not os.path.exists(source):
        local = local_snapshot(source)
        stream = load_dataset(local or source, "train", split="train", streaming=True)
        missing = [
            c for c in OPENCODE_COLUMNS if c not in (stream.column_names or OPENCODE_COLUMNS)
        ]
        if missing:
            raise ValueError(f"column {missing[0]!r} missing from {source}")
        stream = stream.filter(keep).shuffle(seed=seed, buffer_size=shuffle_buffer)
        rows = list(stream.take(n)) if n is not None else list(stream)
        ds = Dataset.from_list(rows)
    else:
        ds = load_source(source)
        require_columns(ds, OPENCODE_COLUMNS, source)
        ds = take(ds.filter(keep), n, seed)
    return ds.map(
        lambda r: {"messages": sft_messages(r["input"], r["output"])},
        remove_columns=[c for c in ds.column_names if c not in OPENCODE_KEPT],
    )
