"""Code correctness by execution: the share of a task's unit tests a completion's program passes.

nvidia/OpenCodeInstruct gives every row ``unit_tests``: a list of ``assert`` lines (stored as the
list's Python/JSON text), e.g. ``"['assert add(1, 2) == 3', 'assert add(0, 0) == 0']"``. A
completion's program is the first fenced code block of its text (```` ```python ... ``` ````; the
whole text when it has none). The program and then each test run in one fresh Python process
(``python -I``, an empty temporary working directory, ``timeout`` seconds per test, the whole
process at most ``timeout`` x (tests + 1)); a test passes when it raises nothing. The score is
passed / total in [0, 1]; a program that does not even define what the tests call scores 0.

This runs model-written code on the machine, as EvalPlus and lm-eval's ``code_eval`` do: run it
where that is acceptable (a container or a throwaway node).

:func:`code_reward` is the TRL reward function (column ``unit_tests``); the paper-scale
backend's correctness judge reads code answers with :func:`unit_test_score`
(:mod:`frpo.stages.hub`).
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from frpo.rewards.math import completion_text

_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)

# The child process: the program, then each test under an alarm; prints one JSON list of
# booleans on its last line. Reads the program and tests from stdin (a JSON object).
_RUNNER = r"""
import json, signal, sys
job = json.loads(sys.stdin.read())
def _alarm(signum, frame):
    raise TimeoutError("test timed out")
signal.signal(signal.SIGALRM, _alarm)
env = {"__name__": "__frpo_solution__"}
passed = []
try:
    signal.alarm(job["timeout"])
    exec(compile(job["program"], "<solution>", "exec"), env)
    signal.alarm(0)
    ok = True
except BaseException:
    signal.alarm(0)
    ok = False
for test in job["tests"]:
    if not ok:
        passed.append(False)
        continue
    try:
        signal.alarm(job["timeout"])
        exec(compile(test, "<test>", "exec"), env)
        signal.alarm(0)
        passed.append(True)
    except BaseException:
        signal.alarm(0)
        passed.append(False)
sys.stdout.write("\n" + json.dumps(passed) + "\n")
"""


def parse_tests(unit_tests: Any) -> list[str]:
    """The test lines of an OpenCodeInstruct ``unit_tests`` cell: a list of strings, or its
    Python/JSON text. ValueError for anything else."""
    value = unit_tests
    if isinstance(value, str):
        text = value.strip()
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                value = [line for line in text.splitlines() if line.strip()]
    if not isinstance(value, list | tuple) or not all(isinstance(t, str) for t in value):
        raise ValueError(f"unit_tests must be a list of test strings, got {unit_tests!r:.80}")
    return [t for t in value if t.strip()]


def extract_program(text: str) -> str:
    """The first fenced code block of ``text`` (a Python one preferred), else ``text``."""
    blocks = _FENCE.findall(text)
    if blocks:
        return blocks[0]
    return text


def run_tests(program: str, tests: Sequence[str], timeout: int = 5) -> list[bool]:
    """Pass/fail of each test after ``program`` in a fresh ``python -I`` process."""
    if not tests:
        return []
    job = json.dumps({"program": program, "tests": list(tests), "timeout": int(timeout)})
    with tempfile.TemporaryDirectory(prefix="frpo-code-") as cwd:
        try:
            done = subprocess.run(
                [sys.executable, "-I", "-c", _RUNNER],
                input=job,
                capture_output=True,
                text=True,
                cwd=cwd,
                timeout=timeout * (len(tests) + 1) + 5,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return [False] * len(tests)
    lines = done.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        result = None
    if not isinstance(result, list) or len(result) != len(tests):
        return [False] * len(tests)  # the program killed its own process (exit, crash)
    return [bool(r) for r in result]


def unit_test_score(completion: Any, unit_tests: Any, timeout: int = 5) -> float:
    """Share of ``unit_tests`` the completion's program passes (0.0 when there are none)."""
    tests = parse_tests(unit_tests)
    if not tests:
        return 0.0
    passed = run_tests(extract_program(completion_text(completion)), tests, timeout)
    return sum(passed) / len(tests)


def code_reward(
    prompts: Sequence[Any], completions: Sequence[Any], unit_tests: Sequence[Any], **kwargs: Any
) -> list[float]:
    """Share of each row's unit tests its completion passes (TRL reward; column ``unit_tests``).

    Args:
        prompts: one per completion (unused; TRL passes it).
        completions: strings or conversational lists, length B.
        unit_tests: the rows' tests, length B (see :func:`parse_tests`).

    Returns:
        B floats in [0, 1].
    """
    if len(completions) != len(unit_tests):
        raise ValueError(
            f"code_reward: {len(completions)} completions but {len(unit_tests)} test lists"
        )
    return [unit_test_score(c, t) for c, t in zip(completions, unit_tests, strict=True)]
