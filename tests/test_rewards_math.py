"""The paper's math reward: 0.8 * correct (math-verify) + 0.2 * format (exactly one \\boxed{})."""

import threading

import pytest

from frpo.rewards.math import (
    boxed_contents,
    completion_text,
    format_score,
    last_boxed,
    math_reward,
)


def test_boxed_contents_handles_nested_braces():
    text = r"so \boxed{\frac{1}{2}} and \boxed{ {a}_{b} }"
    assert boxed_contents(text) == [r"\frac{1}{2}", " {a}_{b} "]
    assert last_boxed(text) == " {a}_{b} "


def test_boxed_contents_malformed_and_absent():
    assert boxed_contents(r"\boxed{\frac{1}{2}") is None  # never closes
    assert boxed_contents("no box here") == []
    assert boxed_contents(r"\boxed 5") == []  # not a brace box
    assert last_boxed("nothing") is None


def test_format_score_exactly_one_box():
    assert format_score(r"\boxed{1}") == 1.0
    assert format_score(r"\boxed{1} then \boxed{2}") == 0.0
    assert format_score("1") == 0.0
    assert format_score(r"\boxed{\sqrt{\frac{1}{2}}}") == 1.0


def test_math_reward_four_levels():
    completions = [
        r"The answer is \boxed{\frac{1}{2}}.",  # correct (0.5 == 1/2) + one box: 1.0
        r"\boxed{3} or maybe \boxed{3}",  # correct, two boxes: 0.8
        r"\boxed{4}",  # wrong, one box: 0.2
        "I do not know",  # wrong, no box: 0.0
    ]
    answers = ["0.5", "3", "5", "7"]
    assert math_reward([""] * 4, completions, answer=answers) == [1.0, 0.8, 0.2, 0.0]


def test_math_reward_conversational_completions_and_extra_columns():
    completions = [[{"role": "assistant", "content": r"$x = \boxed{72}$"}]]
    assert math_reward([[]], completions, answer=["72"], level=["Level 3"]) == [1.0]


def test_math_reward_textual_answer_falls_back_to_string_match():
    r = math_reward([""], [r"\boxed{\text{Evelyn}}"], answer=[r"\text{Evelyn}"])
    assert r == [1.0]
    r = math_reward([""], [r"\boxed{\text{Bob}}"], answer=[r"\text{Evelyn}"])
    assert r == [0.2]


def test_math_reward_works_off_the_main_thread():
    out = []
    t = threading.Thread(target=lambda: out.append(math_reward([""], [r"\boxed{2}"], answer=["2"])))
    t.start()
    t.join()
    assert out == [[1.0]]


def test_math_reward_bad_input():
    with pytest.raises(ValueError, match="2 completions but 1 answers"):
        math_reward(["", ""], ["a", "b"], answer=["1"])
    with pytest.raises(ValueError, match="neither str nor list"):
        completion_text(3)
