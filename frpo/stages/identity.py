"""A stage run's identity: everything that made it, so that a run is reused only when all of it
is unchanged.

``run_identity(spec)`` is a JSON-ready dict, written to each run directory as ``identity.json``:

- ``spec``: the spec's hash (the spec itself is ``spec.json``; the hash ends the run's name);
- ``code``: the SHA-256 of every source file that shapes the run (:func:`code_files`) and their
  digest;
- ``packages``: the versions of the libraries that train and evaluate it (:data:`PACKAGES`);
- ``inputs``: the content of what it reads: the base model's weights (``base_model``: the digest
  of the cached toy model's ``checksums.json``, of a local model directory's files, or the commit
  of a hub model in the Hugging Face cache), the parent run's identity (``parent``; ``model``
  for an evaluation), and the local data files of ``Source.data`` (hub ids are recorded by name);
- ``digest``: the SHA-256 of all of the above.

A run directory is still named by its spec (:func:`frpo.stages.rundir.run_path`); a complete run
whose ``identity.json`` differs from the current identity is stale and is rebuilt
(:func:`changes` says what changed). Since a child's identity holds its parent's, a retrained
parent retrains its children.

Which code shapes a run (:func:`code_files`): the import closure, over ``frpo``'s own modules
(imports inside functions included), of the stage's runner, with three kinds of modules left out
unless the spec selects them: the other stages' runners (:data:`frpo.stages.spec.STAGES`), the
modules of other
methods (:data:`METHOD_MODULES`: a GRPO run does not depend on ``frpo/trainer.py``) and of other
sources (:data:`SOURCE_MODULES`: a toy run does not depend on the hub backend); and the modules
that only read results (:data:`READERS`) or store and find runs (:data:`KEEPERS`). So a change
to ``frpo/trainer.py`` retrains the FRPO runs and reuses the GRPO ones; a change to
``frpo/toyworld/`` retrains every toy run.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from huggingface_hub import snapshot_download, try_to_load_from_cache

from frpo.artefacts import file_sha256, listing_digest, read_checksums
from frpo.paths import resolve
from frpo.stages.sources import open_source
from frpo.stages.spec import STAGES, run_name, spec_hash, stage_of, upstream_of
from frpo.toyworld import ToyWorld, WorldConfig
from frpo.versions import package_versions

IDENTITY = "identity.json"
PACKAGES = ("torch", "transformers", "trl", "peft", "accelerate", "datasets")
RUNNERS = tuple(stage.module for stage in STAGES.values())
"""Every stage's runner module: a run's code closure starts at its own and leaves the others out."""
METHOD_MODULES = {"frpo": ("frpo.trainer", "frpo.losses"), "grpo_sam": ("frpo.stages.sam",)}
SOURCE_MODULES = {
    "toy": ("frpo.toyworld",),
    "files": ("frpo.stages.files",),
    "hub": ("frpo.stages.hub", "frpo.harness"),  # harness: the paper-scale trainer overrides
}
READERS = ("frpo.book", "frpo.analysis", "frpo.claims", "frpo.cli")
"""Modules that read results and never shape a run."""
KEEPERS = (
    "frpo.artefacts",
    "frpo.locks",
    "frpo.paths",
    "frpo.stages.rundir",
    "frpo.stages.identity",
    "frpo.stages.sweep",
)
"""Modules that store, find, lock or dispatch runs without computing anything in them: a fix to
them does not retrain runs that may have taken days."""


def package_root() -> Path:
    return Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- code


def _within(module: str, prefixes) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _module_file(module: str, root: Path) -> Path | None:
    rel = Path(*module.split("."))
    for candidate in (root.parent / rel.with_suffix(".py"), root.parent / rel / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


@functools.lru_cache(maxsize=1024)
def _imports(path: str, stamp: tuple[int, int], module: str) -> tuple[str, ...]:
    """Modules named by the import statements of one file (anywhere in it); ``stamp`` (size,
    mtime) invalidates the cache when the file changes."""
    tree = ast.parse(Path(path).read_text(), filename=path)
    is_package = path.endswith("__init__.py")
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, is_package)
            out += [base] + [f"{base}.{alias.name}" for alias in node.names]
    return tuple(out)


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def closure(roots, excluded, root: Path | None = None) -> dict[str, Path]:
    """Module -> file of ``roots`` and every module of the package they import, transitively,
    not entering ``excluded`` (module names or package prefixes); packages' ``__init__`` files
    come along (they run on import)."""
    root = root or package_root()
    name = root.name
    seen: dict[str, Path] = {}
    stack = list(roots)
    while stack:
        module = stack.pop()
        if module in seen or not _within(module, (name,)) or _within(module, excluded):
            continue
        path = _module_file(module, root)
        if path is None:  # ``from frpo.x import name``: a function, not a module
            continue
        seen[module] = path
        st = path.stat()
        stack += _imports(str(path), (st.st_size, st.st_mtime_ns), module)
        stack += _parents(module)
    return seen


def selected_modules(spec) -> tuple[list[str], list[str]]:
    """``(roots, excluded)`` of the spec's code closure (see the module docstring)."""
    roots = [stage_of(spec).module]
    method = getattr(spec, "method", None)
    roots += list(METHOD_MODULES.get(method, ()))
    roots += list(SOURCE_MODULES[spec.source.kind])
    excluded = [m for m in RUNNERS if m not in roots]
    for table in (METHOD_MODULES, SOURCE_MODULES):
        excluded += [m for mods in table.values() for m in mods if m not in roots]
    return roots, excluded + list(READERS) + list(KEEPERS)


