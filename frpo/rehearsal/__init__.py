"""The CPU rehearsal of the paper profile: stand-ins built at run time, in the real formats.

``profiles/rehearsal.yaml`` runs every notebook through the paper profile's code path: the
``hub`` world with the paper's hub ids, its loaders, judges, harness runners and stage runners.
:func:`setup` (the profile's ``setup`` hook, called by ``frpo book run`` before any notebook)
builds what those ids resolve to, once, under ``.cache/rehearsal/`` (never committed):

- ``hub/``: a Hugging Face hub cache (:mod:`.hubcache`) holding tiny random models of the
  paper's architectures under the paper's ids (:mod:`.models`: Mistral, Qwen2, the HarmBench
  Llama classifier, Gemma + the StrongREJECT LoRA adapter, the RB2 Llama reward model at
  revision "2") and small data sets with the real columns, configs and splits
  (:mod:`.content`: openai/gsm8k, tatsu-lab/alpaca, HuggingFaceH4/ultrafeedback_binarized,
  DigitalLearningGmbH/MATH-lighteval, HuggingFaceH4/MATH-500, nvidia/OpenCodeInstruct, and
  cais/mmlu when lm-eval is installed, for its 57 subject configs);
- ``data/``: the files that are not on the hub (the authors' safety parquet, HarmBench's and
  StrongREJECT's CSVs), ``bench/MbppPlus.jsonl`` (EvalPlus's format).

It then points the process's Hugging Face libraries at that cache, offline (``HF_HUB_CACHE``,
``HF_HUB_OFFLINE=1``, ...; the notebooks' kernels and the harnesses' processes inherit them), and
starts the moderation endpoint stand-in (:mod:`.moderation`) on every local
``judge.moderation_url`` of the profile. What needs a GPU (vLLM, flash-attention, DeepSpeed,
bf16) is switched off by the capability checks a GPU node takes (:mod:`frpo.harness.
capability`), not here. The stand-ins are rebuilt when this package's sources change.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from frpo.paths import resolve

ROOT = ".cache/rehearsal"
"""Where the stand-ins live (relative to the repository root; the profile names paths in it)."""

MODELS = {  # hub id -> (builder, family, revisions)
    "mistralai/Mistral-7B-Instruct-v0.1": ("Mistral", "mistral", ("main",)),
    "Qwen/Qwen2.5-Math-7B": ("Qwen2", "qwen2", ("main",)),
    "cais/HarmBench-Llama-2-13b-cls": ("harmbench", "llama2", ("main",)),
    "google/gemma-2b": ("Gemma", "gemma", ("main",)),
    "allenai/Llama-3.1-8B-Instruct-RM-RB2": ("reward", "llama3", ("main", "2")),
}
ADAPTER = ("qylu4156/strongreject-15k-v1", "google/gemma-2b")
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}


def root() -> Path:
    return resolve(ROOT)


def version() -> str:
    """A hash of this package's sources: the stand-ins are rebuilt when it changes."""
    h = hashlib.sha256()
    for f in sorted(Path(__file__).parent.glob("*.py")):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def _write_rows(path: Path, rows: list[dict]) -> None:
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows)
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _datasets(work: Path) -> dict[str, tuple[Path, dict]]:
    """Each stand-in hub data set as a directory (files + card): id -> (directory, configs)."""
    from frpo.rehearsal import content

    out: dict[str, tuple[Path, dict]] = {}

    def add(repo_id, config, splits: dict[str, list[dict]], pattern, ext="parquet"):
        d = work / "datasets" / repo_id.replace("/", "--")
        files = {}
        for split, rows in splits.items():
            rel = pattern.format(config=config, split=split) + f".{ext}"
            _write_rows(d / rel, rows)
            files[split] = rel.replace("-00000-of-00001", "-*")
        configs = out.get(repo_id, (d, {}))[1]
        configs[config] = files
        out[repo_id] = (d, configs)

    add("openai/gsm8k", "main", content.gsm8k_splits(), "{config}/{split}-00000-of-00001")
    add("tatsu-lab/alpaca", "default", {"train": content.alpaca_rows()},
        "data/{split}-00000-of-00001")  # fmt: skip
    add("HuggingFaceH4/ultrafeedback_binarized", "default", content.ultrafeedback_splits(),
        "data/{split}-00000-of-00001")  # fmt: skip
    add("DigitalLearningGmbH/MATH-lighteval", "default", content.math_splits(),
        "data/{split}-00000-of-00001")  # fmt: skip
    add("HuggingFaceH4/MATH-500", "default", {"test": content.math500_rows()}, "{split}", "jsonl")
    add("nvidia/OpenCodeInstruct", "train", {"train": content.opencodeinstruct_rows()},
        "data/{split}-00000-of-00001")  # fmt: skip
    add("LLM-LAT/harmful-dataset", "default", {"train": content.harmful_pairs_rows()},
        "data/{split}-00000-of-00001")  # fmt: skip
    for subject in _mmlu_subjects():
        add("cais/mmlu", subject, content.mmlu_splits(subject), "{config}/{split}-00000-of-00001")
    return out


