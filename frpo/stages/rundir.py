"""Run directories: written atomically, reused only when complete, current and undamaged.

Layout of a finished run ``runs/<profile>/<stage>/<run_name>/``::

    spec.json       the full spec (frpo.stages.spec.to_dict)
    identity.json   what made the run: spec, code, library versions, inputs (frpo.stages.identity)
    metrics.json    the run's final numbers
    model/          the model it trained (training runs; the model a later run reads, MODEL_DIR)
    ...             curves (CSV/JSON), trajectories, answers
    checksums.json  the SHA-256 of every file above (frpo.artefacts)
    COMPLETE        written last; its presence is what "complete" means

A run is built in ``<stage>/.tmp-<run_name>-<host>-<pid>/`` and renamed into place only after
``COMPLETE`` is written there, so a killed process leaves at most a ``.tmp-*`` directory, which
nothing counts and the next build in that folder deletes.

A complete run is reused only when its ``identity.json`` equals the current identity of its spec
and every file matches ``checksums.json``; otherwise it is rebuilt, with one line on stderr
saying why (``frpo: rebuilding <run>: code frpo/trainer.py changed``). Reading a run's metrics
(:func:`load_metrics`) checks the file first: a damaged one is an error naming it and the
command that rebuilds the run.

A run that reads another run's model (a downstream run's parent, an evaluated model) reads it
only once that run is built and current (:func:`model_of`); :func:`frpo.stages.sweep.run_stage`
builds the upstream run first.

Under ``accelerate launch`` every process runs the body (training needs them all), but only
rank 0 (``RANK`` unset or 0) writes the run directory; other ranks work in a scratch directory
that is deleted afterwards. Rank 0 builds under a per-run lock (:mod:`frpo.locks`), so two
processes asking for the same run (concurrent notebooks) build it once.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from frpo.artefacts import (
    damaged_files,
    move_into_place,
    read_verified_json,
    remove_dead_tmp,
    tmp_dir,
    write_checksums,
)
from frpo.locks import LOCKS_DIR, exclusive
from frpo.paths import runs_dir
from frpo.stages.identity import IDENTITY, changes, run_identity
from frpo.stages.spec import STAGES, run_name, to_dict, upstream_of

COMPLETE = "COMPLETE"
MODEL_DIR = "model"


def run_path(spec: Any, profile: str) -> Path:
    """Where ``spec``'s finished run lives (it may not exist yet)."""
    return runs_dir(profile) / type(spec).stage / run_name(spec)


def is_complete(path: Path) -> bool:
    """A directory counts as a run only when its ``COMPLETE`` marker is there."""
    return (Path(path) / COMPLETE).is_file()


def write_json(path: Path, obj: Any) -> None:
    """JSON with sorted keys, written to a temporary name then renamed (atomic per file)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def _jsonable(x: Any) -> Any:
    if hasattr(x, "item"):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def rebuild_command(path: Path) -> str:
    """The command that rebuilds the run at ``path`` (from its own ``spec.json``)."""
    path = Path(path)
    stage = STAGES.get(path.parent.name)
    module = stage.module if stage else "frpo.stages.sweep"
    profile = path.parent.parent.name
    return f"python -m {module} --spec {path / 'spec.json'} --profile {profile}"


def stale_reason(path: Path, identity: dict) -> str | None:
    """None when ``path`` is not a complete run; "" when it can be reused (complete, current
    identity, every file matching its checksum); else why not."""
    path = Path(path)
    if not is_complete(path):
        return None
    recorded = None
    if (path / IDENTITY).is_file():
        try:
            recorded = read_json(path / IDENTITY)
        except (OSError, ValueError):
            return f"damaged: {IDENTITY} is unreadable"
    changed = changes(recorded, identity)
    if changed:
        more = f" and {len(changed) - 4} more" if len(changed) > 4 else ""
        return ", ".join(changed[:4]) + more
    damaged = damaged_files(path)
    return "damaged: " + "; ".join(damaged) if damaged else ""


def model_of(spec: Any, profile: str, backend) -> str:
    """The model ``spec``'s run reads: its upstream run's saved model (``<run>/model``), or the
    source's base model (pi_ref) when it has none.

    ValueError, naming the command that builds it, when the upstream run is not built, or not
    current (its identity changed, or a file is damaged): :func:`frpo.stages.sweep.run_stage`
    builds upstream runs first.
    """
    upstream = upstream_of(spec)
    if upstream is None:
        return str(backend.base_model_path())
    path = run_path(upstream, profile)
    reason = stale_reason(path, run_identity(upstream))
    if reason == "":
        return str(path / MODEL_DIR)
    state = "is not built" if reason is None else f"is not current ({reason})"
    raise ValueError(
        f"{run_name(spec)} reads the model of {run_name(upstream)}, which {state}: build that "
        "run first (frpo.stages.sweep.run_stage(spec) builds both, as does `python -m "
        "frpo.stages.sweep --specs <file>` with both specs in it)"
    )


def run_once(spec: Any, profile: str, body: Callable[[Path], dict]) -> Path:
    """Run ``body(tmp_dir) -> metrics`` unless ``spec``'s run is complete and current.

    ``body`` writes its artefacts into ``tmp_dir``; this function adds ``spec.json`` and
    ``identity.json`` first, ``metrics.json``, ``checksums.json`` and ``COMPLETE`` last, then
    renames the directory into place (replacing a stale or damaged run). Returns the finished
    run's path either way.
    """
    final = run_path(spec, profile)
    identity = run_identity(spec)
    reason = stale_reason(final, identity)
    if reason == "":
        return final
    rank = int(os.environ.get("RANK", "0"))
    if rank != 0:  # accelerate/torchrun worker: train along, but only rank 0 writes the run
        scratch = Path(tempfile.mkdtemp(prefix=f"frpo-rank{rank}-"))
        try:
            body(scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return final
    # one builder per run: a concurrent asker (another notebook, --jobs) waits, then reuses it
    # runs/<profile>/.locks/<stage>-<run_name>.lock
    with exclusive(final.parent.parent / LOCKS_DIR / f"{final.parent.name}-{final.name}.lock"):
        reason = stale_reason(final, identity)
        if reason == "":
            return final
        if reason:
            print(f"frpo: rebuilding {final}: {reason}", file=sys.stderr, flush=True)
        return _build(spec, final, body, identity)


def _build(spec: Any, final: Path, body: Callable[[Path], dict], identity: dict) -> Path:
    """Build ``final`` from ``body`` in a temporary directory, then rename it into place."""
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_tmp(final.parent)
    tmp = tmp_dir(final)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        write_json(tmp / "spec.json", to_dict(spec))
        write_json(tmp / IDENTITY, identity)
        t0 = time.perf_counter()
        metrics = dict(body(tmp))
        metrics.setdefault("frpo/wall_seconds", time.perf_counter() - t0)
        write_json(tmp / "metrics.json", metrics)
        write_checksums(tmp, skip=(COMPLETE,))
        (tmp / COMPLETE).write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) + "\n")
        move_into_place(tmp, final, lambda p: stale_reason(p, identity) == "")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def load_metrics(path: Path) -> dict:
    """``metrics.json`` of a complete run, checked against its checksum (ValueError if the run
    is not complete; :class:`~frpo.artefacts.DamagedArtefact`, naming the file and the command
    that rebuilds the run, if it is damaged)."""
    if not is_complete(path):
        raise ValueError(f"run {path} is not complete; build it with {rebuild_command(path)}")
    repair = f"rebuild the run with `{rebuild_command(path)}`"
    return read_verified_json(Path(path), "metrics.json", repair)
