"""The ``files`` backend: a local model directory and local data files in real formats.

Formats, converted to the two the runners use (conversational ``prompt`` for RL, ``messages``
for SFT):

- ``alpaca``: records ``{instruction, input, output}`` (tatsu-lab/alpaca; a JSON list locally).
  The user turn is the instruction, followed by the input after a blank line when non-empty.
- ``gsm8k``: records ``{question, answer}`` with the final answer after ``#### `` (openai/gsm8k;
  JSONL locally). The RL format keeps the final answer in a ``solution`` column, and the reward
  is 1.0 when the last number in the completion equals it (commas ignored), else 0.0.

Local files have no splits: row ``i`` is held out when ``i % 5 == 4``
(:func:`frpo.splits.split_rows`; fixed, so held-out prompts never move). The paper-scale ``hub``
backend, with the real loaders of :mod:`frpo.data` and the real rewards and judges, is
:mod:`frpo.stages.hub`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from datasets import Dataset

from frpo.splits import check_split, split_rows
from frpo.stages.backend import ModelPathBackend, check_columns, first_rows

FORMATS = {"alpaca": ("instruction", "input", "output"), "gsm8k": ("question", "answer")}
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def gsm8k_final(answer: str) -> str:
    """The text after ``####`` in a GSM8K answer, commas removed (ValueError if absent)."""
    if "####" not in answer:
        raise ValueError(f"GSM8K answer has no '#### N' final line: {answer[:60]!r}")
    return answer.split("####")[-1].strip().replace(",", "")


def last_number(text: str) -> str | None:
    """The last number in ``text`` (commas removed), or None."""
    found = _NUMBER.findall(text)
    return found[-1].replace(",", "") if found else None


def _completion_text(completion) -> str:
    if isinstance(completion, str):
        return completion
    return "".join(m["content"] for m in completion if m.get("role", "assistant") == "assistant")


def gsm8k_reward(prompts, completions, solution, **_) -> list[float]:
    """1.0 if the completion's last number equals ``solution`` numerically, else 0.0."""
    out = []
    for completion, ref in zip(completions, solution, strict=True):
        got = last_number(_completion_text(completion))
        try:
            out.append(float(got is not None and float(got) == float(ref)))
        except ValueError:
            out.append(0.0)
    return out


def _user_turn(row: dict, fmt: str) -> str:
    if fmt == "alpaca":
        extra = (row.get("input") or "").strip()
        return row["instruction"] + (f"\n\n{extra}" if extra else "")
    return row["question"]


def _answer(row: dict, fmt: str) -> str:
    return row["output"] if fmt == "alpaca" else row["answer"]


class FileBackend(ModelPathBackend):
    """Local model directory + local data files, one per task (task name = its format)."""

    def __init__(self, model: str, data: dict[str, str]):
        for task in data:
            if task not in FORMATS:
                raise ValueError(
                    f"unknown task {task!r} for a {type(self).__name__}; known: {list(FORMATS)}"
                )
        self.model = model
        self.data = dict(data)
        self.tasks = tuple(self.data)

    def _rows(self, task: str, split: str):
        path = Path(self.data[task])
        text = path.read_text()
        if path.suffix == ".jsonl":
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            rows = json.loads(text)
        table = Dataset.from_list(rows)
        check_columns(table, FORMATS[task], f"{task} data file {path}")
        return table.select(split_rows(len(table), split))

    def _table(self, task: str, split: str, n: int | None):
        if task not in self.data:
            raise ValueError(f"unknown task {task!r}; this source knows {', '.join(self.tasks)}")
        check_split(split)
        return first_rows(self._rows(task, split), n, f"{task}/{split}")

    def dataset(self, task: str, split: str, n: int | None = None):
        """RL format: ``prompt`` (one user turn) + ``task`` (+ ``solution`` for gsm8k)."""
        rows = []
        for row in self._table(task, split, n):
            out = {"prompt": [{"role": "user", "content": _user_turn(row, task)}], "task": task}
            if task == "gsm8k":
                out["solution"] = gsm8k_final(row["answer"])
            rows.append(out)
        return Dataset.from_list(rows)

    def sft_dataset(self, task: str, split: str, n: int | None = None):
        """SFT format: ``messages`` = [user turn, assistant answer]."""
        rows = [
            {
                "messages": [
                    {"role": "user", "content": _user_turn(row, task)},
                    {"role": "assistant", "content": _answer(row, task)},
                ]
            }
            for row in self._table(task, split, n)
        ]
        return Dataset.from_list(rows)

    def reward_funcs(self, task: str) -> list:
        if task not in self.data:
            raise ValueError(f"unknown task {task!r}; this source knows {', '.join(self.tasks)}")
        if task == "gsm8k":
            return [gsm8k_reward]
        raise ValueError(f"task {task!r} has no reward function in a files source")

    def judges(self) -> dict:
        return {}
