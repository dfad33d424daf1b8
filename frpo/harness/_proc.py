"""The process boundary of the evaluation harnesses: check a tool is installed, run it.

Tests replace :data:`RUNNER` (or pass ``runner=``) to assert the command line without running it.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

Runner = Callable[..., subprocess.CompletedProcess]
RUNNER: Runner = subprocess.run


def require_module(module: str, package: str, extra: str = "paper") -> None:
    """Raise ImportError naming the pip extra when ``module`` cannot be imported."""
    if importlib.util.find_spec(module) is None:
        raise ImportError(
            f"{package} is not installed: pip install 'frpo[{extra}]' "
            f"(or conda env create -f environment-gpu.yml; on a CPU: pip install 'frpo[harness]')"
        )


def run_tool(
    cmd: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike | None = None,
    runner: Runner | None = None,
    log: str | os.PathLike | None = None,
) -> None:
    """Run ``cmd`` (no shell); RuntimeError with the command and exit code when it fails.

    With ``log``, the tool's output (stdout and stderr) goes to that file instead of this
    process's, and the error message ends with its last lines.
    """
    full_env = {**os.environ, **(env or {})}
    if log is None:
        result = (runner or RUNNER)(list(cmd), env=full_env, cwd=cwd, check=False)
    else:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as out:
            result = (runner or RUNNER)(
                list(cmd), env=full_env, cwd=cwd, check=False, stdout=out, stderr=subprocess.STDOUT
            )
    if result.returncode != 0:
        tail = ""
        if log is not None and Path(log).is_file():
            lines = Path(log).read_text(errors="replace").splitlines()[-15:]
            tail = f"\nlast lines of {log}:\n" + "\n".join(lines)
        raise RuntimeError(
            f"command failed with exit code {result.returncode}: {' '.join(cmd)}{tail}"
        )


def newest(pattern: str | os.PathLike, what: str) -> Path:
    """The most recently modified file matching a recursive glob; FileNotFoundError if none."""
    found = [Path(p) for p in glob.glob(str(pattern), recursive=True)]
    if not found:
        raise FileNotFoundError(f"no {what} found at {pattern}")
    return max(found, key=lambda p: p.stat().st_mtime)
