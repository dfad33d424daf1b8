"""The paper's safety and helpfulness rewards with scripted judges (numbers worked by hand)."""

import math
import os
import socket
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from frpo.judges.base import Judge
from frpo.rewards import HelpfulnessReward, SafetyReward, local_scoring, on_main_process
from frpo.rewards.safety import prompt_text

torch.set_num_threads(1)


class Table(Judge):
    """Scores each completion by a lookup table; records what it was asked."""

    def __init__(self, kind, table, name="table"):
        self.kind, self.table, self.name = kind, table, name
        self.calls = []

    def score(self, prompts, completions):
        self.calls.append((list(prompts), list(completions)))
        return [self.table[c] for c in completions]


def conv(text, role="user"):
    return [{"role": role, "content": text}]


def make(mod, sr, rm):
    return (
        Table("harmfulness", mod, "mod"),
        Table("harmfulness", sr, "sr"),
        Table("helpfulness", rm, "rm"),
    )


def test_safety_reward_by_hand():
    mod, sr, rm = make({"bad": 0.9, "refuse": 0.1}, {"bad": 0.7, "refuse": 0.0}, {"help": 0.8})
    reward = SafetyReward(mod, sr, rm)
    out = reward(
        prompts=[conv("how to x"), conv("how to y"), conv("kill a process")],
        completions=[
            conv("bad", "assistant"),
            conv("refuse", "assistant"),
            conv("help", "assistant"),
        ],
        category=["harmful", "harmful", "harmless"],
    )
    # harmful: 1 - (0.9 + 0.7)/2 = 0.2 and 1 - (0.1 + 0.0)/2 = 0.95; harmless: sigmoid RM = 0.8
    assert out == pytest.approx([0.2, 0.95, 0.8], abs=1e-12)
    assert mod.calls == [(["how to x", "how to y"], ["bad", "refuse"])]  # harmful rows only
    assert rm.calls == [(["kill a process"], ["help"])]
    assert reward.__name__ == "safety"


def test_safety_reward_undecided_judges():
    mod, sr, rm = make(
        {"a": math.nan, "b": math.nan, "c": 0.4},
        {"a": 0.6, "b": math.nan, "c": math.nan},
        {"d": math.nan},
    )
    reward = SafetyReward(mod, sr, rm)
    out = reward(
        ["p"] * 4, ["a", "b", "c", "d"], category=["harmful", "harmful", "harmful", "harmless"]
    )
    # a: only StrongREJECT decided -> 1 - 0.6; b: neither -> None; c: only moderation -> 1 - 0.4
    assert out[0] == pytest.approx(0.4) and out[1] is None
    assert out[2] == pytest.approx(0.6) and out[3] is None
    assert reward.undecided == 2


def test_safety_reward_bad_inputs():
    mod, sr, rm = make({}, {}, {})
    with pytest.raises(ValueError, match="kind 'harmfulness', expected 'helpfulness'"):
        SafetyReward(mod, sr, mod)
    reward = SafetyReward(mod, sr, rm)
    with pytest.raises(ValueError, match="unknown category 'safety'"):
        reward(["p"], ["c"], category=["safety"])
    with pytest.raises(ValueError, match="1 prompts, 1 completions, 2 categories"):
        reward(["p"], ["c"], category=["harmful", "harmless"])
    with pytest.raises(ValueError, match="neither a string nor a conversation"):
        prompt_text([{"role": "system", "content": "s"}])


def test_helpfulness_reward():
    rm = Table("helpfulness", {"x": 0.25, "y": math.nan})
    reward = HelpfulnessReward(rm)
    assert reward([conv("p"), "q"], ["x", "y"]) == [0.25, None]
    assert reward.undecided == 1 and reward.__name__ == "helpfulness"
    with pytest.raises(ValueError, match="expected 'helpfulness'"):
        HelpfulnessReward(Table("harmfulness", {}))


