"""Code correctness by execution on OpenCodeInstruct-style unit tests (a fresh process each)."""

import pytest

from frpo.rewards.code import code_reward, extract_program, parse_tests, run_tests

ADD = "def add(a, b):\n    return a + b\n"
TESTS = "['assert add(1, 2) == 3', 'assert add(2, 2) == 5']"  # the second is wrong on purpose


def test_share_of_tests_passed():
    fenced = f"Here it is:\n```python\n{ADD}```\nIt adds."
    got = code_reward(
        prompts=["p"] * 4,
        completions=[
            fenced,
            [{"role": "assistant", "content": ADD}],  # conversational, unfenced
            "def add(a, b):\n    return a - b\n",  # add(1, 2) == -1: fails both
            "no code at all",  # a syntax error: nothing defined, every test fails
        ],
        unit_tests=[TESTS, TESTS, TESTS, '["assert add(1, 2) == 3"]'],
    )
    assert got == [0.5, 0.5, 0.0, 0.0]


def test_a_hanging_or_exiting_program_fails_without_stalling():
    loop = "def add(a, b):\n    while True:\n        pass\n"
    assert run_tests(loop, ["assert add(1, 2) == 3", "assert 1 == 1"], timeout=1) == [False, True]
    assert run_tests("import sys\nsys.exit(0)\n", ["assert True"], timeout=1) == [False]
    assert run_tests(ADD, []) == []


def test_parsing():
    assert parse_tests('["assert f()", ""]') == ["assert f()"]
    assert parse_tests("assert a\nassert b\n") == ["assert a", "assert b"]
    assert extract_program("x\n```py\nA = 1\n```\n```python\nB = 2\n```") == "A = 1\n"
    with pytest.raises(ValueError, match="list of test strings"):
        parse_tests("{'a': 1}")
    with pytest.raises(ValueError, match="2 completions but 1 test lists"):
        code_reward(["p", "q"], ["a", "b"], unit_tests=["[]"])
