"""Execute a profile's notebooks with papermill, in dependency order, with a cache.

Layout under ``runs/<profile>/``::

    manifest.json              cache keys, checksums, status and wall time of every notebook
                               (frpo.book.manifest), and every `book run`
    notebooks/NN_topic.ipynb   the executed notebook (what the book renders)
    NN_topic/                  the notebook's run_dir: metrics.json, figures, artefacts

A notebook is re-executed when its cache key changes, or when its executed copy or an output of
its run_dir no longer matches the checksum recorded when it ran (damaged, deleted). The key
hashes the notebook's source (cells' type, source and tags; outputs ignored), its resolved
parameters, the ``frpo/`` package sources and the keys of the notebooks it depends on; so a
warm rebuild reuses every executed copy. (A stage run a notebook trains is reused on its own
terms, its identity: :mod:`frpo.stages.identity`.)

Steps of :func:`run_profile`: load and check the profile (:mod:`frpo.book.profiles`), plan
(:func:`frpo.book.keys.plan_profile`: each notebook's key and why it would execute), then either
describe the plan (dry run, :mod:`frpo.book.plan`) or check what the notebooks to execute need
from the machine (:mod:`frpo.book.needs`) and execute them (:class:`Execution`).
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from frpo import paths
from frpo.artefacts import file_sha256
from frpo.book import envinfo
from frpo.book.keys import (  # noqa: F401 - package_hash, source_hash: the module's API too
    Planned,
    output_checksums,
    package_hash,
    plan_profile,
    source_hash,
    stale_reason,
)
from frpo.book.manifest import (
    HOST,
    DamagedManifest,
    now,
    put_invocation,
    read_manifest,
    set_notebook,
    update_manifest,
)
from frpo.book.profiles import Profile, load_profile
from frpo.locks import LOCKS_DIR, exclusive

KERNEL = "python3"


class NotebookFailed(RuntimeError):
    """A notebook raised; the message holds the cell's error and the partial notebook's path."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (raised by the CLI's handler): handled like Ctrl-C."""


def profile_dir(profile: str, runs_root: Path | None = None) -> Path:
    """``<runs_root>/<profile>`` (created); default ``frpo.paths.runs_dir(profile)``."""
    if runs_root is None:
        return paths.runs_dir(profile)
    out = Path(runs_root) / profile
    out.mkdir(parents=True, exist_ok=True)
    return out


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


def describe_plan(prof: Profile, plan: list[Planned], log) -> list[NotebookRun]:
    """The dry run: what would execute, with every resolved parameter and launch line."""
    from frpo.book.plan import describe

    runs = []
    for p in plan:
        lines = describe(p.name, p.params)
        action = f"would execute ({p.stale})" if p.stale else "up to date, would reuse"
        log(f"[{prof.name}] {p.name}: {action} -> {p.output}")
        for line in lines:
            log(f"    {line}")
        runs.append(NotebookRun(p.name, "planned", p.key, p.params, p.output, reason=p.stale))
        runs[-1].lines = lines
    return runs


# ----------------------------------------------------------------------------- executing


class _DoneElsewhere(Exception):
    """Another ``book run`` executed this notebook, with this key, while we waited for it."""


def _done_meanwhile(out_dir: Path, item: Planned) -> bool:
    """Whether another ``book run`` executed ``item`` with its key since it was planned."""
    try:
        entry = read_manifest(out_dir)["notebooks"].get(item.name, {})
    except DamagedManifest:
        return False
    if (entry.get("finished_at"), entry.get("sha256")) == item.seen or entry.get("key") != item.key:
        return False
    return stale_reason(entry, entry.get("hashes", {}), item.output) == ""


