"""Where things live: the repository root, a profile's runs directory, the shared model cache.

Relative paths in notebooks and profiles are resolved against the repository root, so a notebook
gives the same result whether papermill runs it from the root or from ``notebooks/``.
"""

from __future__ import annotations

import os
from pathlib import Path

PROFILES = ("smoke", "toy", "paper", "rehearsal")


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


def runs_dir(profile: str) -> Path:
    """``runs/<profile>/`` (created on demand); ``FRPO_RUNS`` overrides the ``runs`` root."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    root = Path(os.environ["FRPO_RUNS"]) if os.environ.get("FRPO_RUNS") else repo_root() / "runs"
    out = root / profile
    out.mkdir(parents=True, exist_ok=True)
    return out


def cache_dir() -> Path:
    """Shared cache for built artefacts (toy base models); ``FRPO_CACHE`` overrides it."""
    env = os.environ.get("FRPO_CACHE")
    out = Path(env).expanduser() if env else repo_root() / ".cache" / "frpo"
    out.mkdir(parents=True, exist_ok=True)
    return out
