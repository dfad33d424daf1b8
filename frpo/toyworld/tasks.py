"""The world's tasks as rows: fixed, disjoint, seed-deterministic train/heldout splits.

Action tasks (safety, alpaca, helpful, attack) split by *action*: a heldout action never appears
in the train split of that task, in any frame. Problem tasks (gsm8k, math, code) split by problem.
Heldout takes ``HELDOUT_FRACTION`` of each pool, chosen by a seeded permutation.
"""

from __future__ import annotations

import numpy as np

from frpo.splits import SPLITS
from frpo.toyworld import lexicon, problems
from frpo.toyworld.lexicon import Action

TASKS = ("safety", "alpaca", "gsm8k", "math", "code", "helpful", "attack")
"""Task names. A task's position seeds its split and shuffle: append new tasks, never reorder."""
HELDOUT_FRACTION = 0.2
SAFETY_HARMLESS_SHARE = {"borderline": 0.7, "harmless": 0.3}
"""The safety task's harmless half: mostly OR-Bench-like borderline requests, some plain ones."""


def check_task_split(task: str, split: str) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")


def split_pool(items: list, seed: int, salt: int) -> dict[str, list]:
    """Seeded partition of ``items`` into {"train", "heldout"} (order within each kept random)."""
    rng = np.random.default_rng([seed, 11, salt])
    order = rng.permutation(len(items))
    k = max(1, int(round(HELDOUT_FRACTION * len(items))))
    return {
        "heldout": [items[i] for i in order[:k]],
        "train": [items[i] for i in order[k:]],
    }


def action_split(actions: list[Action], seed: int) -> dict[str, dict[str, list[Action]]]:
    """Per category, the train/heldout actions (the same partition for every action task)."""
    out: dict[str, dict[str, list[Action]]] = {}
    for salt, cat in enumerate(("harmful", "borderline", "harmless")):
        out[cat] = split_pool([a for a in actions if a.category == cat], seed, salt)
    return out


def action_row(task: str, frame: str, a: Action) -> dict:
    """One RL row of an action task (prompt, category, verb, obj)."""
    text = frame.format(v=a.verb, o=a.obj)
    return {
        "prompt": [{"role": "user", "content": text}],
        "category": a.category,
        "verb": a.verb,
        "obj": a.obj,
        "task": task,
    }


def ideal_answer(a: Action) -> str:
    """What a safe and helpful assistant says: refuse harmful, help with everything else."""
    return lexicon.REFUSALS[0] if a.category == "harmful" else a.answer()


def action_rows(task: str, split: str, actions: list[Action], seed: int) -> list[dict]:
    """All rows of an action task's split, shuffled with the seed."""
    parts = action_split(actions, seed)
    rng = np.random.default_rng([seed, 13, TASKS.index(task), SPLITS.index(split)])
    if task == "safety":
        harmful = [
            action_row(task, f, a) for a in parts["harmful"][split] for f in lexicon.SAFETY_FRAMES
        ]
        rows = list(harmful)
        for cat, share in SAFETY_HARMLESS_SHARE.items():
            pool = [
                action_row(task, f, a) for a in parts[cat][split] for f in lexicon.SAFETY_FRAMES
            ]
            take = min(len(pool), int(round(share * len(harmful))))
            idx = rng.choice(len(pool), size=take, replace=False)
            rows += [pool[i] for i in sorted(idx)]
    elif task == "alpaca":
        rows = [
            action_row(task, f, a) for a in parts["harmless"][split] for f in lexicon.ALPACA_FRAMES
        ]
    elif task == "helpful":
        rows = [
            action_row(task, f, a)
            for cat in ("borderline", "harmless")
            for a in parts[cat][split]
            for f in lexicon.HELPFUL_FRAMES
        ]
    elif task == "attack":  # the fine-tuning attack's data: harmful requests, compliant answers
        rows = [
            {**action_row(task, f, a), "solution": a.answer()}
            for a in parts["harmful"][split]
            for f in lexicon.SAFETY_FRAMES
        ]
    else:
        raise ValueError(f"{task!r} is not an action task")
    order = rng.permutation(len(rows))
    return [rows[i] for i in order]


def problem_pool(task: str) -> list[problems.Problem]:
    return {
        "gsm8k": problems.gsm8k_problems,
        "math": problems.math_problems,
        "code": problems.code_problems,
    }[task]()


def problem_rows(task: str, split: str, seed: int) -> list[dict]:
    """All rows of a problem task's split (prompt, answer, solution), shuffled with the seed."""
    pool = split_pool(problem_pool(task), seed, 100 + TASKS.index(task))[split]
    return [
        {
            "prompt": [{"role": "user", "content": p.prompt}],
            "answer": p.answer,
            "solution": p.solution,
            "category": "harmless",
            "task": task,
        }
        for p in pool
    ]
