"""Repositories written into a Hugging Face hub cache, as ``hf download`` leaves them there.

Layout (huggingface_hub's cache): ``<cache>/<kind>s--<org>--<name>/snapshots/<commit>/<files>``
and ``refs/<revision>`` holding the commit. With ``HF_HUB_CACHE`` pointing at the cache and
``HF_HUB_OFFLINE=1``, transformers, peft and huggingface_hub read these repositories by their
hub ids and revisions, and :func:`frpo.data._io.local_snapshot` finds the data sets: the paper
profile's ids then resolve with no network, which is how the rehearsal serves them.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

KINDS = ("model", "dataset")


def repo_dir(cache: Path, kind: str, repo_id: str) -> Path:
    """``<cache>/<kind>s--<org>--<name>``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return Path(cache) / f"{kind}s--{repo_id.replace('/', '--')}"


def put(cache: Path, kind: str, repo_id: str, source: Path, revisions=("main",)) -> Path:
    """Copy directory ``source`` in as repository ``repo_id``'s snapshot, named by a hash of
    its files, with ``refs/<revision>`` for each revision; the snapshot directory."""
    source = Path(source)
    files = sorted(p for p in source.rglob("*") if p.is_file())
    h = hashlib.sha1()
    for f in files:
        h.update(f.relative_to(source).as_posix().encode() + b"\0" + f.read_bytes())
    commit = h.hexdigest()
    root = repo_dir(cache, kind, repo_id)
    snap = root / "snapshots" / commit
    if snap.exists():
        shutil.rmtree(snap)
    shutil.copytree(source, snap)
    (root / "refs").mkdir(parents=True, exist_ok=True)
    for rev in revisions:
        (root / "refs" / rev).write_text(commit)
    return snap


def dataset_card(configs: dict[str, dict[str, str]]) -> str:
    """A dataset card whose front matter declares ``configs`` (config -> split -> file
    pattern), as hub dataset repositories do; ``datasets`` reads the splits from it."""
    lines = ["---", "configs:"]
    for name, splits in configs.items():
        lines += [f"- config_name: {name}", "  data_files:"]
        for split, pattern in splits.items():
            lines += [f"  - split: {split}", f"    path: {pattern}"]
    return "\n".join(lines + ["---", "", "A stand-in built by frpo.rehearsal.", ""])
