"""Library output of a run goes to a log file, not into the notebook or terminal that asked for it.

Training a toy model prints a screenful per run: transformers' "Loading weights" and "Writing
model shards" bars, TRL's "Tokenizing train dataset" bars (datasets ``map``), the Trainer's progress
table, deprecation warnings. A notebook that builds forty runs would show forty such blocks between
its code and its first figure. :func:`library_output` sends all of it to one file per run instead:

- Python's ``sys.stdout`` and ``sys.stderr`` (``print``, tqdm bars) and the process's file
  descriptors 1 and 2 (what C extensions write) point at the file, and Python warnings are
  written to it (``warnings.showwarning``; the filters are unchanged);
- every :class:`logging.StreamHandler` (transformers', datasets', TRL's, accelerate's loggers)
  writes to the file;
- inside an IPython kernel, rich display outputs (the Trainer's notebook progress table) are
  captured and their text appended to the file when the run ends (an updated display once, as
  its last state);
- the progress bars of transformers, huggingface_hub and datasets are switched off (their own
  switches), so the file holds warnings and logs rather than thousands of bar refreshes.

Everything is restored on exit, also when the run raises (the exception propagates; its
traceback is the caller's to show). Nothing here changes what a run computes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO


@contextlib.contextmanager
def library_output(path: str | os.PathLike) -> Iterator[Path]:
    """Route library output to ``path`` (appended, created with its folder) while the block runs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", buffering=1, encoding="utf-8", errors="replace") as log:
        with contextlib.ExitStack() as stack:
            stack.enter_context(_file_descriptors_to(log))
            stack.enter_context(contextlib.redirect_stdout(log))
            stack.enter_context(contextlib.redirect_stderr(log))
            stack.enter_context(_progress_bars_off())
            stack.enter_context(_log_handlers_to(log))
            stack.enter_context(_warnings_to(log))
            stack.enter_context(_displays_to(log))
            yield path


@contextlib.contextmanager
def _file_descriptors_to(log: TextIO) -> Iterator[None]:
    """Point file descriptors 1 and 2 at ``log`` (C-level writes), then back."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = [os.dup(fd) for fd in (1, 2)]
    try:
        for fd in (1, 2):
            os.dup2(log.fileno(), fd)
        yield
    finally:
        log.flush()
        for fd, copy in zip((1, 2), saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)


@contextlib.contextmanager
def _log_handlers_to(log: TextIO) -> Iterator[None]:
    """Every console ``StreamHandler`` of every logger writes to ``log``, then back.

    A handler a library creates during the block binds the redirected ``sys.stderr`` (``log``);
    on exit it is pointed at the ``sys.stderr`` of before the block, as is one left bound to a
    closed log by an earlier block.
    """
    outer = sys.stderr
    moved = {}
    for handler in _console_handlers():
        stream = handler.stream
        if stream is not log:  # a handler that follows sys.stderr writes to log already
            moved[handler] = outer if getattr(stream, "closed", False) else stream
            _point(handler, log)
    try:
        yield
    finally:
        for handler in _console_handlers():
            if handler.stream is log:
                _point(handler, moved.get(handler, outer))


def _console_handlers() -> list[logging.StreamHandler]:
    """The ``StreamHandler``s (not file handlers) of the root and every named logger."""
    loggers = [logging.getLogger()] + [
        obj for obj in logging.Logger.manager.loggerDict.values() if isinstance(obj, logging.Logger)
    ]
    return [
        h
        for logger in loggers
        for h in logger.handlers
        if isinstance(h, logging.StreamHandler)
        and not isinstance(h, logging.FileHandler)
        and not isinstance(type(h).__dict__.get("stream"), property)  # logging.lastResort
    ]


def _point(handler: logging.StreamHandler, stream: TextIO) -> None:
    """``handler.setStream(stream)`` without flushing a stream that is already closed."""
    with handler.lock:
        with contextlib.suppress(ValueError, OSError, AttributeError):
            handler.stream.flush()
        handler.stream = stream


@contextlib.contextmanager
def _warnings_to(log: TextIO) -> Iterator[None]:
    """Python warnings shown during the block are written to ``log`` (whoever shows them
    otherwise: the default to ``sys.stderr``, or a test runner's recorder); filters unchanged."""
    with warnings.catch_warnings():

        def show(message, category, filename, lineno, file=None, line=None):
            log.write(warnings.formatwarning(message, category, filename, lineno, line))

        warnings.showwarning = show
        yield


@contextlib.contextmanager
def _progress_bars_off() -> Iterator[None]:
    """transformers' (and with it huggingface_hub's) and datasets' progress bars off, then back."""
    import datasets
    from transformers.utils import logging as transformers_logging

    was_on = transformers_logging.is_progress_bar_enabled()
    datasets_was_off = datasets.are_progress_bars_disabled()
    transformers_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_on:
            transformers_logging.enable_progress_bar()
        if not datasets_was_off:
            datasets.enable_progress_bars()


_TAG = re.compile(r"<[^>]+>")


@contextlib.contextmanager
def _displays_to(log: TextIO) -> Iterator[None]:
    """Inside IPython: capture rich display outputs, then write their text to ``log``."""
    shell = _ipython()
    if shell is None:
        yield
        return
    from IPython.utils.capture import capture_output

    with capture_output(stdout=False, stderr=False, display=True) as captured:
        try:
            yield
        finally:
            # an updated display (a progress table) counts once, as its last state
            last: dict = {}
            for i, output in enumerate(captured.outputs):
                display_id = (output.transient or {}).get("display_id", i)
                last.pop(display_id, None)
                last[display_id] = output
            for output in last.values():
                log.write(display_text(output.data) + "\n")


def display_text(data: dict) -> str:
    """The readable text of a display bundle: ``text/plain`` unless it is an object's default
    repr, else ``text/html`` with its tags removed (one line)."""
    plain = str(data.get("text/plain", ""))
    if plain and not plain.startswith("<IPython.core.display"):
        return plain
    html = str(data.get("text/html", ""))
    return " ".join(_TAG.sub(" ", html).split()) or plain


def _ipython():
    shell = sys.modules.get("IPython")
    if shell is None:
        return None
    return shell.get_ipython()
