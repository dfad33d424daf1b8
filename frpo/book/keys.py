"""What a notebook's executed copy depends on: its cache key, and the checksums of what it wrote.

The key hashes the notebook's source (cells' type, source and tags; outputs ignored), its
resolved parameters, the ``frpo/`` package sources and the keys of the notebooks it depends on.
A recorded execution is reused while its key holds and its executed copy and every file of its
run_dir still match the checksums recorded when it ran (:func:`stale_reason`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frpo import paths
from frpo.artefacts import file_sha256
from frpo.book.profiles import NotebookSpec, Profile, match_notebook


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


REFERENCE_DIR = "reference"  # frpo.reference.REFERENCE_DIR (not imported: keys stays light)


def package_hash(package_dir: Path | None = None) -> str:
    """SHA-256 over the relative paths and contents of every ``*.py`` file of the package, and
    of the data files the package reads beside it (``reference/*.json``: the reference build
    notebook 10 compares with and the power analysis's pilot), so a new reference re-executes
    the notebooks that read it."""
    root = Path(package_dir) if package_dir else Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    files = [f for f in sorted(root.rglob("*.py")) if "__pycache__" not in f.parts]
    files += sorted((root.parent / REFERENCE_DIR).glob("*.json"))
    for f in files:
        h.update(f.relative_to(root.parent).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def source_hash(notebook: Path) -> str:
    """SHA-256 of a notebook's cells (type, source, tags), ignoring outputs and counters."""
    nb = json.loads(Path(notebook).read_text())
    cells = []
    for cell in nb.get("cells", []):
        src = cell.get("source", "")
        src = "".join(src) if isinstance(src, list) else src
        tags = sorted(cell.get("metadata", {}).get("tags", []))
        cells.append([cell.get("cell_type"), src, tags])
    return _sha(json.dumps(cells).encode())


def params_hash(params: dict[str, Any]) -> str:
    return _sha(json.dumps(params, sort_keys=True, default=str).encode())


def _as_param_path(path: Path) -> str:
    """Relative to the repository root when inside it (``frpo.paths.resolve`` reverses this)."""
    try:
        return path.resolve().relative_to(paths.repo_root().resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def resolved_params(profile: str, notebook: str, params: dict, out_dir: Path) -> dict[str, Any]:
    """The parameters papermill injects: the profile's values plus ``profile`` and ``run_dir``."""
    return {**params, "profile": profile, "run_dir": _as_param_path(out_dir / notebook)}


# ----------------------------------------------------------------------------- planning


@dataclass
class Planned:
    """One notebook of the plan: its cache key (and parts), output and why it would execute."""

    name: str
    spec: NotebookSpec
    params: dict[str, Any]
    parts: dict[str, str]
    key: str
    output: Path
    stale: str
    seen: tuple = ()
    """(finished_at, sha256) of its manifest entry when planned: a newer entry that is up to
    date means another ``book run`` executed it meanwhile."""


def output_checksums(run_dir: Path) -> dict[str, str]:
    """SHA-256 of every file a notebook wrote to its run_dir (relative paths)."""
    run_dir = paths.resolve(run_dir)
    if not run_dir.is_dir():
        return {}
    files = sorted(f for f in run_dir.rglob("*") if f.is_file())
    return {f.relative_to(run_dir).as_posix(): file_sha256(f) for f in files}


def _damage(entry: dict, output: Path) -> str:
    """Why a recorded execution cannot be trusted any more, or ""."""
    if "sha256" not in entry:
        return "no checksum recorded (executed before checksums were kept)"
    if entry["sha256"] != file_sha256(output):
        return "executed copy damaged (it does not match its checksum)"
    run_dir = paths.resolve(entry.get("run_dir", ""))
    for rel, sha in sorted(entry.get("outputs", {}).items()):
        if not (run_dir / rel).is_file() or file_sha256(run_dir / rel) != sha:
            return f"output {rel} damaged or missing"
    return ""


def stale_reason(entry: dict | None, parts: dict[str, str], output: Path) -> str:
    """Why a notebook must execute again ("" when its executed copy can be reused)."""
    if not entry:
        return "never executed"
    if entry.get("status") != "ok":
        return f"last run {entry.get('status', 'unknown')}"
    if not output.is_file():
        return "executed copy missing"
    for what in ("source", "params", "package", "deps"):
        if entry.get("hashes", {}).get(what) != parts[what]:
            return f"{what} changed"
    return _damage(entry, output)


def plan_profile(prof: Profile, only, force: bool, out_dir: Path, manifest: dict):
    """The notebooks to consider, in dependency order, each with its key and stale reason."""
    selection = prof.select(only)
    # --force applies to what was asked for, not to the dependencies pulled in with it.
    asked = {match_notebook(t, prof.notebooks, prof.name) for t in only} if only else selection
    pkg = package_hash()
    keys: dict[str, str] = {}
    plan = []
    for name in selection:
        spec = prof.notebooks[name]
        params = resolved_params(prof.name, name, spec.params, out_dir)
        parts = {
            "source": source_hash(spec.path),
            "params": params_hash(params),
            "package": pkg,
            "deps": _sha(json.dumps([keys[d] for d in spec.depends_on]).encode()),
        }
        keys[name] = _sha(json.dumps(parts, sort_keys=True).encode())
        output = out_dir / "notebooks" / f"{name}.ipynb"
        entry = manifest["notebooks"].get(name) or {}
        stale = stale_reason(entry, parts, output)
        if force and not stale and name in asked:
            stale = "forced"
        seen = (entry.get("finished_at"), entry.get("sha256"))
        plan.append(Planned(name, spec, params, parts, keys[name], output, stale, seen))
    return plan
