"""Arithmetic word problems (GSM8K analogue), boxed-answer math (MATH analogue) and list programs
(OpenCodeInstruct analogue).

Each generator returns :class:`Problem` records: prompt text, a correct worked solution, a final
answer, and (for the base model's corpus) a way to write a *wrong* solution, so that the base model
solves only part of them and RL has something to improve. Numbers are single tokens ``0..MAX_NUM``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_NUM = 49
NUMBERS = tuple(str(i) for i in range(MAX_NUM + 1))
NAMES = ("tom", "ann", "sam", "eve")
ITEMS = ("apples", "coins", "pens", "cards")
BOX_OPEN, BOX_CLOSE = "\\boxed{", "}"


@dataclass(frozen=True)
class Problem:
    """One problem: ``prompt`` (user text), ``solution`` (a correct answer text), ``answer``."""

    task: str
    prompt: str
    solution: str
    answer: str  # gsm8k: "N"; math: "\\boxed{N}"; code: the reference program text
    steps: tuple  # the numbers / ops the solution is built from (to write wrong variants)


# ----------------------------------------------------------------------------- GSM8K analogue
def gsm8k_solution(a: int, b: int, c: int, result: int) -> str:
    """``"a plus b is s , s minus c is d . the answer is d ."`` with d = ``result``."""
    s = a + b
    return f"{a} plus {b} is {s} , {s} minus {c} is {result} . the answer is {result} ."


def gsm8k_problems() -> list[Problem]:
    """Two-step problems: start with a, get b more, give away c (a, b <= 20, c <= a + b in steps
    of 3); the name and item are fixed functions of the numbers (3067 problems)."""
    out = []
    for a in range(1, 21):
        for b in range(1, 21):
            for c in range(0, a + b + 1, 3):
                name, item = NAMES[(a + b + c) % len(NAMES)], ITEMS[(a * b + c) % len(ITEMS)]
                prompt = (
                    f"{name} has {a} {item} and gets {b} more , then gives away {c} . "
                    f"how many {item} does {name} have ?"
                )
                d = a + b - c
                out.append(Problem("gsm8k", prompt, gsm8k_solution(a, b, c, d), str(d), (a, b, c)))
    return out


# ----------------------------------------------------------------------------- MATH analogue
def math_solution(a: int, b: int, c: int, result: int, boxed: bool) -> str:
    """``"a times b is p , p plus c is s . so \\boxed{s}"`` (or ``"the answer is s ."``)."""
    p = a * b
    tail = f"so {BOX_OPEN}{result}{BOX_CLOSE}" if boxed else f"the answer is {result} ."
    return f"{a} times {b} is {p} , {p} plus {c} is {result} . {tail}"


def math_problems() -> list[Problem]:
    """``what is a times b plus c ?`` with a, b in 2..7 and a*b + c <= MAX_NUM."""
    out = []
    for a in range(2, 8):
        for b in range(2, 8):
            for c in range(0, MAX_NUM - a * b + 1):
                s = a * b + c
                prompt = f"what is {a} times {b} plus {c} ?"
                sol = math_solution(a, b, c, s, boxed=True)
                out.append(Problem("math", prompt, sol, f"{BOX_OPEN}{s}{BOX_CLOSE}", (a, b, c)))
    return out


# ----------------------------------------------------------------------------- code analogue
# op name -> (description in the request, program tokens, function on a list)
CODE_OPS = {
    "sort": ("sort the list", "sort"),
    "reverse": ("reverse the list", "reverse"),
    "double": ("double each item", "double"),
    "drop": ("drop the first item", "drop"),
    "add1": ("add 1 to each item", "add 1"),
    "add2": ("add 2 to each item", "add 2"),
    "add3": ("add 3 to each item", "add 3"),
    "take2": ("keep the first 2 items", "take 2"),
    "take3": ("keep the first 3 items", "take 3"),
}
CODE_WORDS = ("code", ":", ";", "end", "write", "to", "then", "sort", "reverse", "double", "drop",
              "add", "take", "the", "list", "each", "item", "items", "first", "keep")  # fmt: skip


def program_text(ops: tuple[str, ...]) -> str:
    """``"code : sort ; add 2 ; end"`` for ops ``("sort", "add2")``."""
    return "code : " + " ; ".join(CODE_OPS[o][1] for o in ops) + " ; end"


def run_program(text: str, xs: list[int]) -> list[int] | None:
    """Execute a program on a list; ``None`` if the text is not a valid program.

    Grammar: ``code : <stmt> ; <stmt> ; ... ; end`` with stmt in {sort, reverse, double, drop,
    add K, take K}. Anything after ``end`` makes the program invalid (the whole answer is read).
    """
    words = text.split()
    if len(words) < 3 or words[:2] != ["code", ":"] or words[-1] != "end":
        return None
    body = " ".join(words[2:-1])
    stmts = [s.split() for s in body.split(";")]
    if stmts and stmts[-1] == []:
        stmts = stmts[:-1]
    out = list(xs)
    for s in stmts:
        if s == ["sort"]:
            out = sorted(out)
        elif s == ["reverse"]:
            out = out[::-1]
        elif s == ["double"]:
            out = [2 * x for x in out]
        elif s == ["drop"]:
            out = out[1:]
        elif len(s) == 2 and s[0] in ("add", "take") and s[1].isdigit():
            k = int(s[1])
            out = [x + k for x in out] if s[0] == "add" else out[:k]
        else:
            return None
    return out


def code_problems() -> list[Problem]:
    """Requests of one to three distinct ops (``write code to sort the list then ...``)."""
    names = list(CODE_OPS)
    out = []
    seqs = [(a,) for a in names]
    seqs += [(a, b) for a in names for b in names if a != b]
    seqs += [(a, b, c) for a in names for b in names for c in names if len({a, b, c}) == 3]
    for ops in seqs:
        prompt = "write code to " + " then ".join(CODE_OPS[o][0] for o in ops) + " ."
        prog = program_text(ops)
        out.append(Problem("code", prompt, prog, prog, ops))
    return out


def code_test_inputs(seed: int, n: int = 4, length: int = 5) -> list[list[int]]:
    """Hidden test lists on which a program's outputs are compared with the reference's."""
    rng = np.random.default_rng([seed, 7])
    return [[int(x) for x in rng.integers(0, 10, size=length)] for _ in range(n)]


# ----------------------------------------------------------------------------- wrong variants
def corrupt(problem: Problem, rng: np.random.Generator, boxed: bool = True) -> str:
    """A plausible but wrong solution (an arithmetic slip, or one op swapped for another)."""
    if problem.task == "code":
        ops = list(problem.steps)
        i = int(rng.integers(len(ops)))
        ops[i] = [o for o in CODE_OPS if o != ops[i]][int(rng.integers(len(CODE_OPS) - 1))]
        return program_text(tuple(ops))
    a, b, c = problem.steps
    truth = int(problem.answer.strip(BOX_OPEN + BOX_CLOSE))
    wrong = truth
    while wrong == truth:
        wrong = int(np.clip(truth + rng.choice([-3, -2, -1, 1, 2, 3]), 0, MAX_NUM))
    if problem.task == "gsm8k":
        return gsm8k_solution(a, b, c, wrong)
    return math_solution(a, b, c, wrong, boxed)


def vocabulary() -> list[str]:
    """Words of the problem tasks (specials excluded)."""
    words: list[str] = []
    texts = [gsm8k_solution(1, 2, 0, 3), math_solution(2, 2, 1, 5, True)]
    texts += [math_solution(2, 2, 1, 5, False), "what is times plus ?", "has and gets more"]
    texts += [", then gives away . how many does have ?", " ".join(CODE_WORDS)]
    texts += [" ".join(NUMBERS), " ".join(NAMES), " ".join(ITEMS)]
    for t in texts:
        for w in t.replace(BOX_OPEN, " ").replace(BOX_CLOSE, " ").split():
            if w not in words:
                words.append(w)
    return words + [BOX_OPEN, BOX_CLOSE]
