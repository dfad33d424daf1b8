"""``runs/<profile>/manifest.json``: what each notebook ran with, and every ``book run``.

Shape (checked on every read; anything else is a damaged manifest)::

    {"profile": str, "environment": {...},
     "notebooks": {name: {"status": "ok" | "failed", "key", "hashes", "params", "wall_s",
                          "output", "sha256" (of the executed notebook),
                          "outputs" ({file of its run_dir: sha256}), "finished_at", ...}},
     "invocations": [{"id", "pid", "host", "started_at", "status", "executed", "reused", ...}]}

Writers never replace the file with their own copy: :func:`update_manifest` takes a lock
(``runs/<profile>/.locks/manifest.lock``), reads the file as it is now, applies one change (a
notebook's entry, this invocation's record) and writes it atomically, so two ``book run`` at once
lose nothing. A damaged manifest (truncated, empty, not JSON, wrong shape) is set aside by the
next ``book run`` as ``manifest.json.damaged-<time>`` (every notebook then re-executes; finished
stage runs are reused) and refused, with that command, by ``book build``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
from collections.abc import Callable
from pathlib import Path

from frpo.artefacts import pid_alive
from frpo.locks import LOCKS_DIR, exclusive

MANIFEST = "manifest.json"
MAX_INVOCATIONS = 20
"""How many past ``book run`` invocations the manifest keeps (cold vs warm wall times)."""
HOST = socket.gethostname()


class DamagedManifest(ValueError):
    """``manifest.json`` cannot be read or does not have the manifest's shape."""


def now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def shape_problem(data) -> str | None:
    """What is wrong with a parsed manifest's shape, or None."""
    if not isinstance(data, dict):
        return f"the top level is a {type(data).__name__}, not a mapping"
    notebooks = data.get("notebooks", {})
    if not isinstance(notebooks, dict):
        return f"'notebooks' is a {type(notebooks).__name__}, not a mapping"
    bad = [n for n, e in notebooks.items() if not isinstance(e, dict)]
    if bad:
        return f"the entry of notebook {bad[0]!r} is not a mapping"
    invocations = data.get("invocations", [])
    if not isinstance(invocations, list) or not all(isinstance(i, dict) for i in invocations):
        return "'invocations' is not a list of mappings"
    if not isinstance(data.get("environment", {}), dict):
        return "'environment' is not a mapping"
    return None


def _parse(path: Path) -> dict:
    """The manifest at ``path`` ({"notebooks": {}} when there is none); DamagedManifest else."""
    if not path.is_file():
        return {"notebooks": {}}
    try:
        data = json.loads(path.read_text())
    except ValueError as err:
        raise DamagedManifest(f"{path} is not valid JSON ({err})") from None
    problem = shape_problem(data)
    if problem:
        raise DamagedManifest(f"{path} is not a manifest: {problem}")
    data.setdefault("notebooks", {})
    return data


def read_manifest(out_dir: Path) -> dict:
    """The manifest of ``out_dir`` for reading (the book build); a damaged one is a ValueError
    naming the file and the command that rebuilds it."""
    path = Path(out_dir) / MANIFEST
    try:
        return _parse(path)
    except DamagedManifest as err:
        raise DamagedManifest(
            f"{err}; rebuild it with `frpo book run --profile {Path(out_dir).name}` (notebooks "
            "re-execute, finished stage runs are reused)"
        ) from None


def _set_aside(path: Path, err: DamagedManifest, log: Callable[[str], None]) -> dict:
    aside = path.with_name(f"{MANIFEST}.damaged-{_dt.datetime.now():%Y%m%d-%H%M%S}")
    os.replace(path, aside)
    log(
        f"frpo: {err}; kept as {aside.name}, starting a new manifest: every notebook "
        "re-executes, finished stage runs are reused"
    )
    return {"notebooks": {}}


def _write(path: Path, manifest: dict) -> None:
    tmp = path.with_name(f".{MANIFEST}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _mark_dead_invocations(manifest: dict) -> None:
    """An invocation left "running" by a process that is gone (SIGKILL) is marked "killed"."""
    for inv in manifest.get("invocations", []):
        if inv.get("status") == "running" and inv.get("host") == HOST:
            pid = inv.get("pid")
            if isinstance(pid, int) and pid != os.getpid() and not pid_alive(pid):
                inv["status"] = "killed (no record of its end)"


def update_manifest(
    out_dir: Path, change: Callable[[dict], None], log: Callable[[str], None] = print
) -> dict:
    """Apply ``change`` to the manifest as it is on disk now, under the manifest's lock, and
    write it back atomically; the updated manifest. A damaged manifest is set aside first."""
    out_dir = Path(out_dir)
    path = out_dir / MANIFEST
    with exclusive(out_dir / LOCKS_DIR / "manifest.lock"):
        try:
            manifest = _parse(path)
        except DamagedManifest as err:
            manifest = _set_aside(path, err, log)
        _mark_dead_invocations(manifest)
        change(manifest)
        _write(path, manifest)
    return manifest


def set_notebook(name: str, entry: dict) -> Callable[[dict], None]:
    def change(manifest: dict) -> None:
        manifest["notebooks"][name] = entry

    return change


def put_invocation(invocation: dict, profile: str, environment: dict | None = None):
    """A change that records ``invocation`` (replacing its earlier record, by ``id``)."""

    def change(manifest: dict) -> None:
        manifest["profile"] = profile
        if environment is not None:
            manifest["environment"] = environment
        history = [i for i in manifest.get("invocations", []) if i.get("id") != invocation["id"]]
        history.append(dict(invocation))
        manifest["invocations"] = history[-MAX_INVOCATIONS:]

    return change
