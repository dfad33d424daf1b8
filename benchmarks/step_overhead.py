"""Train-step time of FRPOTrainer over GRPOTrainer: the paper's "no extra computation" claim.

Same tiny local model (Qwen2 architecture, ~0.4M parameters, tests/_tiny.py), same settings
(G = 8, 64 completions of up to 8 tokens a step, beta = 0.04 so both run TRL's reference model,
scale_rewards "none", loss_type "dapo"), same seed. Generation is replayed: the first real
generation is captured once and every later step reuses it in both trainers, so both score,
compute log-probs, loss, backward and optimiser step on the identical batch and sampling noise
does not enter the comparison (generation would only add the same time to both).

A step = ``trainer.training_step`` (TRL's scoring, advantages, reference/old log-probs, FRPO's
gather + whole-batch coefficients, the loss, backward) + ``optimizer.step`` + ``zero_grad``.
GRPO and FRPO steps alternate (the order flips every repeat); the ratio is the median over
repeats of FRPO step / GRPO step within a repeat (adjacent steps share the load of a busy machine;
the ratio of the two medians is printed too). ``python benchmarks/step_overhead.py --json``
prints one JSON line ``{"ratio": ...}``; without ``--json`` it also prints the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout uninstalled
# tests/_tiny builds the model; imported as a top-level module, as the tests import it (a package
# named `tests` that evalplus's dependencies install in site-packages would shadow `tests._tiny`)
sys.path.insert(0, str(ROOT / "tests"))

import _tiny  # noqa: E402

G, ROWS, MAX_LEN, BETA = 8, 64, 8, 0.04


def _common(output_dir: str) -> dict:
    return dict(
        output_dir=output_dir,
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        learning_rate=1e-6,
        per_device_train_batch_size=ROWS,
        num_generations=G,
        max_completion_length=MAX_LEN,
        beta=BETA,
        scale_rewards="none",
        loss_type="dapo",
        seed=0,
        max_steps=1000,
        logging_steps=10**6,
    )


def _build(kind: str, path: str, workdir: str):
    from trl import GRPOConfig, GRPOTrainer

    from frpo.trainer import FRPOConfig, FRPOTrainer

    model, tok = _tiny.load_tiny(path)
    if kind == "grpo":
        cls, args = GRPOTrainer, GRPOConfig(**_common(os.path.join(workdir, kind)))
    else:
        cls, args = FRPOTrainer, FRPOConfig(lam=0.5, **_common(os.path.join(workdir, kind)))
    trainer = cls(
        model=model,
        reward_funcs=_tiny.target_fraction_reward,
        args=args,
        train_dataset=_tiny.prompt_dataset(ROWS // G),
        processing_class=tok,
    )
    trainer.create_optimizer_and_scheduler(num_training_steps=args.max_steps)
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer's loop, which we bypass
    return trainer


def _replay_generation(trainer, captured: list) -> None:
    """Capture the trainer's first generation, then replay it on every call."""
    real = trainer._generate

    def generate(prompts):
        if not captured:
            torch.manual_seed(0)
            captured.append(real(prompts))
        return captured[0]

    trainer._generate = generate


def _step(trainer, inputs) -> float:
    start = time.perf_counter()
    trainer.training_step(trainer.model, inputs, None)
    trainer.optimizer.step()
    trainer.optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def measure(repeats: int, warmup: int) -> dict:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as workdir:
        path = _tiny.build_tiny(os.path.join(workdir, "tiny"))
        trainers = {k: _build(k, path, workdir) for k in ("grpo", "frpo")}
        captured: list = []
        for trainer in trainers.values():
            _replay_generation(trainer, captured)  # the same completions for both
        prompts = _tiny.prompt_dataset(ROWS // G)["prompt"]
        inputs = [{"prompt": p} for p in prompts for _ in range(G)]  # (ROWS,) G copies each
        times = {k: [] for k in trainers}
        for rep in range(warmup + repeats):
            order = ("grpo", "frpo") if rep % 2 == 0 else ("frpo", "grpo")
            for kind in order:
                elapsed = _step(trainers[kind], inputs)
                if rep >= warmup:
                    times[kind].append(elapsed)
    med = {k: statistics.median(v) for k, v in times.items()}
    # adjacent GRPO/FRPO steps share the machine's load of the moment: pair them
    paired = [f / g for f, g in zip(times["frpo"], times["grpo"], strict=True)]
    return {
        "ratio": statistics.median(paired),
        "ratio_of_medians": med["frpo"] / med["grpo"],
        "grpo_median_s": med["grpo"],
        "frpo_median_s": med["frpo"],
        "repeats": repeats,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON line {'ratio': ...}")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    cli = parser.parse_args()
    result = measure(cli.repeats, cli.warmup)
    if cli.json:
        print(json.dumps({"ratio": round(result["ratio"], 4)}))
    else:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
