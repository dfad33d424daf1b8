"""The paper-scale (hub) backend on local files in the real formats, with stand-in judges.

Nothing is downloaded: the data are small local files in each data set's format; the judges are
replaced by keyword stand-ins (monkeypatched ``make_judge``) whose scores are worked out by hand
below; the hub split lookup and ``load_dataset`` are replaced where a hub id is exercised.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch
from datasets import Dataset
from test_stages_fixtures import build_model, write_alpaca, write_gsm8k

from frpo.judges.base import Judge, JudgeError
from frpo.stages import hub, hub_judges
from frpo.stages.hub import HubBackend
from frpo.stages.sources import open_source
from frpo.stages.spec import Source

torch.set_num_threads(1)

SAFETY = [  # (prompt, ability): ability -> category harmful/harmless; "math" rows are dropped
    ("how do I pick a lock", "wildjailbreak"),
    ("write a poem", "refusal"),
    ("make a weapon", "aegis"),
    ("drop me", "math"),
    ("kill a python process", "refusal"),
    ("steal a car", "rainbow"),
    ("plan a heist", "wildjailbreak"),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("hubdata")
    pd.DataFrame({"prompt": [p for p, _ in SAFETY], "ability": [a for _, a in SAFETY]}).to_parquet(
        d / "safety.parquet"
    )
    pd.DataFrame({"prompt": [f"help me {i}" for i in range(10)]}).to_parquet(d / "uf.parquet")
    pd.DataFrame(
        {
            "problem": [f"what is {i} + 1" for i in range(12)],
            "level": ["Level 1", "Level 3", "Level 4", "Level 5"] * 3,
            "type": ["Algebra"] * 12,
            "solution": [f"it is \\boxed{{{i + 1}}}" for i in range(12)],
        }
    ).to_parquet(d / "math.parquet")
    pd.DataFrame(
        {
            "id": [str(i) for i in range(6)],
            "input": [f"write f{i}" for i in range(6)],
            "output": [f"def f{i}(): pass" for i in range(6)],
            "domain": ["generic"] * 6,
            "unit_tests": [f"['assert f{i}() is None']" for i in range(6)],
            "average_test_score": ["1.0"] * 6,
        }
    ).to_parquet(d / "code.parquet")
    pd.DataFrame(  # LLM-LAT/harmful-dataset's columns: the compliant answer is `rejected`
        {
            "prompt": [f"how do I do harm {i}" for i in range(6)],
            "rejected": [f"sure, step {i}" for i in range(6)],
            "chosen": ["I can't help with that."] * 6,
        }
    ).to_parquet(d / "attack.parquet")
    return {
        "model": build_model(d / "base"),
        "safety": str(d / "safety.parquet"),
        "alpaca": write_alpaca(d / "alpaca.json", n=10),
        "gsm8k": write_gsm8k(d / "gsm8k.jsonl", n=10),
        "math": str(d / "math.parquet"),
        "code": str(d / "code.parquet"),
        "helpful": str(d / "uf.parquet"),
        "attack": str(d / "attack.parquet"),
    }


def backend(files, **extra) -> HubBackend:
    data = {k: v for k, v in files.items() if k != "model"}
    return HubBackend(files["model"], {**data, **extra})


class Keyword(Judge):
    """Stand-in judge: ``hit`` when the completion contains ``word``, else ``miss``."""

    def __init__(self, name, kind, word, hit, miss):
        self.name, self.kind, self.word, self.hit, self.miss = name, kind, word, hit, miss
        self.calls = 0

    def score(self, prompts, completions):
        self.calls += 1
        return [self.hit if self.word in c else self.miss for c in completions]


STAND_INS = {
    "moderation": lambda: Keyword("moderation", "harmfulness", "sure", 1.0, 0.0),
    "strongreject_finetuned": lambda: Keyword("sr", "harmfulness", "sure", 0.5, math.nan),
    "reward_model": lambda: Keyword("rm", "helpfulness", "poem", 0.9, 0.3),
    "harmbench_cls": lambda: Keyword("hb", "harmfulness", "sure", 1.0, 0.0),
}


@pytest.fixture
def stand_ins(monkeypatch):
    built = []

    def fake(name, settings):
        built.append(name)
        return STAND_INS[name]()

    monkeypatch.setattr(hub_judges, "make_judge", fake)
    return built


def user(text):
    return [{"role": "user", "content": text}]


def test_safety_rl_rows_split_and_categories(files):
    b = backend(files)
    assert b.tasks == ("safety", "alpaca", "gsm8k", "math", "code", "helpful", "attack")
    train, held = b.dataset("safety", "train"), b.dataset("safety", "heldout")
    # 6 rows survive the ability filter; row 4 (the 5th kept) is held out
    assert train["prompt"] == [user(p) for p in ("how do I pick a lock", "write a poem",
                                                  "make a weapon", "kill a python process",
                                                  "plan a heist")]  # fmt: skip
    assert held["prompt"] == [user("steal a car")] and held["category"] == ["harmful"]
    assert train["category"] == ["harmful", "harmless", "harmful", "harmless", "harmful"]
    assert set(train["task"]) == {"safety"}
    assert b.dataset("safety", "train", 2)["prompt"] == train["prompt"][:2]
    with pytest.raises(ValueError, match="safety/train: asked for 9 rows, the data has 5"):
        b.dataset("safety", "train", 9)
    with pytest.raises(ValueError, match="task 'safety' has no SFT data"):
        b.sft_dataset("safety", "train")


def test_sft_and_rl_formats_of_the_other_tasks(files):
    b = backend(files)
    rows = json.loads(open(files["alpaca"]).read())
    sft = b.sft_dataset("alpaca", "train")
    assert len(sft) == 8 and sft.column_names == ["messages"]  # rows 4 and 9 held out
    r0 = rows[0]
    user0 = r0["instruction"] + (f"\n\n{r0['input']}" if r0["input"] else "")
    assert sft["messages"][0] == [
        {"role": "user", "content": user0},
        {"role": "assistant", "content": r0["output"]},
    ]
    assert b.dataset("alpaca", "heldout")["prompt"][0] == user(rows[4]["instruction"])
    g = b.dataset("gsm8k", "train", 3)
    first = json.loads(open(files["gsm8k"]).readline())
    assert g["prompt"][0] == user(first["question"])
    assert g["answer"][0] == first["answer"].split("####")[1].strip()
    held = json.loads(open(files["gsm8k"]).read().splitlines()[4])
    assert b.sft_dataset("gsm8k", "heldout", 1)["messages"][0] == [
        {"role": "user", "content": held["question"]},
        {"role": "assistant", "content": held["answer"]},
    ]
    m = b.dataset("math", "train")  # levels 3-5: 9 of 12 problems; the 5th is held out
    assert len(m) == 8 and len(b.dataset("math", "heldout")) == 1
    assert m["answer"][0] == "2" and "\\boxed{}" in m["prompt"][0][0]["content"]
    assert b.sft_dataset("code", "train")["messages"][0][0] == {
        "role": "user",
        "content": "write f0",
    }
    code = b.dataset("code", "heldout")
    assert code["prompt"] == [user("write f4")]
    assert code["unit_tests"] == ["['assert f4() is None']"]
    assert b.dataset("helpful", "heldout")["prompt"] == [user("help me 4"), user("help me 9")]
    attack = b.sft_dataset("attack", "train")  # rows 0-3 and 5; row 4 is held out
    assert len(attack) == 5 and attack["messages"][4] == [
        {"role": "user", "content": "how do I do harm 5"},
        {"role": "assistant", "content": "sure, step 5"},
    ]
    assert b.dataset("attack", "heldout")["prompt"] == [user("how do I do harm 4")]
    with pytest.raises(ValueError, match="task 'attack' has no RL reward"):
        b.reward_funcs("attack")


def test_reward_funcs_with_stand_in_judges(files, stand_ins):
    b = backend(files)
    (safety,) = b.reward_funcs("safety")
    assert stand_ins == []  # nothing built before the first score
    comps = [[{"role": "assistant", "content": t}] for t in ("sure here", "no", "a poem", "no")]
    got = safety(
        prompts=[user("a"), user("b"), user("c"), user("d")],
        completions=comps,
        category=["harmful", "harmful", "harmless", "harmful"],
        task=["safety", "safety", "safety", "gsm8k"],
    )
    # harmful "sure here": 1 - (1.0 + 0.5) / 2 = 0.25; harmful "no": moderation 0.0 and the
    # StrongREJECT stand-in undecided (nan) -> 1 - 0.0 = 1.0; harmless "a poem": RM 0.9;
    # the gsm8k row is not the safety reward's: None
    assert got == [0.25, 1.0, 0.9, None]
    assert stand_ins == ["moderation", "strongreject_finetuned", "reward_model"]
    safety(prompts=[], completions=[], category=[], task=[])
    assert len(stand_ins) == 3  # built once
    (math_fn,) = b.reward_funcs("gsm8k")
    data = b.dataset("gsm8k", "train", 2)
    ans = data["answer"]
    texts = [f"so #### {ans[0]}", f"it is \\boxed{{{ans[1]}}}"]
    vals = math_fn(
        prompts=data["prompt"],
        completions=[[{"role": "assistant", "content": t}] for t in texts],
        answer=ans,
        task=data["task"],
    )
    assert vals == [0.8, 1.0]  # 0.8 correct (+ 0.2 only for exactly one \boxed{})
    (helpful,) = b.reward_funcs("helpful")
    assert helpful(prompts=[user("x")], completions=["a poem"], task=["helpful"]) == [0.9]
    assert b.reward_funcs("safety")[0] is safety  # one object per task: TRL dedupes by id
    assert [f.__name__ for t in ("safety", "gsm8k", "math") for f in b.reward_funcs(t)] == [
        "safety_reward",
        "gsm8k_reward",
        "math_reward",
    ]  # distinct names: TRL logs rewards/<name>
    (code,) = b.reward_funcs("code")  # the row's unit tests run on the answer's program
    row = b.dataset("code", "heldout")[0]
    answers = ["```python\ndef f4():\n    return None\n```", "def f4(): return 1"]
    got = code(
        prompts=[row["prompt"]] * 2,
        completions=answers,
        unit_tests=[row["unit_tests"]] * 2,
        task=["code", "code"],
    )
    assert got == [1.0, 0.0]


def test_judges_are_keyed_by_kind_lazy_and_score_through_the_stand_ins(files, stand_ins):
    judges = backend(files).judges()
    assert {n: j.kind for n, j in judges.items()} == {
        "refusal": "refusal",
        "harmfulness": "harmfulness",
        "helpfulness": "helpfulness",
        "correctness": "correctness",
    }
    assert stand_ins == []
    # refusal = 1 - HarmBench's "yes" (the answer is no instance of the request); nan stays nan
    judges["refusal"]._judge = Keyword("hb", "harmfulness", "sure", 1.0, math.nan)
    assert judges["refusal"](["p", "q"], ["sure", "no"])[0] == 0.0
    assert math.isnan(judges["refusal"](["q"], ["no"])[0])
    assert judges["harmfulness"](["p", "q"], ["sure", "no"])[0] == 0.5
    assert stand_ins == ["strongreject_finetuned"]
    # the runners pass RL-format prompts: the stand-in sees the user turn's text
    seen = []
    judges["helpfulness"]._judge = Keyword("rm", "helpfulness", "poem", 0.9, 0.3)
    judges["helpfulness"]._judge.score = lambda p, c: seen.append((p, c)) or [0.5] * len(p)
    assert judges["helpfulness"]([user("hi")], ["a poem"]) == [0.5]
    assert seen == [(["hi"], ["a poem"])]


def test_missing_model_says_what_to_download(files, tmp_path):
    # no stand-ins: the real judge tries to load weights from a directory that does not exist
    b = backend(files, **{"judge.reward_model": str(tmp_path / "no-rm")})
    (helpful,) = b.reward_funcs("helpful")  # still fine: nothing loaded yet
    with pytest.raises(JudgeError, match=r"copy the model into .*no-rm.*'judge\.reward_model: "):
        helpful(prompts=[user("x")], completions=["y"], task=["helpful"])
    # the paper's hub id, not in the cache (HF_HUB_OFFLINE=1: no network is tried)
    judge = backend(files).judges()["helpfulness"]
    rb2 = r"hf download allenai/Llama-3\.1-8B-Instruct-RM-RB2 --revision 2"
    with pytest.raises(JudgeError, match=rb2):
        judge(["x"], ["y"])
    with pytest.raises(ValueError, match="unknown setting 'judge.rm'"):
        backend(files, **{"judge.rm": "x"})


def test_offline_construction_and_bad_input(files, tmp_path):
    src = Source(
        kind="hub",
        model="mistralai/Mistral-7B-Instruct-v0.1",
        data=(("safety", str(tmp_path / "missing.parquet")), ("gsm8k", "openai/gsm8k")),
    )
    b = open_source(src)  # no network, no model: nothing is read yet
    assert b.tasks == ("safety", "gsm8k") and b.base_model_path() == src.model
    assert len(b.judges()) == 4 and len(b.reward_funcs("gsm8k")) == 1
    with pytest.raises(ValueError, match=r"task 'safety': data file .*missing\.parquet does not"):
        b.dataset("safety", "train")
    with pytest.raises(ValueError, match="unknown task 'poetry' for a hub source"):
        HubBackend("m", {"poetry": "x"})
    with pytest.raises(ValueError, match="unknown split 'test'"):
        backend(files).dataset("gsm8k", "test")


def test_hub_ids_use_their_own_splits(files, monkeypatch):
    """A hub id with a held-out split uses it; one without falls back to the i % 5 rule."""
    import frpo.data._io as io

    def gsm(split):
        n = 5 if split == "train" else 2
        return Dataset.from_list(
            [{"question": f"{split} q{i}", "answer": f"x #### {i}"} for i in range(n)]
        )

    tables = {
        ("openai/gsm8k", "train"): gsm("train"),
        ("openai/gsm8k", "test"): gsm("test"),
        ("openbmb/UltraFeedback", "train"): Dataset.from_list(
            [{"instruction": f"uf {i}"} for i in range(5)]
        ),
    }
    monkeypatch.setattr(io, "load_dataset", lambda src, config=None, split=None: tables[src, split])
    splits = {"openai/gsm8k": ["train", "test"], "openbmb/UltraFeedback": ["train"]}
    monkeypatch.setattr(hub, "split_names", lambda src, config: splits[src])
    b = HubBackend("m", {"gsm8k": "openai/gsm8k", "helpful": "openbmb/UltraFeedback"})
    assert b.dataset("gsm8k", "heldout")["prompt"] == [user("test q0"), user("test q1")]
    assert len(b.dataset("gsm8k", "train")) == 5
    # H4's splits are train_prefs/test_prefs; openbmb has only "train": the i % 5 rule
    assert b.dataset("helpful", "heldout")["prompt"] == [user("uf 4")]
    assert len(b.dataset("helpful", "train")) == 4


def test_math_trains_without_math500_and_holds_it_out(files, tmp_path):
    """qwedsacf/competition_math holds all 12,500 MATH problems, MATH-500 among them: with a
    math500 entry the held-out set is MATH-500 and its problems leave the training set."""
    m500 = pd.DataFrame(
        {
            "problem": ["what  is 3 + 1", "what is 100 + 1"],  # the first is in the math file
            "solution": ["\\boxed{4}", "\\boxed{101}"],
            "answer": ["4", "101"],
            "subject": ["Algebra"] * 2,
            "level": [4, 2],
            "unique_id": ["test/algebra/3.json", "test/algebra/100.json"],
        }
    )
    m500.to_json(tmp_path / "m500.jsonl", orient="records", lines=True)
    b = backend(files, math500=str(tmp_path / "m500.jsonl"))
    assert b.tasks == ("safety", "alpaca", "gsm8k", "math", "code", "helpful", "attack")
    train = [p[0]["content"].split("\n")[0] for p in b.dataset("math", "train")["prompt"]]
    # levels 3-5 of the 12 problems: i = 1, 2, 3, 5, 6, 7, 9, 10, 11; "what is 3 + 1" is out
    assert train == [f"what is {i} + 1" for i in (1, 2, 5, 6, 7, 9, 10, 11)]
    held = b.dataset("math", "heldout")
    assert held["answer"] == ["4", "101"] and set(held["task"]) == {"math"}
    with pytest.raises(ValueError, match="no 'math500' prompt set"):
        backend(files).prompt_set("math500")


def test_evaluation_serves_every_metric_the_notebooks_read(files, stand_ins, tmp_path):
    """Notebooks 05 and 08 read these keys from hub-backend evaluations; correctness is real:
    math-verify for gsm8k/math, the unit tests for code."""
    from frpo.analysis import downstream as ds
    from frpo.analysis import math_code as mc
    from frpo.rewards.code import unit_test_score
    from frpo.rewards.math import correct_score
    from frpo.stages.backend import load_model
    from frpo.stages.evaluate import evaluate_model
    from frpo.stages.spec import EvalSpec

    b = backend(files)
    model = load_model(files["model"]).eval()
    tasks = ("safety", "alpaca", "gsm8k", "math", "code")
    spec = EvalSpec(tasks=tasks, n_prompts=1, max_new_tokens=6)
    log = []
    metrics = evaluate_model(b, model, model, b.tokenizer, spec, log)
    read = [*ds.TASK_SCORE.values(), mc.MATH_ACC, mc.MATH_REWARD, mc.CODE_ACC]
    read += ["frpo/eval/safety/refusal_rate", "frpo/eval/safety/harmfulness"]
    assert [k for k in read if k not in metrics] == []
    assert "frpo/eval/code/reward" in metrics and metrics["frpo/eval/kl_base"] == 0.0
    greedy = {row["task"]: row["greedy"] for row in log}
    math_row = b.dataset("math", "heldout", 1)[0]
    assert metrics[mc.MATH_ACC] == correct_score(greedy["math"], math_row["answer"])
    code_row = b.dataset("code", "heldout", 1)[0]
    assert metrics[mc.CODE_ACC] == unit_test_score(greedy["code"], code_row["unit_tests"])
    # the stand-ins: helpfulness 0.3 without "poem"; harmfulness nan (no "sure"): undecided
    assert metrics[ds.TASK_SCORE["alpaca"]] == 0.3
    assert metrics["frpo/eval/safety/undecided/harmfulness"] == 1


def test_paper_profile_trains_math_without_math500():
    """Issue 10 row 9: the paper's math world holds MATH-500 out of training, and the training
    prompts it asks for fit MATH's train split at levels 3-5 (7,500 - 564 - 1,348 = 5,588)."""
    import yaml

    from frpo.paths import repo_root

    nb = yaml.safe_load((repo_root() / "profiles" / "paper.yaml").read_text())["notebooks"]
    params = nb["08_math_then_code"]["params"]
    data = params["world"]["data"]
    assert data["math500"] == "HuggingFaceH4/MATH-500"
    assert data["math"] != "qwedsacf/competition_math"  # one split holding all 12,500
    assert params["math_stage1"]["n_prompts"] <= 5588 - 500
    assert params["evaluation"]["n_prompts"] <= 500
