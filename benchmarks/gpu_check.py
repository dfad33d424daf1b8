"""What only a GPU can check, in minutes and offline: run this when a CUDA device is lent.

``python benchmarks/gpu_check.py`` (from the repository root, in the GPU environment of
``environment-gpu.yml``) builds a tiny Qwen2 model on the spot (``tests/_tiny.py``; nothing is
downloaded, the device needs no network) and runs each check in its own process (accelerate's
state is one per process: a DeepSpeed run cannot follow a plain one in the same interpreter):

- ``attention``: :func:`frpo.harness.overrides.attention_implementation` on this machine
  (``flash_attention_2`` where flash-attn imports, else ``sdpa``); the model loads with it in bf16
  and its logits on a padded batch agree with eager attention (max |diff| < 0.1).
- ``grpo_frpo_steps``: bf16 (autocast, fp32 weights) training steps of TRL's GRPOTrainer and
  :class:`frpo.trainer.FRPOTrainer` on one replayed generation batch (as
  ``benchmarks/step_overhead.py`` does), alternating; ``ratio`` = median FRPO step / GRPO step.
- ``vllm_colocate`` (if vLLM imports): two GRPO steps generating with vLLM colocated in the
  process, the paper profile's settings (:func:`frpo.harness.overrides.paper_trainer_overrides`).
- ``zero2`` (if DeepSpeed imports): FRPO steps under DeepSpeed ZeRO-2, one process, bf16;
  the weights move.
- ``sam_zero2`` (if DeepSpeed imports): GRPO+SAM (:class:`frpo.stages.sam.SAMGRPOTrainer`)
  under ZeRO-2; the weights move (issue 10 row 6: they stayed at the start model).

It prints one JSON line ``{"ok": ..., "device": ..., "attention": ..., "ratio": ..., "checks":
{name: {"ok": true|false|null, ...}}}`` (``ok`` null = skipped, with the reason) and exits 0 when
no check failed, 1 when one did, 2 when there is no CUDA device. ``--only NAME ...`` runs some
checks; ``--repeats N`` sets the timed step pairs (default 30). About 3-6 minutes on one GPU.
``--device cpu`` exists for the test suite (fp32 instead of bf16, DeepSpeed and vLLM skipped).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for _name, _value in {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_name, _value)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout
# tests/_tiny builds the model; imported as a top-level module, as the tests import it (a package
# named `tests` that evalplus's dependencies install in site-packages would shadow `tests._tiny`)
sys.path.insert(0, str(ROOT / "tests"))

CHECKS = ("attention", "grpo_frpo_steps", "vllm_colocate", "zero2", "sam_zero2")
NEEDS = {"vllm_colocate": "vllm", "zero2": "deepspeed", "sam_zero2": "deepspeed"}
G, ROWS, MAX_LEN = 8, 32, 16
CHECK_TIMEOUT_S = 300
ZERO2 = {  # "auto" values are filled from TrainingArguments by transformers
    "zero_optimization": {"stage": 2},
    "bf16": {"enabled": "auto"},
    "train_micro_batch_size_per_gpu": "auto",
    "train_batch_size": "auto",
    "gradient_accumulation_steps": "auto",
    "gradient_clipping": "auto",
}


def no_cuda_message() -> str | None:
    """Why this machine cannot run the checks (None when it can)."""
    import torch

    if torch.cuda.is_available():
        return None
    return (
        f"gpu_check needs a CUDA device: torch {torch.__version__} sees none "
        "(torch.cuda.is_available() is False). Run it on a GPU machine in the environment of "
        "environment-gpu.yml (README, 'Checking a GPU machine')."
    )


def build_model(workdir: Path) -> str:
    """The tiny Qwen2 model (head dim 32) and its tokenizer, saved under ``workdir``."""
    import _tiny

    return _tiny.build_tiny(workdir / "tiny", hidden_size=128, num_layers=2, intermediate_size=256)


def trainer_config(kind: str, out: Path, device: str, **extra):
    """GRPOConfig / FRPOConfig of a tiny run: bf16 autocast on fp32 weights on a GPU."""
    from trl import GRPOConfig

    from frpo.harness.overrides import attention_implementation
    from frpo.trainer import FRPOConfig

    kw = dict(
        output_dir=str(out),
        use_cpu=device == "cpu",
        bf16=device == "cuda",
        gradient_checkpointing=False,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        learning_rate=1e-3,
        per_device_train_batch_size=ROWS,
        num_generations=G,
        max_completion_length=MAX_LEN,
        beta=0.04,
        scale_rewards="none",
        seed=0,
        max_steps=1000,
        logging_steps=10**6,
        model_init_kwargs={
            "dtype": "float32",
            "attn_implementation": attention_implementation() if device == "cuda" else "sdpa",
        },
    )
    kw.update(extra)
    if kind == "frpo":
        return FRPOConfig(lam=0.5, **kw)
    return GRPOConfig(**kw)


def make_trainer(kind: str, path: str, out: Path, device: str, **extra):
    import _tiny
    from trl import GRPOTrainer

    from frpo.stages.sam import SAMGRPOTrainer
    from frpo.trainer import FRPOTrainer

    args = trainer_config("frpo" if kind == "frpo" else "grpo", out, device, **extra)
    cls = {"grpo": GRPOTrainer, "frpo": FRPOTrainer, "sam": SAMGRPOTrainer}[kind]
    kw = {"sam_rho": 0.05} if kind == "sam" else {}
    return cls(
        model=path,
        reward_funcs=_tiny.target_fraction_reward,
        args=args,
        train_dataset=_tiny.prompt_dataset(4 * ROWS // G),
        processing_class=_tiny.load_tiny(path)[1],
        **kw,
    )


def moved_share(trainer, path: str) -> float:
    """Share of weights (compared in the trained model's dtype) that differ from the start."""
    import _tiny

    start = _tiny.load_tiny(path)[0].state_dict()
    model = trainer.accelerator.unwrap_model(trainer.model)
    n = moved = 0
    for name, p in model.named_parameters():
        before = start[name].to(device=p.device, dtype=p.dtype)
        n += p.numel()
        moved += int((p.detach() != before).sum())
    return moved / max(n, 1)


def check_attention(path: str, workdir: Path, device: str, repeats: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    from frpo.harness.overrides import attention_implementation

    impl = attention_implementation() if device == "cuda" else "sdpa"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    ids = torch.randint(3, 20, (4, 24), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, :5] = 0  # left padding on one row
    out = {}
    for name in (impl, "eager"):
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation=name)
        model.to(device).eval()
        with torch.no_grad():
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        out[name] = logits.float()[mask.bool().to(device)]  # real tokens only
    diff = float((out[impl] - out["eager"]).abs().max())
    return {"ok": diff < 0.1, "implementation": impl, "max_abs_diff_vs_eager": diff}


def check_grpo_frpo_steps(path: str, workdir: Path, device: str, repeats: int) -> dict:
    """Alternating GRPO / FRPO steps on one replayed generation batch; the median ratio."""
    import _tiny
    import torch

    torch.manual_seed(0)
    trainers = {k: make_trainer(k, path, workdir / k, device) for k in ("grpo", "frpo")}
    captured: list = []
    for t in trainers.values():
        t.create_optimizer_and_scheduler(num_training_steps=t.args.max_steps)
        t.model.train()
        t.current_gradient_accumulation_steps = 1  # set by Trainer's loop, which is bypassed
        real = t._generate

        def generate(prompts, real=real):
            if not captured:
                captured.append(real(prompts))
            return captured[0]

        t._generate = generate
    prompts = _tiny.prompt_dataset(ROWS // G)["prompt"]
    inputs = [{"prompt": p} for p in prompts for _ in range(G)]  # (ROWS,) G copies each
    times: dict[str, list[float]] = {k: [] for k in trainers}
    losses = []
    for rep in range(3 + repeats):
        for kind in ("grpo", "frpo") if rep % 2 == 0 else ("frpo", "grpo"):
            t = trainers[kind]
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            loss = t.training_step(t.model, inputs, None)
            t.optimizer.step()
            t.optimizer.zero_grad(set_to_none=True)
            if device == "cuda":
                torch.cuda.synchronize()
            if rep >= 3:
                times[kind].append(time.perf_counter() - start)
            losses.append(float(loss))
    ratio = statistics.median(f / g for f, g in zip(times["frpo"], times["grpo"], strict=True))
    moved = {k: moved_share(t, path) for k, t in trainers.items()}
    finite = all(x == x and abs(x) != float("inf") for x in losses)
    return {
        "ok": finite and min(moved.values()) > 0.5,
        "ratio": ratio,
        "grpo_median_s": statistics.median(times["grpo"]),
        "frpo_median_s": statistics.median(times["frpo"]),
        "dtype": "bf16 autocast" if device == "cuda" else "fp32",
        "moved_share": moved,
        "repeats": repeats,
    }


def check_vllm_colocate(path: str, workdir: Path, device: str, repeats: int) -> dict:
    from frpo.harness.overrides import paper_trainer_overrides

    paper = paper_trainer_overrides(1)
    keys = ("use_vllm", "vllm_mode", "vllm_gpu_memory_utilization", "vllm_tensor_parallel_size")
    extra = {k: paper[k] for k in keys}
    trainer = make_trainer(
        "grpo", path, workdir / "vllm", device, max_steps=2,
        vllm_importance_sampling_correction=False, **extra,
    )  # fmt: skip
    trainer.train()
    moved = moved_share(trainer, path)
    return {"ok": moved > 0.5, "moved_share": moved, "steps": trainer.state.global_step}


def _single_process_env() -> None:
    """A one-process torch.distributed world, as ``accelerate launch`` would set it."""
    from trl.trainer.utils import ensure_master_addr_port

    for k, v in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"}.items():
        os.environ.setdefault(k, v)
    ensure_master_addr_port()


def check_zero2(path: str, workdir: Path, device: str, repeats: int, kind: str = "frpo") -> dict:
    _single_process_env()
    trainer = make_trainer(kind, path, workdir / f"zero2-{kind}", device, max_steps=3,
                           deepspeed=ZERO2)  # fmt: skip
    plugin = trainer.accelerator.state.deepspeed_plugin
    trainer.train()
    moved = moved_share(trainer, path)
    return {
        "ok": plugin is not None and plugin.zero_stage == 2 and moved > 0.5,
        "zero_stage": None if plugin is None else plugin.zero_stage,
        "moved_share": moved,
        "steps": trainer.state.global_step,
    }


def check_sam_zero2(path: str, workdir: Path, device: str, repeats: int) -> dict:
    return check_zero2(path, workdir, device, repeats, kind="sam")


def run_child(name: str, path: str, workdir: Path, device: str, repeats: int) -> None:
    """Run one check in this process; print its result as the last stdout line."""
    import torch

    torch.manual_seed(0)
    result = globals()[f"check_{name}"](path, workdir, device, repeats)
    print(json.dumps(result))


def run_all(names, device: str, repeats: int, timeout: float = CHECK_TIMEOUT_S) -> dict:
    """Every check in its own process (or skipped); the summary dict."""
    import torch

    summary: dict = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu"}
    summary["torch"] = torch.__version__
    checks: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        path = build_model(workdir)
        for name in names:
            lib = NEEDS.get(name)
            if device == "cpu" and lib is not None:
                checks[name] = {"ok": None, "skipped": f"{lib} needs a GPU (--device cpu)"}
                continue
            if lib is not None and importlib.util.find_spec(lib) is None:
                checks[name] = {"ok": None, "skipped": f"{lib} is not installed"}
                continue
            cmd = [sys.executable, __file__, "--child", name, "--model", path, "--workdir",
                   str(workdir), "--device", device, "--repeats", str(repeats)]  # fmt: skip
            t0 = time.perf_counter()
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
                lines = proc.stdout.strip().splitlines()
                result = json.loads(lines[-1]) if proc.returncode == 0 and lines else None
                if result is None:
                    result = {"ok": False, "error": proc.stderr[-3000:] or proc.stdout[-3000:]}
            except subprocess.TimeoutExpired:
                result = {"ok": False, "error": f"timed out after {timeout:.0f} s"}
            result["seconds"] = round(time.perf_counter() - t0, 1)
            checks[name] = result
    summary["attention"] = checks.get("attention", {}).get("implementation")
    summary["ratio"] = checks.get("grpo_frpo_steps", {}).get("ratio")
    summary["checks"] = checks
    summary["ok"] = all(c["ok"] is not False for c in checks.values())
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=CHECKS, default=list(CHECKS))
    parser.add_argument("--repeats", type=int, default=30, help="timed GRPO/FRPO step pairs")
    parser.add_argument(
        "--device",
        choices=("cuda", "cpu"),
        default="cuda",
        help="cpu: for the test suite only (fp32; DeepSpeed and vLLM skipped)",
    )
    parser.add_argument("--child", choices=CHECKS, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    cli = parser.parse_args(argv)
    if cli.child:
        run_child(cli.child, cli.model, Path(cli.workdir), cli.device, cli.repeats)
        return 0
    if cli.device == "cuda":
        why = no_cuda_message()
        if why is not None:
            print(why, file=sys.stderr)
            return 2
    summary = run_all(cli.only, cli.device, cli.repeats)
    print(json.dumps(summary))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
