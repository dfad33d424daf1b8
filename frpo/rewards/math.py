"""The paper's math reward: 0.8 * correct + 0.2 * format (Sec. 5.2, App. C.2).

- ``correct`` is 1.0 when ``math-verify`` finds the completion's answer equal to the reference
  answer (its extraction prefers the content of ``\\boxed{...}``), else 0.0.
- ``format`` is 1.0 when the completion holds exactly one ``\\boxed{...}`` whose braces balance
  (nested braces such as ``\\boxed{\\frac{1}{2}}`` count as one box), else 0.0.

So a reward is one of {0.0, 0.2, 0.8, 1.0}. The function follows TRL's reward signature
``f(prompts, completions, **columns) -> list[float]``; the reference answers come from the
dataset's ``answer`` column. Completions may be plain strings or TRL conversational lists
``[{"role": "assistant", "content": ...}]``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from math_verify import parse, verify

CORRECT_WEIGHT = 0.8
FORMAT_WEIGHT = 0.2
_BOX = "\\boxed"


def completion_text(completion: Any) -> str:
    """The text of one completion: a string, or the content of a TRL conversational list.

    A conversational completion is a list of ``{"role", "content"}`` messages; the assistant
    messages' contents are joined (TRL gives exactly one). Anything else raises ValueError.
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list | tuple):
        parts = []
        for message in completion:
            if not isinstance(message, dict) or "content" not in message:
                raise ValueError(f"completion message {message!r} is not a {{role, content}} dict")
            if message.get("role", "assistant") == "assistant":
                parts.append(str(message["content"]))
        return "\n".join(parts)
    raise ValueError(f"completion of type {type(completion).__name__} is neither str nor list")


def boxed_contents(text: str) -> list[str] | None:
    """The contents of every ``\\boxed{...}`` in ``text``, in order, nested braces handled.

    Returns ``None`` when a box is opened but its braces never balance (malformed). ``\\boxed``
    not followed by ``{`` (e.g. ``\\boxed 5``) is not a box.
    """
    found: list[str] = []
    start = text.find(_BOX)
    while start != -1:
        i = start + len(_BOX)
        while i < len(text) and text[i] == " ":
            i += 1
        if i >= len(text) or text[i] != "{":
            start = text.find(_BOX, start + len(_BOX))
            continue
        depth, j = 0, i
        while j < len(text):
            if text[j] == "{" and text[j - 1] != "\\":
                depth += 1
            elif text[j] == "}" and text[j - 1] != "\\":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        if depth != 0:
            return None
        found.append(text[i + 1 : j])
        start = text.find(_BOX, j + 1)
    return found


def last_boxed(text: str) -> str | None:
    """The content of the last well-formed ``\\boxed{...}`` (MATH puts its answer there)."""
    boxes = boxed_contents(text)
    return boxes[-1] if boxes else None


def format_score(text: str) -> float:
    """1.0 if ``text`` holds exactly one well-formed ``\\boxed{...}``, else 0.0."""
    boxes = boxed_contents(text)
    return 1.0 if boxes is not None and len(boxes) == 1 else 0.0


def _gold(answer: str) -> list:
    """Parse a reference answer; bare LaTeX (``\\frac{1}{2}``) is wrapped in ``$...$`` first."""
    answer = str(answer).strip()
    if "$" not in answer and _BOX not in answer:
        answer = f"${answer}$"
    return parse(answer, parsing_timeout=_timeout())


def _timeout() -> int | None:
    # math-verify times out with SIGALRM, which only the main thread may set.
    return 5 if threading.current_thread() is threading.main_thread() else None


def _normalise(s: str) -> str:
    return "".join(s.split()).replace("\\!", "").rstrip(".")


def correct_score(text: str, answer: str) -> float:
    """1.0 if math-verify judges the answer in ``text`` equal to ``answer``, else 0.0.

    When math-verify cannot parse the reference (a textual answer such as ``\\text{Evelyn}``), the
    last boxed content is compared with it as a string, whitespace removed.
    """
    try:
        gold = _gold(answer)
        if not gold:
            boxed = last_boxed(text)
            return float(boxed is not None and _normalise(boxed) == _normalise(str(answer)))
        pred = parse(text, parsing_timeout=_timeout())
        return 1.0 if pred and verify(gold, pred, timeout_seconds=_timeout()) else 0.0
    except Exception:  # a timeout or a sympy failure on the prediction: not correct
        return 0.0


def math_reward(
    prompts: Sequence[Any], completions: Sequence[Any], answer: Sequence[str], **kwargs: Any
) -> list[float]:
    """0.8 * correct + 0.2 * format per completion (TRL reward function; ``answer`` column).

    Args:
        prompts: one prompt per completion (unused; TRL passes it).
        completions: strings or conversational lists, length B.
        answer: the reference answers, length B (GSM8K's ``#### N`` number, MATH's boxed answer).

    Returns:
        B floats in {0.0, 0.2, 0.8, 1.0}.
    """
    if len(completions) != len(answer):
        raise ValueError(f"math_reward: {len(completions)} completions but {len(answer)} answers")
    rewards = []
    for completion, ref in zip(completions, answer, strict=True):
        text = completion_text(completion)
        correct, fmt = correct_score(text, ref), format_score(text)
        rewards.append(CORRECT_WEIGHT * correct + FORMAT_WEIGHT * fmt)
    return rewards