def _execute(item: Planned, partial: Path, out_dir: Path, cwd, progress, results) -> None:
    """papermill-execute one notebook into ``partial`` under its lock (two ``book run`` never
    write one notebook at once), then put ``(name, exception or None)`` on ``results``. Runs in
    a daemon thread, one kernel each."""
    import papermill

    try:
        with exclusive(out_dir / LOCKS_DIR / f"notebook-{item.name}.lock"):
            if _done_meanwhile(out_dir, item):
                raise _DoneElsewhere(item.name)
            papermill.execute_notebook(
                str(item.spec.path),
                str(partial),
                parameters=item.params,
                kernel_name=KERNEL,
                cwd=str(cwd or paths.repo_root()),
                progress_bar=progress,
                # the kernel's own log (its "running over TCP without encryption" warning at
                # every start) is not the reader's or the user's business; its errors still are
                extra_arguments=["--IPKernelApp.log_level=ERROR"],
            )
    except BaseException as err:  # noqa: BLE001 - handed to the main thread, which reports it
        results.put((item.name, err))
        return
    results.put((item.name, None))


def _next_result(results: queue.Queue) -> tuple[str, BaseException | None]:
    """The next finished notebook (blocks; Ctrl-C and SIGTERM interrupt the wait)."""
    return results.get()


def _summarise_failure(err: BaseException, partial: Path) -> str:
    from papermill.exceptions import PapermillExecutionError, strip_color

    if isinstance(err, PapermillExecutionError):
        tb = [strip_color(line) for line in err.traceback]
        tail = "\n".join("\n".join(tb).splitlines()[-12:])
        return (
            f"cell {err.cell_index} (In [{err.exec_count}]) raised {err.ename}: {err.evalue}\n"
            f"{tail}\npartially executed notebook: {partial}"
        )
    return f"{type(err).__name__}: {err}\npartially executed notebook: {partial}"


def stop_kernels(timeout: float = 5.0) -> list[int]:
    """Terminate the Jupyter kernels this process started (then kill what is left after
    ``timeout`` seconds); their pids. Kernels run in their own session, so Ctrl-C or SIGTERM to
    the runner does not reach them: without this they would train on, orphaned."""
    import psutil

    kernels = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "ipykernel" in " ".join(child.cmdline()):
                kernels.append(child)
        except psutil.Error:
            continue
    for k in kernels:
        k.terminate()
    _, alive = psutil.wait_procs(kernels, timeout=timeout)
    for k in alive:
        k.kill()
    return [k.pid for k in kernels]


def expected_walls(profile: str, manifest: dict) -> dict[str, float]:
    """Seconds each notebook is expected to take: its last execution in this runs folder
    (``manifest``), else the reference build's (``reference/<profile>.json``,
    ``notebook_wall_s``), else unknown (absent)."""
    from frpo.reference import load_reference

    try:
        ref = load_reference(profile) or {}
    except ValueError:  # a damaged reference only costs the schedule its hints
        ref = {}
    out = {k: float(v) for k, v in (ref.get("notebook_wall_s") or {}).items()}
    for name, entry in manifest.get("notebooks", {}).items():
        if isinstance(entry, dict) and isinstance(entry.get("wall_s"), int | float):
            out[name] = float(entry["wall_s"])
    return out


