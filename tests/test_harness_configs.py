"""Launch configs and the GPU environment: each file is consistent with its name and the others."""

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from accelerate.commands.config.config_args import load_config_from_file
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs" / "accelerate").glob("*.yaml"))


def test_the_expected_configs_exist():
    names = {p.name for p in CONFIGS}
    assert {"1gpu.yaml", "4gpu_zero2.yaml", "8gpu_zero2.yaml", "8gpu_zero3.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_accelerate_config_consistent(path):
    match = re.fullmatch(r"(\d+)gpu(?:_zero(\d))?\.yaml", path.name)
    assert match, f"config name {path.name} does not say <n>gpu[_zero<stage>].yaml"
    n_gpus, stage = int(match.group(1)), int(match.group(2) or 2)
    raw = yaml.safe_load(path.read_text())
    assert raw["num_processes"] == n_gpus
    assert raw["num_machines"] == 1 and raw["use_cpu"] is False
    assert raw["mixed_precision"] == "bf16"
    assert raw["distributed_type"] == "DEEPSPEED"
    ds = raw["deepspeed_config"]
    assert ds["zero_stage"] == stage
    assert ds["zero3_init_flag"] is (stage == 3)  # ZeRO-3 shards weights at init, ZeRO-2 not
    if stage == 3:
        assert ds["zero3_save_16bit_model"] is True  # gather a loadable checkpoint on save
    # accelerate itself parses it the same way
    cfg = load_config_from_file(str(path))
    assert cfg.num_processes == n_gpus and str(cfg.mixed_precision) == "bf16"
    assert cfg.deepspeed_config["zero_stage"] == stage


def _gpu_pins() -> dict[str, Requirement]:
    env = yaml.safe_load((ROOT / "environment-gpu.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    return {Requirement(r).name: Requirement(r) for r in pip if not r.startswith("-")}


def _pinned(req: Requirement) -> Version:
    (spec,) = [s for s in req.specifier if s.operator == "=="]
    return Version(spec.version)


def test_gpu_environment_pins_are_mutually_consistent():
    pins = _gpu_pins()
    vllm, torch = _pinned(pins["vllm"]), _pinned(pins["torch"])
    # trl's own metadata: the vllm range its vllm extra allows
    trl_vllm = next(
        Requirement(r) for r in importlib.metadata.requires("trl") if r.startswith("vllm")
    )
    assert vllm in trl_vllm.specifier
    # vllm 0.31.0's published requirements (its wheel's METADATA): torch==2.13.0,
    # transformers>=5.10.4,<5.18.0
    assert (vllm, torch) == (Version("0.31.0"), Version("2.13.0"))
    for v in ("5.10.4", "5.17.0"):
        assert Version(v) in pins["transformers"].specifier
    assert Version("5.18.0") not in pins["transformers"].specifier
    assert pins["lm-eval"].extras == {"vllm", "ifeval", "math"}


def test_pyproject_paper_extra_admits_the_gpu_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _gpu_pins()
    for line in project["optional-dependencies"]["paper"] + project["dependencies"]:
        req = Requirement(line)
        if req.name in pins and any(s.operator == "==" for s in pins[req.name].specifier):
            assert _pinned(pins[req.name]) in req.specifier, f"{req} excludes the GPU pin"
        if req.name in pins:
            assert req.extras <= pins[req.name].extras, f"{req}: extras differ from the GPU env"
