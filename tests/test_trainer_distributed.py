"""Two CPU processes (gloo): FRPOTrainer's step equals a hand step on frpo_loss(whole batch).

Each process gets 6 of the 12 rows of a generation batch of 3 prompts x G = 4, so the middle
prompt's group straddles the processes, and splits them into two shuffled micro-batches of 3
(gradient_accumulation_steps = steps_per_generation = 2), so groups straddle those too. The
workers (this file run by ``torchrun --nproc_per_node 2``, gloo on CPU) save the micro-batches
their loss saw and the parameters after one SGD step; the test rebuilds the whole batch, applies
``frpo_loss`` + beta * KL in one process and compares.
"""

import dataclasses
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
LR = 0.5
SETTINGS = dict(
    per_device_train_batch_size=3, gradient_accumulation_steps=2, steps_per_generation=2,
    lam=0.5, beta=0.1,
)  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(model_path: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    sys.path.insert(0, str(ROOT / "tests"))
    import _tiny

    trainer = _tiny.exact_recording_trainer(model_path, out_dir, learning_rate=LR, **SETTINGS)
    trainer.train()
    rank = trainer.accelerator.process_index
    unwrapped = trainer.accelerator.unwrap_model(trainer.model)
    after = {n: p.detach().clone() for n, p in unwrapped.named_parameters()}
    world = trainer.accelerator.num_processes
    torch.save({"batches": trainer.recorded, "after": after, "world": world},
               os.path.join(out_dir, f"rank{rank}.pt"))  # fmt: skip


@pytest.mark.distributed
def test_two_processes_groups_straddle(tmp_path):
    import _tiny

    from frpo.trainer import FRPOConfig, loss_scale_factor

    torch.set_num_threads(1)
    path = _tiny.build_tiny(tmp_path / "tiny", hidden_size=32, num_layers=2, intermediate_size=64)
    out = tmp_path / "out"
    out.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), __file__, path, str(out),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]

    r0, r1 = (torch.load(out / f"rank{r}.pt") for r in (0, 1))
    assert r0["world"] == r1["world"] == 2
    # DDP keeps the replicas identical
    assert all(torch.equal(r0["after"][k], r1["after"][k]) for k in r0["after"])
    batches = r0["batches"] + r1["batches"]
    assert [len(b["advantages"]) for b in batches] == [3, 3, 3, 3]
    gids = _tiny.prompt_group_ids(batches)
    assert set(gids[:6].tolist()) & set(gids[6:].tolist())  # a group split across processes

    model, _ = _tiny.load_tiny(path, torch.float64)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    defaults = {f.name: f.default for f in dataclasses.fields(FRPOConfig)}
    lam, beta = SETTINGS["lam"], SETTINGS["beta"]
    _tiny.reference_step(model, batches, lam=lam, beta=beta, epsilon=defaults["epsilon"], lr=LR,
                         scale=loss_scale_factor(lam, defaults["loss_scale"]))  # fmt: skip
    ref = {n: p.detach().clone() for n, p in model.named_parameters()}
    rel = _tiny.max_rel_diff(ref, r0["after"], start)
    print(f"step mismatch relative to the step: {rel:.2e}")
    assert rel < 1e-6


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2])
