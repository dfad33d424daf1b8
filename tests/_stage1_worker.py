"""One process of ``tests/test_stages_distributed.py``: the RL runner's CLI under
``accelerate launch``, with spies that write down, per rank, what the test checks.

``python tests/_stage1_worker.py SPEC_JSON OUT_DIR`` (run by accelerate, one copy per process)
runs ``frpo.stages.rlhf.main(["--spec", SPEC_JSON, "--profile", "smoke"])`` after wrapping:

- the files source's GSM8K reward so that it scores through
  :func:`frpo.rewards.safety.on_main_process` (as the paper's moderation judge does), counting
  its calls, and ``torch.distributed.all_gather_object`` (the collective it gathers with),
  counting the gathers made while the reward runs;
- ``build_rl_config`` (the per-device and generation batch TRL computes, its world size);
- ``PreTrainedModel.save_pretrained`` (every model this process writes);
- ``held_out_metrics`` (the evaluations this process runs).

It writes ``OUT_DIR/rank<R>.json`` when the runner returns.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(spec_file: str, out_dir: str) -> None:
    import torch
    import transformers

    from frpo.rewards import safety
    from frpo.stages import files, rlhf

    torch.set_num_threads(1)
    rank = int(os.environ["RANK"])
    record = {"rank": rank, "world": int(os.environ["WORLD_SIZE"]), "configs": [], "saves": []}
    record.update(evaluations=0, reward_calls=0, gathers=0)

    inside: list[bool] = []  # non-empty while the reward runs

    def gsm8k_reward(prompts, completions, solution, **kw):
        values = files.gsm8k_reward(prompts, completions, solution)
        record["reward_calls"] += 1
        texts = [repr(v) for v in values]
        inside.append(True)
        try:
            return safety.on_main_process(lambda p, c: [float(x) for x in c], texts, texts)
        finally:
            inside.pop()

    files.FileBackend.reward_funcs = lambda self, task: [gsm8k_reward]

    gather = torch.distributed.all_gather_object

    def all_gather_object(*args, **kwargs):
        record["gathers"] += bool(inside)  # TRL gathers too (completions, metrics): not counted
        return gather(*args, **kwargs)

    torch.distributed.all_gather_object = all_gather_object

    build = rlhf.build_rl_config

    def build_rl_config(*args, **kwargs):
        cfg = build(*args, **kwargs)
        record["configs"].append(
            {
                "per_device": cfg.per_device_train_batch_size,
                "generation_batch": cfg.generation_batch_size,
                "world_size": cfg.world_size,
            }
        )
        return cfg

    rlhf.build_rl_config = build_rl_config

    save = transformers.PreTrainedModel.save_pretrained

    def save_pretrained(self, path, *args, **kwargs):
        record["saves"].append(str(path))
        return save(self, path, *args, **kwargs)

    transformers.PreTrainedModel.save_pretrained = save_pretrained

    evaluate = rlhf.held_out_metrics

    def held_out_metrics(*args, **kwargs):
        record["evaluations"] += 1
        return evaluate(*args, **kwargs)

    rlhf.held_out_metrics = held_out_metrics

    rlhf.main(["--spec", spec_file, "--profile", "smoke"])
    (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
