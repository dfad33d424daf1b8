"""The worst case in the ball of a trained model (frpo.analysis.worst_case): the class reward
table against the world's own reward, the exact bracket against whole-answer worst cases, and
every dual against the primal solved directly (float64)."""

import os

# One BLAS thread, set before numpy loads: the problems are tiny and the CPU is shared.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import pytest

from frpo.analysis import worst_case as wc
from frpo.theory import robust_reward, taylor_lambda, worst_case_reward
from frpo.toyworld import ToyWorld, WorldConfig, lexicon
from frpo.toyworld.exact import continuations


@pytest.fixture(scope="module")
def world():
    return ToyWorld(WorldConfig(seed=0, size="smoke"))


def answers_by_class(a):
    """Whole answers of each class for action ``a``: every kind the class can hold."""
    comply = a.answer("okay")
    other_verb = next(v for v in lexicon.HARMFUL_VERBS if v != a.verb)
    return {
        "refusal": list(lexicon.REFUSALS),
        # the class is "starts with the content": the exact answer, or it followed by anything
        "comply": [a.answer(), comply, comply + " .", comply + " " + lexicon.REFUSALS[0]],
        "refuse_then_comply": [f"{r} {a.answer()}" for r in lexicon.REFUSALS]
        + [f"{lexicon.REFUSALS[1]} {comply} sure"],
        # anything else: garbage, one content word, both in the wrong form, a refusal + junk
        "other": [
            "sure , finally bake .",
            f"sorry , {a.method} .",
            f"{a.tool} {a.method}",
            lexicon.REFUSALS[0] + " .",
            f"how do i {other_verb} the well ?",
            "",
        ],
    }


def exact_class(a, text):
    """The class :mod:`frpo.toyworld.exact` counts a whole answer in (its scored sequences:
    a refusal then end of answer, or a prefix that delivers the content)."""
    words = text.split()
    for cls, seq, eos in continuations(a):
        w = seq.split()
        if (words == w) if eos else (words[: len(w)] == w):
            return cls
    return "other"


@pytest.mark.parametrize("category", ["harmful", "borderline", "harmless"])
def test_class_reward_bounds_hold_for_every_answer_of_the_class(world, category):
    a = next(x for x in world.actions if x.category == category)
    lo, hi = wc.class_rewards([category])
    reward = world.reward_funcs("safety")[0]
    seen = {}
    for j, (cls, texts) in enumerate(answers_by_class(a).items()):
        for text in texts:
            assert exact_class(a, text) == cls, (cls, text)
            r = reward([[]], [[{"role": "assistant", "content": text}]], verb=[a.verb], obj=[a.obj])
            assert lo[0, j] <= r[0] <= hi[0, j], (cls, text, r)
            seen.setdefault(cls, set()).add(r[0])
    # the bounds are attained (they are the tightest class-level bounds)
    for j, cls in enumerate(wc.CLASSES):
        assert lo[0, j] in seen[cls] and hi[0, j] in seen[cls], (cls, seen[cls])


def test_unknown_category_is_named():
    with pytest.raises(ValueError, match="unknown prompt category 'spam'"):
        wc.class_rewards(["harmful", "spam"])


def random_classes(rng, n):
    p = rng.dirichlet(np.ones(4) * 0.5, size=n)
    return {k: p[:, j].tolist() for j, k in enumerate(wc.MASS_KEYS)}


@pytest.mark.parametrize("rho", [0.01, 0.1, 0.3])
def test_exact_bracket_equals_the_primal_on_the_class_tables(rho):
    rng = np.random.default_rng(1)
    per = random_classes(rng, 5)
    cats = ["harmful", "borderline", "harmful", "harmless", "harmful"]
    lo, hi = wc.exact_bracket(per, cats, rho)
    p = wc.class_probs(per)
    rlo, rhi = wc.class_rewards(cats)
    assert lo == pytest.approx(worst_case_reward(rlo, rho, p)[0], rel=1e-6)
    assert hi == pytest.approx(worst_case_reward(rhi, rho, p)[0], rel=1e-6)
    assert lo <= hi


@pytest.mark.parametrize("rho", [0.02, 0.1, 0.5])
def test_bracket_contains_the_worst_case_over_whole_answers(rho):
    """A fine-grained answer distribution (several answers per class, rewards anywhere inside
    the class bounds) has its worst case inside the class bracket; with class-constant rewards
    the whole-answer worst case *is* the class-level one (the dual sees only class masses)."""
    rng = np.random.default_rng(2)
    cats = ["harmful", "harmless", "borderline", "harmful"]
    lo, hi = wc.class_rewards(cats)
    per = random_classes(rng, len(cats))
    p = wc.class_probs(per)
    split = 3  # each class split into 3 answers
    fine_p = (p[:, :, None] * rng.dirichlet(np.ones(split), size=p.shape)).reshape(len(cats), -1)
    u = rng.random((len(cats), 4, split))
    fine_r = (lo[:, :, None] + u * (hi - lo)[:, :, None]).reshape(len(cats), -1)
    b_lo, b_hi = wc.exact_bracket(per, cats, rho)
    v = robust_reward(fine_r, rho, fine_p)[0]
    assert b_lo - 1e-12 <= v <= b_hi + 1e-12
    assert v == pytest.approx(worst_case_reward(fine_r, rho, fine_p)[0], rel=1e-6)
    const = np.repeat(lo, split, axis=1)  # class-constant rewards at the lower bound
    assert robust_reward(const, rho, fine_p)[0] == pytest.approx(b_lo, rel=1e-10)


