"""Reading a data set from the hub or from a file, and checking its columns.

Every loader in :mod:`frpo.data` takes a ``source`` that is either a hub id (``"openai/gsm8k"``)
or a local path / URL to a ``.parquet``, ``.json``, ``.jsonl`` or ``.csv`` file. Both go through
``datasets.load_dataset``.

A hub id whose files were downloaded once (``hf download --repo-type dataset <id>``) is read
from that local copy (:func:`local_snapshot`), with its configs and splits, and needs no
network: ``datasets`` itself cannot open a hub id offline from the hub cache alone (it looks
for its own prepared cache, which only an online ``load_dataset`` writes). Other hub ids are
reached with network access (the tests never do).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from datasets import Dataset, load_dataset

_FORMATS = {".parquet": "parquet", ".json": "json", ".jsonl": "json", ".csv": "csv"}


def file_format(source: str) -> str | None:
    """The ``datasets`` builder for a file path or URL (by extension), or None for a hub id."""
    path = str(source).split("?", 1)[0]
    for ext, builder in _FORMATS.items():
        if path.lower().endswith(ext):
            return builder
    if str(source).startswith(("http://", "https://")):
        raise ValueError(
            f"cannot tell the format of URL {source!r}: expected one of {', '.join(_FORMATS)}"
        )
    if os.path.exists(path):
        raise ValueError(
            f"cannot tell the format of file {source!r}: expected one of {', '.join(_FORMATS)}"
        )
    return None


def local_snapshot(repo_id: str) -> str | None:
    """The directory of a downloaded copy of hub dataset ``repo_id`` (its latest snapshot in
    the Hugging Face cache), or None when it was never downloaded. No network is used."""
    if file_format(repo_id) is not None or str(repo_id).startswith((".", "/", "~")):
        return None
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return snapshot_download(str(repo_id), repo_type="dataset", local_files_only=True)
    except (LocalEntryNotFoundError, ValueError, OSError):
        return None


def hub_path(source: str) -> str:
    """What ``datasets.load_dataset`` should open for hub id ``source``: its downloaded copy
    when there is one (:func:`local_snapshot`), else the id itself."""
    return local_snapshot(source) or source


def load_source(
    source: str | os.PathLike, *, split: str = "train", config: str | None = None
) -> Dataset:
    """A ``datasets.Dataset`` from a hub id (with ``config`` and ``split``) or a file/URL.

    A file or URL is read as one ``train`` split whatever ``split`` says (a parquet of the
    authors' prompts, a HarmBench CSV). A local path that does not exist raises ValueError. A
    downloaded hub id is read from its local copy (:func:`hub_path`).
    """
    source = str(source)
    builder = file_format(source)
    if builder is not None:
        is_url = source.startswith(("http://", "https://"))
        if not is_url and not Path(source).is_file():
            raise ValueError(f"data file {source!r} does not exist")
        return load_dataset(builder, data_files=source, split="train")
    if source.startswith((".", "/", "~")):
        raise ValueError(f"data file {source!r} does not exist")
    return load_dataset(hub_path(source), config, split=split)


def require_columns(ds: Dataset, columns: Iterable[str], source: str | os.PathLike) -> None:
    """Raise ValueError naming the first missing column and the source it is missing from."""
    have = set(ds.column_names)
    for column in columns:
        if column not in have:
            raise ValueError(
                f"column {column!r} missing from {source!s} (it has: {', '.join(sorted(have))})"
            )


def user_prompt(text: str) -> list[dict[str, str]]:
    """A conversational RL prompt: ``[{"role": "user", "content": text}]``."""
    return [{"role": "user", "content": text}]


def sft_messages(user: str, assistant: str) -> list[dict[str, str]]:
    """A conversational SFT example: one user turn, one assistant turn."""
    return [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]


def take(ds: Dataset, n: int | None, seed: int = 0) -> Dataset:
    """The first ``n`` rows after a seeded shuffle (all rows when ``n`` is None or too large)."""
    if n is None or n >= len(ds):
        return ds
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return ds.shuffle(seed=seed).select(range(n))
