"""Execute a profile's notebooks with papermill, in dependency order, with a cache.

Layout under ``runs/<profile>/``::

    manifest.json              cache keys, status and wall time of every notebook
    notebooks/NN_topic.ipynb   the executed notebook (what the book renders)
    NN_topic/                  the notebook's run_dir: metrics.json, figures, artefacts

A notebook is re-executed only when its cache key changes. The key hashes the notebook's source
(cells' type, source and tags; outputs ignored), its resolved parameters, the ``frpo/`` package
sources and the keys of the notebooks it depends on; so a warm rebuild reuses every executed copy.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from frpo import paths
from frpo.book import envinfo
from frpo.book.plan import describe
from frpo.book.profiles import Profile, load_profile, match_notebook

KERNEL = "python3"
MANIFEST = "manifest.json"


class NotebookFailed(RuntimeError):
    """A notebook raised; the message holds the cell's error and the partial notebook's path."""


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def package_hash(package_dir: Path | None = None) -> str:
    """SHA-256 over the relative paths and contents of every ``*.py`` file of the package."""
    root = Path(package_dir) if package_dir else Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        if "__pycache__" in f.parts:
            continue
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
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


def profile_dir(profile: str, runs_root: Path | None = None) -> Path:
    """``<runs_root>/<profile>`` (created); default ``frpo.paths.runs_dir(profile)``."""
    if runs_root is None:
        return paths.runs_dir(profile)
    out = Path(runs_root) / profile
    out.mkdir(parents=True, exist_ok=True)
    return out


def _as_param_path(path: Path) -> str:
    """Relative to the repository root when inside it (``frpo.paths.resolve`` reverses this)."""
    try:
        return path.resolve().relative_to(paths.repo_root().resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def resolved_params(profile: str, notebook: str, params: dict, out_dir: Path) -> dict[str, Any]:
    """The parameters papermill injects: the profile's values plus ``profile`` and ``run_dir``."""
    return {**params, "profile": profile, "run_dir": _as_param_path(out_dir / notebook)}


MAX_INVOCATIONS = 20
"""How many past ``book run`` invocations the manifest keeps (cold vs warm wall times)."""


def read_manifest(out_dir: Path) -> dict:
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        return {"notebooks": {}}
    data = json.loads(path.read_text())
    data.setdefault("notebooks", {})
    return data


def _write_manifest(out_dir: Path, manifest: dict) -> None:
    path = Path(out_dir) / MANIFEST
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


@dataclass
class NotebookRun:
    """What happened to one notebook: ``executed``, ``cached`` (reused) or ``planned`` (dry run)."""

    name: str
    status: str
    key: str
    params: dict[str, Any]
    output: Path
    wall_s: float | None = None
    reason: str = ""
    lines: list[str] = field(default_factory=list)


def _stale_reason(entry: dict | None, parts: dict[str, str], output: Path) -> str:
    if not entry:
        return "never executed"
    if entry.get("status") != "ok":
        return f"last run {entry.get('status', 'unknown')}"
    if not output.is_file():
        return "executed copy missing"
    for what in ("source", "params", "package", "deps"):
        if entry.get("hashes", {}).get(what) != parts[what]:
            return f"{what} changed"
    return ""


def _execute(name, path, partial, params, cwd, progress, results: queue.Queue) -> None:
    """papermill-execute ``path`` into ``partial``, then put ``(name, exception or None)`` on
    ``results``. Runs in a daemon thread, one kernel each."""
    import papermill

    try:
        papermill.execute_notebook(
            str(path),
            str(partial),
            parameters=params,
            kernel_name=KERNEL,
            cwd=str(cwd or paths.repo_root()),
            progress_bar=progress,
        )
    except BaseException as err:  # noqa: BLE001 - handed to the main thread, which reports it
        results.put((name, err))
        return
    results.put((name, None))


def _next_result(results: queue.Queue) -> tuple[str, BaseException | None]:
    """The next finished notebook (blocks; Ctrl-C interrupts the wait)."""
    return results.get()


def _summarise_failure(err: Exception, partial: Path) -> str:
    from papermill.exceptions import PapermillExecutionError, strip_color

    if isinstance(err, PapermillExecutionError):
        tb = [strip_color(line) for line in err.traceback]
        tail = "\n".join("\n".join(tb).splitlines()[-12:])
        return (
            f"cell {err.cell_index} (In [{err.exec_count}]) raised {err.ename}: {err.evalue}\n"
            f"{tail}\npartially executed notebook: {partial}"
        )
    return f"{type(err).__name__}: {err}\npartially executed notebook: {partial}"


