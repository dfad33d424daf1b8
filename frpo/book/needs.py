"""What a notebook needs from the machine before it can run: GPUs, the models and datasets it
loads (in the Hugging Face cache, or reachable on the hub) and the local files it reads.

Read from a notebook's ``world`` parameter (:func:`frpo.recipes.make_source`'s block): a ``toy``
world needs nothing; a ``files`` world its local model directory and data files; a ``hub``
world (the paper profile) a CUDA GPU (unless the profile says ``gpu: false``: the rehearsal),
its base model, its datasets (hub ids or local files) and the judge models of
:mod:`frpo.judges.catalogue` (or the local copies ``world.data`` names instead).
``frpo book run --dry-run`` prints each notebook's needs with what this machine has;
``frpo book run`` checks them for the notebooks it will execute before starting any, and
refuses in one message (:func:`unmet`) that points to the dry run.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any

from frpo.paths import resolve

LOCAL_SUFFIXES = (".parquet", ".json", ".jsonl", ".csv", ".arrow", ".txt")


@dataclass(frozen=True)
class Need:
    kind: str
    """``gpu``, ``model``, ``dataset`` or ``file``."""
    name: str
    where: str
    """The parameter that asks for it (``03_rlhf_safety.world.data.safety``)."""


def _is_local(value: str) -> bool:
    if resolve(value).exists():
        return True
    return value.endswith(LOCAL_SUFFIXES) or value.startswith(("/", "./", "../", "~", "data/"))


def _judge_models(data: dict) -> dict[str, str]:
    """The settings naming judge weights: the paper's, or the copies ``data`` names."""
    from frpo.judges.catalogue import SETTINGS

    return {k: str(data.get(k, s.paper)) for k, s in SETTINGS.items() if s.weights}


def world_needs(notebook: str, world: Any) -> list[Need]:
    """The needs of one ``world`` block (none for a toy world)."""
    if not isinstance(world, dict) or world.get("kind", "toy") == "toy":
        return []
    where = f"{notebook}.world"
    data = dict(world.get("data") or {})
    model = str(world.get("model", ""))
    out = [Need("file" if _is_local(model) else "model", model, f"{where}.model")]
    if world["kind"] == "hub":
        out.insert(0, Need("gpu", "a CUDA GPU", where))
        for key, value in _judge_models(data).items():
            kind = "file" if _is_local(str(value)) else "model"
            out.append(Need(kind, str(value), f"{where}.data.{key}"))
    for key, value in data.items():
        if not str(key).startswith("judge."):
            kind = "file" if _is_local(str(value)) else "dataset"
            out.append(Need(kind, str(value), f"{where}.data.{key}"))
    return out


def hub_cache_dir() -> str:
    """The Hugging Face hub cache this process would read now: ``HF_HUB_CACHE``, else
    ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``, read from the environment at the call
    (a profile's setup hook, such as the rehearsal's, may point it elsewhere after
    ``huggingface_hub`` was imported and fixed its own constants)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.path.expanduser(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
    )
    return os.path.join(os.path.expanduser(home), "hub")


def cached_repos() -> frozenset[tuple[str, str]]:
    """(repo type, repo id) of everything in the Hugging Face cache (:func:`hub_cache_dir`)."""
    return _scan(hub_cache_dir())


@functools.lru_cache(maxsize=4)
def _scan(cache_dir: str) -> frozenset[tuple[str, str]]:
    try:
        from huggingface_hub import scan_cache_dir

        info = scan_cache_dir(cache_dir)
    except Exception:  # noqa: BLE001 - no cache directory, or no huggingface_hub: nothing cached
        return frozenset()
    return frozenset((r.repo_type, r.repo_id) for r in info.repos)


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


def hub_reachable() -> bool:
    """False under ``HF_HUB_OFFLINE``; else whether the hub answers within 5 s."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    import urllib.request

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    try:
        urllib.request.urlopen(endpoint, timeout=5).close()  # noqa: S310 - fixed https endpoint
    except OSError:
        return False
    return True


def have(need: Need) -> tuple[bool, str]:
    """Whether this machine has ``need`` without the network, and in words."""
    if need.kind == "gpu":
        n = gpu_count()
        return n > 0, f"{n} here"
    if need.kind == "file":
        ok = resolve(need.name).exists()
        return ok, "present" if ok else "missing"
    ok = (need.kind, need.name) in cached_repos()
    return ok, "cached" if ok else "not in the Hugging Face cache"


def describe_needs(notebook: str, params: dict) -> list[str]:
    """One ``needs:`` line per need of a notebook, with what this machine has (dry run)."""
    return [
        f"needs: {n.kind} {n.name} ({n.where}): {have(n)[1]}"
        for n in world_needs(notebook, params.get("world"))
    ]


def _by_item(needs: list[Need]) -> dict[tuple[str, str, str], list[str]]:
    """(kind, name, parameter) -> the notebooks asking for it."""
    out: dict[tuple[str, str, str], list[str]] = {}
    for n in needs:
        notebook, param = n.where.split(".", 1)
        out.setdefault((n.kind, n.name, param), []).append(notebook)
    return out


def unmet(profile: str, notebooks: dict[str, dict], gpu: bool = True) -> str:
    """One message listing what the notebooks about to execute need and this machine lacks
    (no GPU, missing local files, models/datasets neither cached nor reachable); "" if none.
    ``gpu=False``: the profile runs its hub worlds on the CPU (the rehearsal), no GPU needed."""
    needs = [n for nb, params in notebooks.items() for n in world_needs(nb, params.get("world"))]
    needs = [n for n in needs if gpu or n.kind != "gpu"]
    missing = _by_item([n for n in needs if not have(n)[0]])
    lines = []
    order = {"gpu": 0, "file": 1}
    for (kind, name, param), nbs in sorted(missing.items(), key=lambda x: order.get(x[0][0], 2)):
        nbs = sorted(nbs)
        if kind == "gpu":
            lines.append(
                f"no CUDA GPU (torch.cuda.device_count() == 0); needed by {', '.join(nbs)}"
            )
        elif kind == "file":
            lines.append(f"missing local file {name} ({param} of {', '.join(nbs)})")
    remote = sorted({f"{kind} {name}" for kind, name, _ in missing if kind in ("model", "dataset")})
    if remote and not hub_reachable():
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") else ""
        lines.append(f"not in the Hugging Face cache and the hub is unreachable{offline}: "
                     f"{', '.join(remote)}")  # fmt: skip
    if not lines:
        return ""
    listing = "\n  - ".join(lines)
    return (
        f"profile {profile!r} cannot run on this machine (nothing was started):\n  - {listing}\n"
        f"`frpo book run --profile {profile} --dry-run` lists what each notebook needs."
    )
