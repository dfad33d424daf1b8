"""Artefact directories you can trust: built aside, renamed into place, verified when read.

A directory this package builds (a stage run, the cached toy base model) is written under a
temporary name (:func:`tmp_dir`), gets ``checksums.json`` (the SHA-256 of every file in it) and
its completion marker last, and is then renamed into place. Reading it checks the files against
``checksums.json`` (:func:`damaged_files`, :func:`verify_file`): a truncated, overwritten or
missing file is reported by name, never used.

A temporary directory is named ``.tmp-<name>-<host>-<pid>``; one whose builder process is gone
(killed, crashed) is removed by the next build in the same folder (:func:`remove_dead_tmp`).

Hashing reads every byte (about 1 GB/s): a 14 GB paper-scale model costs ~15 s the first time a
process checks it. Within one process a file's hash is remembered while its size, modification
time and inode are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
from pathlib import Path

CHECKSUMS = "checksums.json"
_CHUNK = 1 << 20
_memo: dict[str, tuple[tuple[int, int, int], str]] = {}


class DamagedArtefact(ValueError):
    """A file does not match the checksum written with it, is missing, or cannot be parsed."""


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes (remembered while its size, mtime and inode hold)."""
    path = Path(path)
    st = path.stat()
    stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
    key = str(path.resolve())
    hit = _memo.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    _memo[key] = (stamp, h.hexdigest())
    return h.hexdigest()


def _files(directory: Path, skip: tuple[str, ...]) -> list[str]:
    out = []
    for f in sorted(directory.rglob("*")):
        rel = f.relative_to(directory).as_posix()
        if f.is_file() and rel not in skip and rel != CHECKSUMS:
            out.append(rel)
    return out


def listing_digest(checksums: dict[str, str]) -> str:
    """One SHA-256 for a whole directory: of its sorted ``path sha256`` lines."""
    text = "".join(f"{rel} {sha}\n" for rel, sha in sorted(checksums.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def write_checksums(directory: Path, skip: tuple[str, ...] = ()) -> str:
    """Write ``<directory>/checksums.json`` for every file but ``skip`` (relative paths); its
    digest (:func:`listing_digest`)."""
    directory = Path(directory)
    sums = {rel: file_sha256(directory / rel) for rel in _files(directory, skip)}
    tmp = directory / f".{CHECKSUMS}.tmp"
    tmp.write_text(json.dumps(sums, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, directory / CHECKSUMS)
    return listing_digest(sums)


def read_checksums(directory: Path) -> dict[str, str]:
    """``checksums.json`` of ``directory``; DamagedArtefact when missing or unreadable."""
    path = Path(directory) / CHECKSUMS
    try:
        sums = json.loads(path.read_text())
    except FileNotFoundError:
        raise DamagedArtefact(f"{path} is missing") from None
    except (OSError, ValueError) as err:
        raise DamagedArtefact(f"{path} is unreadable ({err})") from None
    if not isinstance(sums, dict) or not all(isinstance(v, str) for v in sums.values()):
        raise DamagedArtefact(f"{path} is not a mapping of file -> sha256")
    return sums


def damaged_files(directory: Path) -> list[str]:
    """What is wrong with ``directory`` against its checksums: one line per damaged file
    (``model/model.safetensors does not match its checksum``), [] when all is well."""
    directory = Path(directory)
    try:
        sums = read_checksums(directory)
    except DamagedArtefact as err:
        return [str(err)]
    problems = []
    for rel, want in sorted(sums.items()):
        try:
            if file_sha256(directory / rel) != want:
                problems.append(f"{rel} does not match its checksum")
        except FileNotFoundError:
            problems.append(f"{rel} is missing")
        except OSError as err:
            problems.append(f"{rel} is unreadable ({err.strerror})")
    return problems


def verify_file(directory: Path, relative: str, repair: str) -> Path:
    """The path of ``relative`` inside ``directory`` once it matches its checksum; otherwise
    DamagedArtefact naming the file, what is wrong and ``repair`` (the command that rebuilds it)."""
    directory = Path(directory)
    path = directory / relative
    sums = read_checksums(directory)
    if relative not in sums:
        raise DamagedArtefact(f"{path} has no checksum in {directory / CHECKSUMS}; {repair}")
    if not path.is_file():
        raise DamagedArtefact(f"{path} is missing; {repair}")
    if file_sha256(path) != sums[relative]:
        raise DamagedArtefact(f"{path} does not match its checksum (damaged); {repair}")
    return path


def read_verified_json(directory: Path, relative: str, repair: str):
    """The parsed JSON of a checksummed file (see :func:`verify_file`)."""
    path = verify_file(directory, relative, repair)
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise DamagedArtefact(f"{path} is not valid JSON ({err}); {repair}") from None


# ----------------------------------------------------------------------------- temporary dirs

_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"


def tmp_dir(final: Path) -> Path:
    """Where ``final`` is built: ``.tmp-<name>-<host>-<pid>`` beside it."""
    final = Path(final)
    return final.parent / f".tmp-{final.name}-{_HOST}-{os.getpid()}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def remove_dead_tmp(folder: Path) -> list[Path]:
    """Remove the temporary build directories in ``folder`` whose builder (this host, its pid)
    is gone; the removed paths."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for entry in folder.glob(".tmp-*"):
        host_pid = entry.name.rsplit("-", 2)[-2:]
        if len(host_pid) != 2 or host_pid[0] != _HOST or not host_pid[1].isdigit():
            continue
        if int(host_pid[1]) != os.getpid() and not pid_alive(int(host_pid[1])):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def move_into_place(tmp: Path, final: Path, is_valid) -> Path:
    """Rename the finished ``tmp`` to ``final``. A ``final`` already there is replaced unless
    ``is_valid(final)`` (then someone else finished it first: theirs stands, ``tmp`` goes)."""
    tmp, final = Path(tmp), Path(final)
    if final.exists():
        if is_valid(final):
            shutil.rmtree(tmp, ignore_errors=True)
            return final
        old = final.parent / f".tmp-old-{final.name}-{_HOST}-{os.getpid()}"
        os.rename(final, old)
        shutil.rmtree(old, ignore_errors=True)
    try:
        os.rename(tmp, final)
    except OSError:
        if not is_valid(final):
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    return final
