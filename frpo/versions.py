"""Installed versions of Python distributions: the environment a book run records
(:mod:`frpo.book.envinfo`) and the libraries a stage run's identity covers
(:mod:`frpo.stages.identity`)."""

from __future__ import annotations

from collections.abc import Iterable
from importlib import metadata


def package_versions(names: Iterable[str]) -> dict[str, str]:
    """``{name: installed version}`` for each distribution in ``names``; ``"not installed"``
    when it is absent."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