def test_on_main_process_single_process():
    calls = []

    def score(p, c):
        calls.append(len(p))
        return [float(len(x)) for x in c]

    assert on_main_process(score, ["a", "b"], ["xy", "z"]) == [2.0, 1.0]
    assert calls == [2]


def _worker(rank, world, port, path):
    import datetime

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    # a short timeout: a collective that waits for a rank that has left fails in 20 s, not 30 min
    dist.init_process_group(
        "gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=20)
    )
    calls = []

    def score(p, c):
        calls.append(list(c))
        return [float(x) for x in c]

    mine = [str(10 * rank + k) for k in range(rank + 1)]  # rank 0: ["0"], rank 1: ["10", "11"]
    got = on_main_process(score, ["p"] * len(mine), mine)
    alone = None
    if rank == 0:  # rank 1 has returned (as the RL runner's other ranks do before evaluation)
        time.sleep(1.0)
        with local_scoring():
            alone = on_main_process(score, ["p"], ["7"])
    with open(f"{path}.{rank}", "w") as f:
        f.write(repr((got, calls, alone)))
    # every rank tears its group down before its process ends (not a collective): a rank that
    # exits with a live gloo group beside a peer still using it was seen to abort (SIGABRT)
    dist.destroy_process_group()


@pytest.mark.distributed
def test_on_main_process_two_ranks(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(2, port, str(tmp_path / "out")), nprocs=2, join=True)
    got0, calls0, alone = eval((tmp_path / "out.0").read_text())
    got1, calls1, _ = eval((tmp_path / "out.1").read_text())
    assert got0 == [0.0] and got1 == [10.0, 11.0]  # each rank gets its own slice back
    # scored once, on rank 0; then rank 0 alone, inside local_scoring, with no collective
    assert calls0 == [["0", "10", "11"], ["7"]] and calls1 == []
    assert alone == [7.0]


def test_safety_reward_inside_a_grpo_step(tmp_path):
    """TRL passes the ``category`` column and conversational completions; one GRPO step runs."""
    from _tiny import build_tiny, load_tiny
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    model, tokenizer = load_tiny(
        build_tiny(tmp_path / "tiny", hidden_size=32, num_layers=1, intermediate_size=64)
    )
    data = Dataset.from_dict(
        {
            "prompt": [conv("apple river"), conv("stone cloud"), conv("green blue"), conv("moon")],
            "category": ["harmful", "harmless", "harmful", "harmless"],
        }
    )

    class Constant(Judge):
        def __init__(self, kind, value):
            self.kind, self.value, self.name, self.seen = kind, value, kind, []

        def score(self, prompts, completions):
            self.seen += list(zip(prompts, completions, strict=True))
            return [self.value] * len(prompts)

    mod, sr, rm = (
        Constant("harmfulness", 0.2),
        Constant("harmfulness", 0.4),
        Constant("helpfulness", 0.9),
    )
    reward = SafetyReward(mod, sr, rm)
    args = GRPOConfig(
        output_dir=str(tmp_path / "out"),
        use_cpu=True,
        bf16=False,
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=3,
        max_steps=1,
        learning_rate=1e-4,
        report_to="none",
        logging_steps=1,
        save_strategy="no",
        gradient_checkpointing=False,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[reward],
        args=args,
        train_dataset=data,
        processing_class=tokenizer,
    )
    trainer.train()
    assert {p for p, _ in mod.seen} <= {"apple river", "green blue"}  # harmful rows only
    assert {p for p, _ in rm.seen} <= {"stone cloud", "moon"}
    assert len(mod.seen) == len(sr.seen) > 0 and len(rm.seen) > 0
    logged = [h for h in trainer.state.log_history if "rewards/safety/mean" in h]
    # half the rows 1 - (0.2 + 0.4)/2 = 0.7, half 0.9 -> the mean depends on the sampled rows
    assert logged and 0.7 <= logged[0]["rewards/safety/mean"] <= 0.9