def run_profile(
    profile: str | Profile,
    *,
    only: list[str] | None = None,
    dry_run: bool = False,
    force: bool = False,
    runs_root: Path | None = None,
    profiles_dir: Path | None = None,
    notebooks_dir: Path | None = None,
    cwd: Path | None = None,
    progress: bool = True,
    jobs: int = 1,
    log=print,
) -> list[NotebookRun]:
    """Execute (or, with ``dry_run``, describe) a profile's notebooks in dependency order.

    ``only`` names notebooks (``NN`` or full name); their upstream dependencies come along and
    are reused when up to date. ``force`` re-executes the selection regardless of the cache.
    Notebooks run with kernel ``python3`` and cwd ``cwd`` (default: the repository root).
    ``jobs`` notebooks whose dependencies are done execute at once (one kernel each; a stage run
    two of them need is built once, see :mod:`frpo.locks`). A failing notebook stops the run with
    ``NotebookFailed``: nothing new starts, the ones already running finish and, like the ones
    before, are kept. Ctrl-C records the invocation as interrupted and stops at once (the
    kernels exit with this process; their partial notebooks stay).
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a whole number >= 1, got {jobs!r}")
    prof = (
        profile
        if isinstance(profile, Profile)
        else load_profile(profile, profiles_dir=profiles_dir, notebooks_dir=notebooks_dir)
    )
    selection = prof.select(only)
    # --force applies to what was asked for, not to the dependencies pulled in with it.
    asked = {match_notebook(t, prof.notebooks, prof.name) for t in only} if only else selection
    out_dir = profile_dir(prof.name, runs_root)
    manifest = read_manifest(out_dir)
    pkg = package_hash()
    keys: dict[str, str] = {}
    runs: list[NotebookRun] = []

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
        stale = _stale_reason(manifest["notebooks"].get(name), parts, output)
        if force and not stale and name in asked:
            stale = "forced"
        plan.append((name, spec, params, parts, output, stale))

    if dry_run:
        for name, _spec, params, _parts, output, stale in plan:
            lines = describe(name, params)
            action = f"would execute ({stale})" if stale else "up to date, would reuse"
            log(f"[{prof.name}] {name}: {action} -> {output}")
            for line in lines:
                log(f"    {line}")
            runs.append(NotebookRun(name, "planned", keys[name], params, output, reason=stale))
            runs[-1].lines = lines
        return runs

    from tqdm.auto import tqdm

    if any(stale for *_, stale in plan):
        prof.run_setup()  # e.g. the rehearsal's stand-ins, before any kernel starts
        manifest["environment"] = envinfo.environment()
    manifest["profile"] = prof.name
    invocation = {
        "started_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "only": list(only or []),
        "force": bool(force),
        "jobs": jobs,
        "executed": [],
        "reused": [],
        "status": "running",
    }
    history = manifest.setdefault("invocations", [])
    history.append(invocation)
    del history[:-MAX_INVOCATIONS]
    t_start = time.perf_counter()

    def close_invocation(status: str) -> None:
        invocation["status"] = status
        invocation["wall_s"] = time.perf_counter() - t_start
        _write_manifest(out_dir, manifest)

    in_plan = {item[0] for item in plan}
    pending = list(plan)  # in dependency order
    finished: set[str] = set()  # executed or reused in this invocation
    running: dict[str, tuple] = {}  # name -> (plan item, partial, start time)
    results: queue.Queue = queue.Queue()  # (name, exception or None) from the worker threads
    failure: tuple[str, str, BaseException] | None = None
    bar = tqdm(total=len(plan), desc=f"book[{prof.name}]", unit="nb", disable=not progress,
               file=sys.stderr)  # fmt: skip

    def start_ready() -> None:
        """Reuse, or start (up to ``jobs`` at once), every pending notebook whose dependencies
        are finished; in plan order, so ``jobs=1`` runs exactly the plan's sequence."""
        for item in list(pending):
            name, spec, params, _parts, output, stale = item
            if any(d in in_plan and d not in finished for d in spec.depends_on):
                continue
            if not stale:
                wall = manifest["notebooks"][name]["wall_s"]
                runs.append(NotebookRun(name, "cached", keys[name], params, output, wall))
                invocation["reused"].append(name)
                bar.write(f"{name}: up to date, reused ({wall:.1f} s when executed)")
                finished.add(name)
                pending.remove(item)
                bar.update(1)
                continue
            if len(running) >= jobs:
                continue
            bar.write(f"{name}: executing ({stale})")
            output.parent.mkdir(parents=True, exist_ok=True)
            partial = output.with_name(f"{name}.partial.ipynb")
            args = (name, spec.path, partial, params, cwd, progress and jobs == 1, results)
            running[name] = (item, partial, time.perf_counter())
            threading.Thread(target=_execute, args=args, daemon=True).start()
            pending.remove(item)
            bar.set_postfix_str(", ".join(running))

    while True:
        if failure is None:  # after a failure nothing new starts; running ones finish
            start_ready()
        if not running:
            break
        try:
            name, err = _next_result(results)
        except KeyboardInterrupt:
            # the worker threads are daemons and each kernel exits with this process, so
            # nothing is left running; finished notebooks are already in the manifest
            bar.close()
            close_invocation(f"interrupted while running {', '.join(running)}")
            raise
        (name, _spec, params, parts, output, stale), partial, t0 = running.pop(name)
        wall = time.perf_counter() - t0
        if err is not None:
            summary = _summarise_failure(err, partial)
            manifest["notebooks"][name] = {
                "status": "failed",
                "error": summary,
                "wall_s": wall,
                "finished_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            }
            _write_manifest(out_dir, manifest)
            failure = failure or (name, summary, err)
            continue
        os.replace(partial, output)
        manifest["notebooks"][name] = {
            "status": "ok",
            "key": keys[name],
            "hashes": parts,
            "params": params,
            "wall_s": wall,
            "output": output.relative_to(out_dir).as_posix(),
            "run_dir": params["run_dir"],
            "finished_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        }
        _write_manifest(out_dir, manifest)
        runs.append(NotebookRun(name, "executed", keys[name], params, output, wall, stale))
        invocation["executed"].append(name)
        finished.add(name)
        bar.update(1)
        bar.write(f"{name}: done in {wall:.1f} s")
    bar.close()
    if failure is not None:
        name, summary, err = failure
        close_invocation(f"failed at {name}")
        raise NotebookFailed(f"[{prof.name}] {name} failed: {summary}") from err
    close_invocation("ok")
    return runs
