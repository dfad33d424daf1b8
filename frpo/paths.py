"""Where things live: the repository root, a profile's runs directory, the shared model cache.

Relative paths in notebooks and profiles, and in ``FRPO_RUNS`` and ``FRPO_CACHE``, are resolved
against the repository root (``~`` is expanded), so a notebook gives the same result whether
papermill runs it from the root or from ``notebooks/``, and the runner and its kernels agree on
one runs folder whatever directory the command was typed in.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

PROFILES = ("smoke", "toy", "paper", "rehearsal")
LOGS = "logs"
"""The folder of a notebook's run_dir that holds its sweeps' logs (copied into the book)."""
"""The committed profiles; any ``profiles/<name>.yaml`` is a profile too."""
PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def repo_root() -> Path:
    """The directory holding ``pyproject.toml`` above this package (editable install), else cwd."""
    here = Path(__file__).resolve().parent
    for candidate in (here, *here.parents):
        if (candidate / "pyproject.toml").is_file() and (candidate / "frpo").is_dir():
            return candidate
    return Path.cwd()


def resolve(path: str | os.PathLike) -> Path:
    """An absolute path: relative ones are taken from the repository root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else repo_root() / p


def profile_names() -> list[str]:
    """The profiles: the stems of ``profiles/*.yaml`` that are valid names, and the committed
    ones."""
    found = {p.stem for p in (repo_root() / "profiles").glob("*.yaml")}
    return sorted({n for n in found if PROFILE_NAME.fullmatch(n)} | set(PROFILES))


def runs_root() -> Path:
    """The ``runs`` folder: ``FRPO_RUNS`` (resolved against the repository root) or ``runs/``."""
    env = os.environ.get("FRPO_RUNS")
    return resolve(env) if env else repo_root() / "runs"


def runs_dir(profile: str) -> Path:
    """``<runs root>/<profile>/`` (created on demand) of a profile in :func:`profile_names`."""
    if profile not in profile_names():
        raise ValueError(
            f"unknown profile {profile!r}; expected one of {', '.join(profile_names())} "
            "(a profile is a file profiles/<name>.yaml)"
        )
    out = runs_root() / profile
    out.mkdir(parents=True, exist_ok=True)
    return out


def cache_dir() -> Path:
    """Shared cache for built artefacts (toy base models): ``FRPO_CACHE`` (resolved against the
    repository root) or ``.cache/frpo``."""
    env = os.environ.get("FRPO_CACHE")
    out = resolve(env) if env else repo_root() / ".cache" / "frpo"
    out.mkdir(parents=True, exist_ok=True)
    return out
