"""Math data: GSM8K (RL or SFT), MATH levels 3-5 (stage-1 math RL), MATH-500 (evaluation).

MATH-500 (HuggingFaceH4/MATH-500, Lightman et al.'s 500 test problems) is taken from MATH's
test split, and a copy of MATH with all 12,500 problems in one split (qwedsacf/
competition_math) holds it: :func:`load_math_train` drops every problem whose text is a
MATH-500 problem's (``exclude``), so the stage-1 math data never holds the evaluation set.

RL format: ``prompt`` = ``[{"role": "user", "content": problem + instruction}]`` and ``answer``,
the column :func:`frpo.rewards.math.math_reward` reads. SFT format: ``messages``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from datasets import Dataset, Value

from frpo.data._io import load_source, require_columns, sft_messages, user_prompt
from frpo.rewards.math import last_boxed

BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
_CALCULATOR = re.compile(r"<<[^<>]*>>")


def _with_instruction(problem: str, instruction: str | None) -> str:
    return f"{problem}\n\n{instruction}" if instruction else problem


def gsm8k_final_answer(solution: str) -> str:
    """The number after GSM8K's ``####`` marker, thousands separators removed."""
    if "####" not in solution:
        raise ValueError(f"GSM8K answer has no '####' final answer: {solution[-80:]!r}")
    return solution.rsplit("####", 1)[1].strip().replace(",", "")


def load_gsm8k(
    source: str | os.PathLike = "openai/gsm8k",
    split: str = "train",
    fmt: str = "sft",
    instruction: str | None = None,
    strip_calculator: bool = False,
) -> Dataset:
    """GSM8K (hub config ``main``: ``question``, ``answer`` ending ``#### N``).

    ``fmt="sft"`` (downstream fine-tuning, paper Sec. 5.1): ``messages`` with the whole worked
    solution as the assistant turn, final ``#### N`` line kept; ``<<48/2=24>>`` calculator
    annotations removed when ``strip_calculator``. ``fmt="rl"``: ``prompt`` and ``answer`` (N).
    """
    if fmt not in ("sft", "rl"):
        raise ValueError(f"fmt must be 'sft' or 'rl', got {fmt!r}")
    ds = load_source(source, split=split, config="main")
    require_columns(ds, ["question", "answer"], source)

    def convert(r):
        final = gsm8k_final_answer(r["answer"])
        if fmt == "rl":
            return {
                "prompt": user_prompt(_with_instruction(r["question"], instruction)),
                "answer": final,
            }
        solution = _CALCULATOR.sub("", r["answer"]) if strip_calculator else r["answer"]
        return {"messages": sft_messages(r["question"], solution)}

    return ds.map(convert, remove_columns=ds.column_names)


def math_level(level) -> int:
    """``"Level 3"`` (competition_math) or ``3`` (MATH-500) -> 3; ``"Level ?"`` -> 0."""
    if isinstance(level, int):
        return level
    match = re.fullmatch(r"\s*Level\s+(\d+)\s*", str(level))
    return int(match.group(1)) if match else 0


def problem_key(problem: str) -> str:
    """A MATH problem's text with runs of whitespace made one space (the key two copies of the
    same problem share)."""
    return " ".join(str(problem).split())


def load_math_train(
    source: str | os.PathLike = "DigitalLearningGmbH/MATH-lighteval",
    levels: tuple[int, ...] = (3, 4, 5),
    split: str = "train",
    instruction: str | None = BOXED_INSTRUCTION,
    exclude: Iterable[str] = (),
) -> Dataset:
    """MATH training problems of the given levels, RL format (stage-1 math, paper Sec. 5.2).

    Source columns: ``problem``, ``level`` ("Level N"), ``type``, ``solution``. The reference
    answer is the last ``\\boxed{...}`` of the solution; rows without one are dropped, and so
    is every problem whose text (:func:`problem_key`) is among ``exclude`` (the MATH-500
    problems, when MATH-500 is the evaluation set). Returns ``prompt``, ``answer``, ``level``
    (int), ``type``.
    """
    ds = load_source(source, split=split)
    require_columns(ds, ["problem", "level", "type", "solution"], source)
    banned = {problem_key(p) for p in exclude}
    ds = ds.filter(
        lambda r: (
            math_level(r["level"]) in levels
            and last_boxed(r["solution"]) is not None
            and problem_key(r["problem"]) not in banned
        )
    )
    if len(ds) == 0:
        raise ValueError(f"{source}: no problem of levels {levels} with a boxed answer")
    ds = ds.map(
        lambda r: {
            "prompt": user_prompt(_with_instruction(r["problem"], instruction)),
            "answer": last_boxed(r["solution"]),
            "level": math_level(r["level"]),
            "type": r["type"],
        },
        remove_columns=ds.column_names,
    )
    return ds.cast_column("level", Value("int64"))  # the source's "Level N" strings


def load_math500(
    source: str | os.PathLike = "HuggingFaceH4/MATH-500",
    split: str = "test",
    instruction: str | None = BOXED_INSTRUCTION,
) -> Dataset:
    """MATH-500 (columns ``problem``, ``solution``, ``answer``, ``subject``, ``level``,
    ``unique_id``), RL format: ``prompt``, ``answer``, ``subject``, ``level``, ``unique_id``,
    ``problem`` (the text, for :func:`load_math_train`'s ``exclude``)."""
    ds = load_source(source, split=split)
    require_columns(ds, ["problem", "solution", "answer", "subject", "level", "unique_id"], source)
    return ds.map(
        lambda r: {
            "problem": r["problem"],
            "prompt": user_prompt(_with_instruction(r["problem"], instruction)),
            "answer": str(r["answer"]),
            "subject": r["subject"],
            "level": math_level(r["level"]),
            "unique_id": r["unique_id"],
        },
        remove_columns=ds.column_names,
    )