def _mmlu_subjects() -> list[str]:
    """The 57 MMLU subjects of the installed lm-eval's ``mmlu`` task ([] without lm-eval)."""
    import importlib.util
    import re

    spec = importlib.util.find_spec("lm_eval")
    if spec is None or not spec.submodule_search_locations:
        return []
    folder = Path(list(spec.submodule_search_locations)[0]) / "tasks" / "mmlu" / "default"
    names = []
    for f in sorted(folder.glob("mmlu_*.yaml")):
        found = re.search(r'"?dataset_name"?:\s*"?([A-Za-z_]+)"?', f.read_text())
        if found:
            names.append(found.group(1))
    return names


def build(dest: Path) -> None:
    """Build every stand-in into ``dest`` (see the module docstring); replaces what is there."""
    from transformers.utils import logging as hf_logging

    from frpo.rehearsal import content, hubcache, models

    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    hf_logging.disable_progress_bar()  # one line per stand-in saved is noise
    try:
        _build(dest, content, hubcache, models)
    finally:
        hf_logging.enable_progress_bar()
    _write_rows(dest / "data" / "frpo_safety_train.parquet", content.safety_rows())
    _write_rows(dest / "data" / "harmbench_behaviors_text_test.csv", content.harmbench_rows())
    _write_rows(dest / "data" / "strongreject_dataset.csv", content.strongreject_rows())
    _write_rows(dest / "bench" / "MbppPlus.jsonl", content.mbpp_plus_rows())
    (dest / "VERSION").write_text(version() + "\n")


def _build(dest: Path, content, hubcache, models) -> None:
    """The hub cache of :func:`build`: models and data sets under the paper's ids."""
    with tempfile.TemporaryDirectory(prefix="frpo-rehearsal-") as tmp:
        work = Path(tmp)
        core = models.bpe_core(content.corpus()).to_str()
        built: dict[str, Path] = {}
        for i, (repo_id, (arch, family, _)) in enumerate(MODELS.items()):
            tok = models.family_tokenizer(core, family)
            out = work / "models" / repo_id.replace("/", "--")
            if arch == "harmbench":
                built[repo_id] = models.save_harmbench(out, tok, seed=i)
            elif arch == "reward":
                built[repo_id] = models.save_reward_model(out, tok, seed=i)
            else:
                extra = {"head_dim": models.HIDDEN // models.HEADS} if arch == "Gemma" else {}
                built[repo_id] = models.save_causal(out, tok, arch, seed=i, **extra)
        adapter_id, base_id = ADAPTER
        built[adapter_id] = models.save_strongreject_adapter(
            work / "models" / "adapter", built[base_id], models.family_tokenizer(core, "gemma"),
            base_id, seed=99,
        )  # fmt: skip
        hub = dest / "hub"
        for repo_id, path in built.items():
            revisions = MODELS[repo_id][2] if repo_id in MODELS else ("main",)
            hubcache.put(hub, "model", repo_id, path, revisions)
        for repo_id, (path, configs) in _datasets(work).items():
            (path / "README.md").write_text(hubcache.dataset_card(configs))
            hubcache.put(hub, "dataset", repo_id, path)


def ensure_built() -> Path:
    """The stand-ins' directory, built first when missing or out of date (one builder at a
    time: concurrent runs wait for it)."""
    from frpo.locks import LOCKS_DIR, exclusive

    dest = root()
    stamp = dest / "VERSION"
    with exclusive(dest.parent / LOCKS_DIR / "rehearsal.lock"):
        if not stamp.is_file() or stamp.read_text().strip() != version():
            build(dest)
    return dest


def environment(dest: Path) -> dict[str, str]:
    """The environment that points the Hugging Face libraries at the stand-ins, offline."""
    return {
        **OFFLINE_ENV,
        "HF_HUB_CACHE": str(dest / "hub"),
        "HF_DATASETS_CACHE": str(dest / "datasets-cache"),
    }


def moderation_urls(profile) -> set[str]:
    """Every ``judge.moderation_url`` of the profile's world blocks."""
    urls = set()
    for nb in profile.notebooks.values():
        for value in nb.params.values():
            if isinstance(value, dict) and isinstance(value.get("data"), dict):
                url = value["data"].get("judge.moderation_url")
                if url:
                    urls.add(str(url))
    return urls


def setup(profile) -> None:
    """The rehearsal profile's setup hook (module docstring): stand-ins, environment, the
    moderation endpoint stand-in on each local ``judge.moderation_url``."""
    from urllib.parse import urlparse

    from frpo.rehearsal import moderation

    dest = ensure_built()
    os.environ.update(environment(dest))
    for url in sorted(moderation_urls(profile)):
        parts = urlparse(url)
        if parts.hostname not in ("127.0.0.1", "localhost") or parts.port is None:
            continue
        if moderation.running(parts.hostname, parts.port):
            continue
        try:
            moderation.serve(parts.hostname, parts.port)
        except OSError as err:
            raise RuntimeError(
                f"cannot start the moderation stand-in on {parts.hostname}:{parts.port} ({err});"
                f" free the port or change judge.moderation_url in {profile.path}"
            ) from err
