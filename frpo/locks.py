"""One builder at a time: an advisory file lock for something expensive to build.

Notebooks executed concurrently (``frpo book run --jobs N``) may ask for the same stage run or
the same cached toy base model. Under :func:`exclusive` the second asker waits for the first and
then finds the thing complete, instead of building it a second time. The lock is ``fcntl.flock``
on a small file that stays behind (empty; it marks nothing): the operating system releases it
when its holder exits or is killed, so a dead builder never blocks the next one. POSIX only
(Linux, macOS), like the rest of the toolchain.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

LOCKS_DIR = ".locks"  # the folder, beside what is built, that holds the lock files


@contextlib.contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` (created with its folder when missing)."""
    lock_file = Path(lock_file)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
