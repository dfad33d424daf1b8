"""The backend of a :class:`~frpo.stages.spec.Source`: the world a run's models and data come from.

``open_source(source)`` gives an object with the interface of :mod:`frpo.stages.backend`: the
ToyWorld (``toy``), local files in the real data sets' formats (``files``,
:mod:`frpo.stages.files`), or the real loaders, rewards and judges of :mod:`frpo.data`,
:mod:`frpo.rewards`, :mod:`frpo.judges` (``hub``, paper scale, :mod:`frpo.stages.hub`; nothing
is loaded until it is used).
"""

from __future__ import annotations

import functools

from frpo.stages.files import FileBackend
from frpo.stages.hub import HubBackend
from frpo.stages.spec import Source
from frpo.toyworld import ToyWorld, WorldConfig


@functools.lru_cache(maxsize=8)
def open_source(source: Source):
    """The backend for ``source`` (cached: one ToyWorld per recipe per process)."""
    if source.kind == "toy":
        return ToyWorld(WorldConfig(seed=source.seed, size=source.size))
    if source.kind == "files":
        return FileBackend(source.model, dict(source.data))
    return HubBackend(source.model, dict(source.data))
