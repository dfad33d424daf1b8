"""Run a set of specs from a notebook: one call, one progress line, the libraries' output in files.

``run_specs({key: spec}, profile, label=..., run_dir=...)`` returns ``{key: run_dir}``: every
spec's finished run directory (built now, or reused when complete; :mod:`frpo.stages.rundir`).
While a run is built, everything the libraries print goes to ``<run_dir>.log`` beside its run
directory (:func:`frpo.stages.quiet.library_output`), never into the notebook. The notebook gets
one line per call: how many runs, how many were built now, how long it took, and a link to
``<run_dir>/logs/<label>.log`` (``run_dir``: the notebook's), which gathers the logs of the
set's runs: of those built now, and of those reused whose build was logged on this machine.

The link is relative to the executed notebook (``runs/<profile>/notebooks/NN_topic.ipynb``, the
layout of :mod:`frpo.book.execute`), ``../NN_topic/logs/<label>.log``; the book build copies each
chapter's ``logs/`` folder to the same place beside the HTML, so one link serves both.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from frpo import numerics
from frpo.paths import LOGS, resolve
from frpo.stages.quiet import library_output
from frpo.stages.rundir import is_complete, run_path
from frpo.stages.sweep import run_stage

K = TypeVar("K")


def log_path(spec: Any, profile: str) -> Path:
    """Where the library output of building ``spec``'s run goes: ``<run_dir>.log`` beside it."""
    final = run_path(spec, profile)
    return final.with_name(f"{final.name}.log")


def run_specs(
    specs: Mapping[K, Any],
    profile: str,
    *,
    label: str,
    run_dir: str | Path,
    say: Callable[[str, str], None] | None = None,
) -> dict[K, Path]:
    """``{key: finished run directory}`` for ``{key: spec}``, in the mapping's order.

    ``run_dir`` is the notebook's output folder; ``label`` names the set in the progress line and
    its log file ``<run_dir>/logs/<label as a file name>.log`` (rewritten by each call). ``say``
    shows the progress line and the log's link (default: a Markdown line with the link inside a
    notebook, plain ``print`` elsewhere).
    """
    if not specs:
        raise ValueError(f"run_specs({label!r}): no specs to run")
    log_dir = Path(run_dir) / LOGS
    log_dir.mkdir(parents=True, exist_ok=True)
    sweep_log = log_dir / f"{slug(label)}.log"
    t0 = time.perf_counter()
    built = 0
    dirs: dict[K, Path] = {}
    sweep_log.write_text(f"# {label}: library output of the runs of this set\n")
    for key, spec in specs.items():
        target, own = run_path(spec, profile), log_path(spec, profile)
        if is_complete(target):
            note = f"its log: {_short(own)}" if own.is_file() else "no log of its build here"
            _append(sweep_log, f"\n## {_short(target)}: reused, built earlier ({note})\n")
            if own.is_file():
                _append(sweep_log, own.read_text(errors="replace"))
            with library_output(sweep_log):  # whatever reusing it prints
                dirs[key] = run_stage(spec, profile)
            continue
        t_run = time.perf_counter()
        with library_output(own):
            dirs[key] = run_stage(spec, profile)
        built += 1
        seconds = time.perf_counter() - t_run
        _append(
            sweep_log, f"\n## {_short(target)}: built in {seconds:.1f} s (log: {_short(own)})\n"
        )
        _append(sweep_log, own.read_text(errors="replace"))
    line = progress_line(label, len(dirs), built, time.perf_counter() - t0)
    (say or _show)(line, f"../{Path(run_dir).name}/{LOGS}/{sweep_log.name}")
    return dirs


def start(run_dir: str | Path, n_threads: int) -> Path:
    """What every experiment notebook does first: resolve and create its ``run_dir``
    (:func:`frpo.paths.resolve`), set torch's CPU threads, say so when the CPU numerics are not
    the pinned ones (:func:`frpo.numerics.unpinned_note`), and import the training libraries
    with their import-time warnings sent to ``<run_dir>/logs/imports.log``. Returns the path."""
    import torch

    path = resolve(run_dir)
    path.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(n_threads)
    note = numerics.unpinned_note(torch.backends.cpu.get_cpu_capability())
    if note:
        print(note)
    with quietly(path, "imports"):
        import datasets  # noqa: F401
        import transformers  # noqa: F401
        import trl  # noqa: F401
    return path


@contextlib.contextmanager
def quietly(run_dir: str | Path, label: str) -> Iterator[Path]:
    """Library output of the block (work outside a run: loading pi_ref, a reward model) goes to
    ``<run_dir>/logs/<label as a file name>.log`` (appended)."""
    with library_output(Path(run_dir) / LOGS / f"{slug(label)}.log") as path:
        yield path


def runner(profile: str, run_dir: str | Path) -> Callable[[Mapping, str], dict]:
    """:func:`run_specs` bound to one notebook's ``profile`` and ``run_dir``:
    ``go = runner(profile, run_dir); dirs = go(specs, "SFT runs")``."""

    def go(specs: Mapping, label: str) -> dict:
        return run_specs(specs, profile, label=label, run_dir=run_dir)

    return go


def progress_line(label: str, n: int, built: int, seconds: float) -> str:
    """``"SFT: 42 runs (2 built, 40 reused) in 31 s"``."""
    return f"{label}: {n} runs ({built} built, {n - built} reused) in {seconds:.0f} s"


def slug(label: str) -> str:
    """A file name for ``label``: lower case, runs of other characters as one ``-``."""
    out = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
    if not out:
        raise ValueError(f"label {label!r} has no letters or digits to name its log file")
    return out


def _short(path: Path) -> str:
    """``<stage>/<run_name>[.log]``: the last two parts of a run path."""
    return "/".join(Path(path).parts[-2:])


def _append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


def _show(line: str, link: str) -> None:
    try:
        from IPython import get_ipython
    except ImportError:
        get_ipython = None  # noqa: N806
    if get_ipython is not None and get_ipython() is not None:
        from IPython.display import Markdown, display

        display(Markdown(f"{line}; library output: [{Path(link).name}]({link})"))
        return
    print(f"{line}; library output: {link}")