class Execution:
    """One ``book run``: reuse or start notebooks as their dependencies finish (up to ``jobs``
    at once), record each result and the invocation in the manifest (merged under its lock)."""

    def __init__(self, prof: Profile, plan: list[Planned], out_dir: Path, **options):
        self.prof, self.plan, self.out_dir = prof, plan, out_dir
        self.jobs = options["jobs"]
        self.cwd, self.progress, self.log = options["cwd"], options["progress"], options["log"]
        self.pending = list(plan)  # in dependency order
        self.in_plan = {p.name for p in plan}
        self.finished: set[str] = set()
        self.running: dict[str, tuple[Planned, Path, float]] = {}
        self.results: queue.Queue = queue.Queue()
        self.failure: tuple[str, str, BaseException] | None = None
        self.runs: list[NotebookRun] = []
        self.invocation = {
            "id": f"{HOST}-{os.getpid()}-{time.time_ns()}",
            "host": HOST,
            "pid": os.getpid(),
            "started_at": now(),
            "only": list(options.get("only") or []),
            "force": bool(options.get("force")),
            "jobs": self.jobs,
            "executed": [],
            "reused": [],
            "status": "running",
        }
        self.t_start = time.perf_counter()
        self.bar = None

    def record(self, status: str | None = None, environment: dict | None = None) -> dict:
        if status is not None:
            self.invocation["status"] = status
            self.invocation["wall_s"] = time.perf_counter() - self.t_start
        change = put_invocation(self.invocation, self.prof.name, environment)
        return update_manifest(self.out_dir, change, self.log)

    def _reuse(self, item: Planned, wall: float | None, note: str) -> None:
        self.runs.append(NotebookRun(item.name, "cached", item.key, item.params, item.output,
                                     wall))  # fmt: skip
        self.invocation["reused"].append(item.name)
        self.bar.write(f"{item.name}: {note}")
        self.finished.add(item.name)
        self.bar.update(1)

    def _start(self, item: Planned) -> None:
        self.bar.write(f"{item.name}: executing ({item.stale})")
        item.output.parent.mkdir(parents=True, exist_ok=True)
        partial = item.output.with_name(f"{item.name}.partial.ipynb")
        progress = self.progress and self.jobs == 1
        args = (item, partial, self.out_dir, self.cwd, progress, self.results)
        self.running[item.name] = (item, partial, time.perf_counter())
        threading.Thread(target=_execute, args=args, daemon=True).start()
        self.bar.set_postfix_str(", ".join(self.running))

    def start_ready(self, manifest: dict) -> None:
        """Reuse every pending notebook whose dependencies are finished and is up to date, then
        start (up to ``jobs`` at once) the stale ones among them: with one job in plan order, so
        ``jobs=1`` runs exactly the plan's sequence; with several, the longest expected first
        (:func:`expected_walls`), so that a long notebook does not start last and run alone."""
        reused = True
        while reused:  # a reused notebook can make later ones ready
            reused = False
            for item in self._ready():
                if not item.stale:
                    wall = manifest["notebooks"].get(item.name, {}).get("wall_s") or 0.0
                    self.pending.remove(item)
                    self._reuse(item, wall, f"up to date, reused ({wall:.1f} s when executed)")
                    reused = True
        ready = self._ready()
        if self.jobs > 1:
            expected = expected_walls(self.prof.name, manifest)
            ready.sort(key=lambda item: -expected.get(item.name, 0.0))  # stable: ties in plan order
        for item in ready[: max(0, self.jobs - len(self.running))]:
            self.pending.remove(item)
            self._start(item)

    def _ready(self) -> list[Planned]:
        """Pending notebooks whose dependencies (in this plan) are finished, in plan order."""
        return [
            item
            for item in self.pending
            if all(d not in self.in_plan or d in self.finished for d in item.spec.depends_on)
        ]

    def _failed(self, item: Planned, partial: Path, err: BaseException, wall: float) -> None:
        summary = _summarise_failure(err, partial)
        entry = {"status": "failed", "error": summary, "wall_s": wall, "finished_at": now()}
        update_manifest(self.out_dir, set_notebook(item.name, entry), self.log)
        self.failure = self.failure or (item.name, summary, err)

    def _succeeded(self, item: Planned, partial: Path, wall: float) -> None:
        os.replace(partial, item.output)
        entry = {
            "status": "ok",
            "key": item.key,
            "hashes": item.parts,
            "params": item.params,
            "wall_s": wall,
            "output": item.output.relative_to(self.out_dir).as_posix(),
            "sha256": file_sha256(item.output),
            "run_dir": item.params["run_dir"],
            "outputs": output_checksums(item.params["run_dir"]),
            "finished_at": now(),
        }
        update_manifest(self.out_dir, set_notebook(item.name, entry), self.log)
        self.runs.append(NotebookRun(item.name, "executed", item.key, item.params, item.output,
                                     wall, item.stale))  # fmt: skip
        self.invocation["executed"].append(item.name)
        self.finished.add(item.name)
        self.bar.update(1)
        self.bar.write(f"{item.name}: done in {wall:.1f} s")

    def finish(self, name: str, err: BaseException | None) -> None:
        item, partial, t0 = self.running.pop(name)
        wall = time.perf_counter() - t0
        if isinstance(err, _DoneElsewhere):
            self._reuse(item, None, "executed meanwhile by another `book run`, reused")
        elif err is not None:
            self._failed(item, partial, err, wall)
        else:
            self._succeeded(item, partial, wall)

    def _interrupted(self, err: KeyboardInterrupt) -> None:
        what = "terminated (SIGTERM)" if isinstance(err, Terminated) else "interrupted"
        stopped = stop_kernels()
        self.bar.close()
        status = f"{what} while running {', '.join(self.running)}" if self.running else what
        self.record(status)
        if stopped:
            self.log(f"frpo: stopped {len(stopped)} kernel(s): {', '.join(map(str, stopped))}")

    def run(self) -> list[NotebookRun]:
        from tqdm.auto import tqdm

        stale = any(p.stale for p in self.plan)
        manifest = self.record(environment=envinfo.environment() if stale else None)
        self.bar = tqdm(total=len(self.plan), desc=f"book[{self.prof.name}]", unit="nb",
                        disable=not self.progress, file=sys.stderr)  # fmt: skip
        while True:
            if self.failure is None:  # after a failure nothing new starts; running ones finish
                self.start_ready(manifest)
            if not self.running:
                break
            try:
                name, err = _next_result(self.results)
            except KeyboardInterrupt as interrupt:
                self._interrupted(interrupt)
                raise
            self.finish(name, err)
        self.bar.close()
        if self.failure is not None:
            name, summary, err = self.failure
            self.record(f"failed at {name}")
            raise NotebookFailed(f"[{self.prof.name}] {name} failed: {summary}") from err
        self.record("ok")
        return self.runs