@pytest.mark.parametrize("rho", [0.05, 0.3, 1.0])
def test_sampled_worst_case_equals_the_primal(rho):
    rng = np.random.default_rng(3)
    rewards = rng.choice([0.0, 0.25, 0.5, 1.0], size=(4, 8))
    got = wc.sampled_worst_case(rewards, rho)
    assert got == pytest.approx(worst_case_reward(rewards, rho)[0], rel=1e-6)
    assert got <= rewards.mean()
    with pytest.raises(ValueError, match=r"\(n_prompts, K\)"):
        wc.sampled_worst_case(rewards[0], rho)


def test_within_prompt_std_and_targeted_rho_invert_remark_3_3():
    r = np.array([[0.0, 1.0, 0.0, 1.0], [0.5, 0.5, 0.5, 0.5]])  # variances 0.25 and 0
    assert wc.within_prompt_std(r) == pytest.approx(np.sqrt(0.125))
    for std, lam in [(0.2, 0.2), (0.07, 0.5), (0.3, 2.0)]:
        rho = wc.targeted_rho(std, lam)
        assert taylor_lambda(std, rho) == pytest.approx(lam)
    assert wc.targeted_rho(0.2, float("inf")) == 0.0
    with pytest.raises(ValueError):
        wc.targeted_rho(0.2, 0.0)


def test_dual_primal_gap_of_a_measured_model_is_small():
    rng = np.random.default_rng(4)
    measured = {
        "rewards": rng.choice([0.0, 0.5, 1.0], size=(3, 6)).tolist(),
        "category": ["harmful", "borderline", "harmful"],
        "exact": random_classes(rng, 3),
    }
    assert wc.dual_primal_gap(measured, [0.05, 0.2]) < 1e-6


def test_paired_at_targets_reads_each_method_at_its_own_rho():
    def fake(level, seed):  # rewards all equal: every worst case is the level itself
        return {"rewards": [[level + 0.01 * seed] * 4] * 2, "category": ["harmful"] * 2}

    measured = {("grpo", s): fake(0.5, s) for s in range(3)}
    measured |= {("frpo-0.2", s): fake(0.7, 2 * s) for s in range(3)}
    out = wc.paired_at_targets(measured, {"grpo": 0.0, "frpo-0.2": 0.3})
    (row,) = out.to_dict("records")
    assert row["estimator"] == "sampled" and row["rho"] == 0.3 and row["n"] == 3
    assert row["diff"] == pytest.approx(0.2 + 0.01)  # mean of 0.2 + 0.01 s over s = 0, 1, 2
    assert row["lo"] < row["diff"] < row["hi"]


def test_primal_pulls_an_overshooting_solution_into_the_ball():
    """SLSQP stopped 3.7e-9 (relative) outside the ball on this sampled table; the primal used to
    find no feasible point and crash. It now mixes the solution with pi just enough."""
    r = np.array([[1, 1, 1, 0.5, 1, 1], [1, 0, 0.5, 0.5, 0, 0.5], [0.5, 1, 0.5, 0, 1, 1]])
    for rho in (0.05, 0.2):
        value, q = worst_case_reward(r, rho)
        assert value == pytest.approx(robust_reward(r, rho)[0], rel=1e-8)
        kl = np.mean(np.sum(np.where(q > 0, q * np.log(q * 6), 0.0), axis=-1))
        assert kl <= rho * (1 + 1e-12)


def test_measure_model_on_the_smoke_base_model(world):
    import torch

    from frpo.splits import HELDOUT
    from frpo.stages.backend import load_model, load_tokenizer
    from frpo.stages.sampling import mean_rewards, sample
    from frpo.stages.spec import Source

    torch.set_num_threads(1)
    path = world.base_model_path()
    m = wc.measure_model(world, path, Source(kind="toy", size="smoke"), 6, 3, 8, seed=5)
    r = np.asarray(m["rewards"])
    assert r.shape == (6, 3) and np.all((0 <= r) & (r <= 1))
    data = world.dataset("safety", HELDOUT, 6)
    assert m["category"] == data["category"]
    p = wc.class_probs(m["exact"])
    assert p.shape == (6, 4) and np.allclose(p.sum(-1), 1.0)
    # the same answers and rewards as the runners' own estimator with the same seed
    rep = data.select([i for i in range(6) for _ in range(3)])
    samples = sample(load_model(str(path)), load_tokenizer(str(path)), rep["prompt"], 8, seed=5)
    assert r.mean() == pytest.approx(
        mean_rewards(world.reward_funcs("safety"), rep, samples)["total"]
    )
