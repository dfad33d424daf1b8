"""Sampling and per-token KL against plain-loop float64 references; SAM against hand numbers."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from test_stages_fixtures import build_model

from frpo.stages.sampling import (
    Samples,
    completion_logps,
    kl_to,
    per_token_kl,
    sample,
)
from frpo.stages.sources import load_model, load_tokenizer

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    a = build_model(root / "a", seed=0)
    b = build_model(root / "b", seed=1)
    return load_model(a), load_model(b), load_tokenizer(a)


PROMPTS = [
    [{"role": "user", "content": "add 3 and 4"}],
    [{"role": "user", "content": "what is moon"}],
    [{"role": "user", "content": "apple river stone cloud green blue"}],
]


def test_per_token_kl_hand_worked():
    # two answers, 3 + 1 tokens; log q - log p = [0.5, 0.1, -0.2] and [0.2]: sum 0.6 over 4 tokens
    q = [
        torch.tensor([-1.0, -2.0, -0.5], dtype=torch.float64),
        torch.tensor([-0.3], dtype=torch.float64),
    ]
    p = [
        torch.tensor([-1.5, -2.1, -0.3], dtype=torch.float64),
        torch.tensor([-0.5], dtype=torch.float64),
    ]
    assert per_token_kl(q, p) == pytest.approx(0.15, abs=1e-12)
    assert math.isnan(per_token_kl([torch.zeros(0)], [torch.zeros(0)]))


def test_completion_logps_match_a_one_sequence_plain_loop(models):
    model, _, tok = models
    samples = sample(model, tok, PROMPTS, max_new_tokens=5, seed=0)
    got = completion_logps(model, samples.prompt_ids, samples.completion_ids)
    for p, c, lp in zip(samples.prompt_ids, samples.completion_ids, got, strict=True):
        assert len(lp) == len(c) > 0
        for t in range(len(c)):  # token by token, unpadded, float64
            with torch.no_grad():
                logits = model(torch.tensor([p + c[:t]])).logits[0, -1].double()
            ref = torch.log_softmax(logits, -1)[c[t]]
            assert float(lp[t]) == pytest.approx(float(ref), abs=1e-5)


def test_kl_of_a_model_to_itself_is_zero_and_to_another_positive_on_average(models):
    a, b, tok = models
    samples = sample(a, tok, PROMPTS * 20, max_new_tokens=6, seed=1)
    assert kl_to(a, a, samples) == 0.0
    assert kl_to(a, b, samples) > 0.0  # random inits differ: a clear positive KL


def test_sampling_is_seeded_and_leaves_the_global_rng_alone(models):
    a, _, tok = models
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    s1 = sample(a, tok, PROMPTS * 4, max_new_tokens=6, seed=7)
    after = torch.rand(1)
    s2 = sample(a, tok, PROMPTS * 4, max_new_tokens=6, seed=7)
    s3 = sample(a, tok, PROMPTS * 4, max_new_tokens=6, seed=8)
    assert torch.equal(before, after)
    assert s1.completion_ids == s2.completion_ids and s1.texts == s2.texts
    assert s1.completion_ids != s3.completion_ids


def test_greedy_equals_an_argmax_loop(models):
    a, _, tok = models
    samples = sample(a, tok, PROMPTS, max_new_tokens=4, greedy=True)
    eos = tok.eos_token_id
    for p, c in zip(samples.prompt_ids, samples.completion_ids, strict=True):
        seq, ref = list(p), []
        for _ in range(4):
            with torch.no_grad():
                nxt = int(a(torch.tensor([seq])).logits[0, -1].argmax())
            ref.append(nxt)
            seq.append(nxt)
            if nxt == eos:
                break
        assert c == ref


def test_samples_dataclass_holds_unpadded_ids(models):
    a, _, tok = models
    s = sample(a, tok, PROMPTS, max_new_tokens=3, seed=0)
    assert isinstance(s, Samples) and len(s.prompt_ids) == 3
    assert all(tok.pad_token_id not in p for p in s.prompt_ids)
    assert all(1 <= len(c) <= 3 for c in s.completion_ids)


# ---------------------------------------------------------------- SAM


def test_sam_perturbation_hand_worked():
    from frpo.stages.sam import sam_perturbation

    # g = ([3, 0], [4]) has norm 5; e = 0.5 * g / 5 = ([0.3, 0], [0.4])
    e = sam_perturbation([torch.tensor([3.0, 0.0]), None, torch.tensor([4.0])], 0.5)
    assert torch.allclose(e[0], torch.tensor([0.3, 0.0])) and e[1] is None
    assert torch.allclose(e[2], torch.tensor([0.4]))
    zero = sam_perturbation([torch.zeros(2)], 0.1)
    assert torch.equal(zero[0], torch.zeros(2))
    with pytest.raises(ValueError, match="rho must be > 0"):
        sam_perturbation([torch.ones(1)], 0.0)


def test_sam_step_uses_the_gradient_at_the_ascended_point(monkeypatch):
    """SAMGRPOTrainer on a quadratic loss L(w) = sum(c * w^4)/4 with GRPO's loss and step
    replaced by plain stand-ins: the gradient left for the optimizer is grad L(w + e),
    e = rho g/||g||, and the parameters are exactly w again afterwards."""
    from trl import GRPOTrainer

    from frpo.stages.sam import SAMGRPOTrainer

    c = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)

    def loss_fn(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        self._metrics["train"]["loss"].append(1.0)
        return (c * model.w**4).sum() / 4

    def step_fn(self, model, inputs, num_items_in_batch=None):
        loss = self.compute_loss(model, inputs)
        loss.backward()
        return loss.detach()

    monkeypatch.setattr(GRPOTrainer, "compute_loss", loss_fn)
    monkeypatch.setattr(GRPOTrainer, "training_step", step_fn)
    model = torch.nn.Module()
    model.w = torch.nn.Parameter(torch.tensor([1.0, -0.5, 0.25], dtype=torch.float64))
    w0 = model.w.detach().clone()
    trainer = object.__new__(SAMGRPOTrainer)
    trainer.sam_rho, trainer._sam_shift = 0.1, []
    trainer._metrics = {"train": {"loss": []}}
    trainer.accelerator = SimpleNamespace(unwrap_model=lambda m: m)
    model.train()
    trainer.training_step(model, {})
    g = c * w0**3  # grad at w0
    e = 0.1 * g / g.norm()
    expected = c * (w0 + e) ** 3
    assert torch.equal(model.w.detach(), w0)  # bit-exact restore
    assert torch.allclose(model.w.grad, expected, rtol=0, atol=1e-12)
    assert not torch.allclose(model.w.grad, g)  # and it is not the plain gradient
    assert trainer._metrics["train"]["loss"] == [1.0]  # the ascent pass's log was dropped