def code_files(spec, root: Path | None = None) -> dict[str, str]:
    """Repository-relative path -> SHA-256 of every source file that shapes ``spec``'s run."""
    root = root or package_root()
    roots, excluded = selected_modules(spec)
    files = closure(roots, excluded, root).values()
    return {p.relative_to(root.parent).as_posix(): file_sha256(p) for p in sorted(files)}


# ----------------------------------------------------------------------------- inputs


def path_digest(path: Path) -> str:
    """SHA-256 of a file, or :func:`~frpo.artefacts.listing_digest` of a directory's files."""
    path = Path(path)
    if path.is_file():
        return file_sha256(path)
    files = sorted(f for f in path.rglob("*") if f.is_file() and ".cache" not in f.parts)
    return listing_digest({f.relative_to(path).as_posix(): file_sha256(f) for f in files})


def hub_revision(model_id: str) -> str:
    """The commit of ``model_id`` the Hugging Face cache resolves to (fetching only its
    ``config.json`` when online); ValueError naming the model when it is neither cached nor
    reachable."""
    try:
        snapshot = snapshot_download(model_id, allow_patterns=["config.json"])
    except Exception as err:  # noqa: BLE001 - offline, gated, missing: one message for all
        raise ValueError(
            f"base model {model_id!r} is not in the Hugging Face cache and cannot be fetched "
            f"({type(err).__name__}); fetch it with `hf download {model_id}` or point "
            "world.model at a local copy"
        ) from None
    return Path(snapshot).name


def base_model_input(source, backend) -> dict[str, str]:
    """What the base model is, by content (where it lies is in the spec, or for the toy world
    in the cache folder, and is not part of the identity)."""
    path = str(backend.base_model_path())
    if source.kind == "toy":
        return {"sha256": listing_digest(read_checksums(Path(path)))}
    local = resolve(path)
    if local.exists():
        return {"sha256": path_digest(local)}
    return {"revision": hub_revision(path)}


def data_inputs(source) -> dict[str, dict[str, str]]:
    """Each ``Source.data`` entry: a local file or directory by content, a hub id by name."""
    out = {}
    for key, value in source.data:
        local = resolve(value) if value and not value.startswith(("http://", "https://")) else None
        if local is not None and local.exists():
            out[key] = {"sha256": path_digest(local)}
        else:
            out[key] = {"id": value}  # a hub id, by name
    return out


def run_identity(spec, backend=None) -> dict[str, Any]:
    """The identity of ``spec``'s run (see the module docstring); builds nothing but the base
    model a toy source needs (its cache)."""
    backend = backend if backend is not None else open_source(spec.source)
    code = code_files(spec)
    inputs: dict[str, Any] = {"base_model": base_model_input(spec.source, backend)}
    if spec.source.data:
        inputs["data"] = data_inputs(spec.source)
    upstream = upstream_of(spec)
    if upstream is not None:
        key = stage_of(spec).upstream  # "parent", or "model" for an evaluation
        inputs[key] = {"run": run_name(upstream), "identity": run_identity(upstream)["digest"]}
    out = {
        "spec": spec_hash(spec),
        "code": {"digest": listing_digest(code), "files": code},
        "packages": package_versions(PACKAGES),
        "inputs": inputs,
    }
    out["digest"] = hashlib.sha256(json.dumps(out, sort_keys=True).encode()).hexdigest()
    return out


# ----------------------------------------------------------------------------- comparing


def _dict_changes(what: str, old: dict, new: dict) -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        if key not in old:
            out.append(f"{what} {key} added")
        elif key not in new:
            out.append(f"{what} {key} removed")
        elif old[key] != new[key]:
            out.append(f"{what} {key} changed")
    return out


def changes(old: dict | None, new: dict) -> list[str]:
    """What differs between a run's recorded identity and the current one, in words."""
    if not isinstance(old, dict) or "digest" not in old:
        return ["no identity.json (built before run identities were recorded)"]
    if old.get("digest") == new["digest"]:
        return []
    out = []
    if old.get("spec") != new["spec"]:
        out.append("spec changed")
    out += _dict_changes("code", old.get("code", {}).get("files", {}), new["code"]["files"])
    for name, version in new["packages"].items():
        before = old.get("packages", {}).get(name)
        if before != version:
            out.append(f"{name} {before} -> {version}")
    out += _dict_changes("input", old.get("inputs", {}), new["inputs"])
    return out or ["identity changed"]


# ----------------------------------------------------------------------------- dry run


def _planned_base(source) -> str:
    """The base model's checksum where it is known without building or hashing anything."""
    if source.kind == "toy":
        path = ToyWorld(WorldConfig(seed=source.seed, size=source.size)).base_model_dir()
        try:
            return listing_digest(read_checksums(path))[:12]
        except ValueError:
            return "pending (the toy base model is pretrained on first use)"
    if resolve(source.model).exists():
        return f"pending ({source.model} is hashed when the run starts)"
    cached = try_to_load_from_cache(source.model, "config.json")
    if isinstance(cached, str):
        return f"{source.model}@{Path(cached).parent.name[:12]}"
    return f"pending ({source.model}: its commit is read from the Hugging Face cache at the start)"


def planned_identity(spec) -> str:
    """One line on a run's identity for ``frpo book run --dry-run``: the digest of the code that
    shapes it, the base model's checksum (or ``pending (<when it is known>)``) and the parent
    run; nothing is built, downloaded or hashed but source files."""
    parts = [
        f"code {listing_digest(code_files(spec))[:12]}",
        f"base model {_planned_base(spec.source)}",
    ]
    upstream = upstream_of(spec)
    if upstream is not None:
        parts.append(f"parent {run_name(upstream)}")
    return ", ".join(parts)
