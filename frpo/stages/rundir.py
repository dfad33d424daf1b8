"""Run directories, written atomically and skipped when complete.

Layout of a finished run ``runs/<profile>/<stage>/<run_name>/``::

    spec.json       the full spec (frpo.stages.spec.to_dict)
    metrics.json    the run's final numbers
    ...             curves (CSV/JSON), the model it produced (``model/``), trajectories
    COMPLETE        written last; its presence is what "complete" means

A run is built in ``<stage>/.tmp-<run_name>-<pid>/`` and renamed into place only after
``COMPLETE`` is written there, so a killed process leaves at most a ``.tmp-*`` directory, which
nothing counts and the next attempt deletes.

Under ``accelerate launch`` every process runs the body (training needs them all), but only
rank 0 (``RANK`` unset or 0) writes the run directory; other ranks work in a scratch directory
that is deleted afterwards. Rank 0 builds under a per-run lock (:mod:`frpo.locks`), so two
processes asking for the same run (concurrent notebooks) build it once.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from frpo.locks import LOCKS_DIR, exclusive
from frpo.paths import runs_dir
from frpo.stages.spec import run_name, to_dict

COMPLETE = "COMPLETE"


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


def run_once(spec: Any, profile: str, body: Callable[[Path], dict]) -> Path:
    """Run ``body(tmp_dir) -> metrics`` unless ``spec``'s run is already complete.

    ``body`` writes its artefacts into ``tmp_dir``; this function adds ``spec.json`` first and
    ``metrics.json`` + ``COMPLETE`` last, then renames the directory into place. Returns the
    finished run's path either way.
    """
    final = run_path(spec, profile)
    if is_complete(final):
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
        if is_complete(final):
            return final
        return _build(spec, final, body)


def _build(spec: Any, final: Path, body: Callable[[Path], dict]) -> Path:
    """Build ``final`` from ``body`` in a temporary directory, then rename it into place."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():  # an incomplete leftover at the final name (should not happen) is junk
        shutil.rmtree(final)
    for stale in final.parent.glob(f".tmp-{final.name}-*"):
        if not _pid_alive(stale.name.rsplit("-", 1)[-1]):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        write_json(tmp / "spec.json", to_dict(spec))
        t0 = time.perf_counter()
        metrics = dict(body(tmp))
        metrics.setdefault("frpo/wall_seconds", time.perf_counter() - t0)
        write_json(tmp / "metrics.json", metrics)
        (tmp / COMPLETE).write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) + "\n")
        try:
            os.rename(tmp, final)
        except OSError:
            if not is_complete(final):  # someone else finished it first: theirs stands
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _pid_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def load_metrics(path: Path) -> dict:
    """``metrics.json`` of a complete run (ValueError if the run is not complete)."""
    if not is_complete(path):
        raise ValueError(f"run {path} is not complete")
    return read_json(Path(path) / "metrics.json")