# ----------------------------------------------------------------------------- entry point


def _writable(out_dir: Path) -> bool:
    manifest = out_dir / "manifest.json"
    return os.access(out_dir, os.W_OK) and (not manifest.exists() or os.access(manifest, os.W_OK))


def _read_only(prof: Profile, plan: list[Planned], out_dir: Path, log) -> list[NotebookRun]:
    """Everything up to date in a read-only runs folder: report and reuse; else refuse."""
    todo = [p.name for p in plan if p.stale]
    if todo:
        raise ValueError(
            f"{out_dir} is read-only and {len(todo)} notebook(s) need executing "
            f"({', '.join(todo)}): make it writable (chmod -R u+w {out_dir}) or set FRPO_RUNS "
            "to a writable folder"
        )
    log(f"[{prof.name}] {out_dir} is read-only; every notebook is up to date, nothing executed "
        "(this invocation is not recorded in manifest.json)")  # fmt: skip
    return [NotebookRun(p.name, "cached", p.key, p.params, p.output) for p in plan]


def _current_manifest(out_dir: Path, log, dry_run: bool) -> dict:
    """The manifest to plan from; a damaged one counts as empty (a run's first write sets it
    aside, saying so; a dry run says how to rebuild it)."""
    try:
        return read_manifest(out_dir)
    except DamagedManifest as err:
        if dry_run:
            log(f"frpo: {err}")
        return {"notebooks": {}}


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
    two of them need is built once, see :mod:`frpo.locks`). Before any starts, what they need
    from the machine is checked (:mod:`frpo.book.needs`). A failing notebook stops the run with
    ``NotebookFailed``: nothing new starts, the ones already running finish and, like the ones
    before, are kept. Ctrl-C (or SIGTERM, see :class:`Terminated`) records the invocation as
    interrupted, stops the kernels and re-raises (finished notebooks and stage runs are kept).
    A read-only runs folder is fine when every notebook is up to date.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a whole number >= 1, got {jobs!r}")
    prof = (
        profile
        if isinstance(profile, Profile)
        else load_profile(profile, profiles_dir=profiles_dir, notebooks_dir=notebooks_dir)
    )
    out_dir = profile_dir(prof.name, runs_root)
    plan = plan_profile(prof, only, force, out_dir, _current_manifest(out_dir, log, dry_run))
    if dry_run:
        return describe_plan(prof, plan, log)
    if not _writable(out_dir):
        return _read_only(prof, plan, out_dir, log)
    from frpo.book.needs import unmet

    stale = {p.name: p.params for p in plan if p.stale}
    if stale:
        prof.run_setup()  # e.g. the rehearsal's stand-ins, before any kernel starts
    problem = unmet(prof.name, stale, gpu=prof.gpu)
    if problem:
        raise ValueError(problem)
    options = dict(jobs=jobs, cwd=cwd, progress=progress, log=log, only=only, force=force)
    return Execution(prof, plan, out_dir, **options).run()
