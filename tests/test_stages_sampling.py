"""Sampling and per-token KL against plain-loop float64 references; SAM against hand numbers."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from accelerate.utils import DistributedType
from test_stages_fixtures import build_model

from frpo.stages.backend import load_model, load_tokenizer
from frpo.stages.sampling import (
    Samples,
    completion_logps,
    kl_to,
    per_token_kl,
    sample,
    token_kls,
)

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


def _full_float64_logps(model, prompt_ids, completion_ids):
    """The reference: one right-padded forward, log_softmax over (B, L, V) in float64."""
    seqs = [p + c for p, c in zip(prompt_ids, completion_ids, strict=True)]
    width = max(map(len, seqs))
    ids = torch.zeros((len(seqs), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, s in enumerate(seqs):
        ids[i, : len(s)], mask[i, : len(s)] = torch.tensor(s), 1
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.double(), -1)
    out = []
    for i, (p, c) in enumerate(zip(prompt_ids, completion_ids, strict=True)):
        pos = torch.arange(len(p) - 1, len(p) + len(c) - 1)
        out.append(logp[i, pos, torch.tensor(c, dtype=torch.long)])
    return out


def test_completion_logps_in_fp32_chunks_equal_the_float64_full_softmax(models):
    """Issue 10 row 3: no (B, L, V) logits, no float64 vocabulary tensor; same numbers.

    Ragged prompts and completions (one empty), a logit budget of two rows per forward and
    position chunks of one: every forward returns at most the budget and only the completion's
    columns (C + 1), and each log-prob equals the float64 full computation to 1e-5.
    """
    model, _, tok = models
    samples = sample(model, tok, PROMPTS * 3, max_new_tokens=7, seed=3)
    comps = [c[: 1 + i % 7] for i, c in enumerate(samples.completion_ids)] + [[]]
    prompts = samples.prompt_ids + [samples.prompt_ids[0]]
    assert len({len(p) for p in prompts}) > 1 and len({len(c) for c in comps}) > 2
    vocab = model.config.vocab_size
    longest = max(map(len, comps))
    budget = 2 * (longest + 1) * vocab
    shapes = []
    hook = model.register_forward_hook(lambda m, a, out: shapes.append(tuple(out.logits.shape)))
    try:
        got = completion_logps(model, prompts, comps, logit_budget=budget, chunk_budget=vocab)
    finally:
        hook.remove()
    assert shapes and all(b * n * v <= budget and n <= longest + 1 for b, n, v in shapes)
    assert sum(b for b, _, _ in shapes) == len(prompts) - 1  # the empty answer needs no forward
    ref = _full_float64_logps(model, prompts, comps)
    for g, r, c in zip(got, ref, comps, strict=True):
        assert g.dtype == torch.float64 and g.shape == (len(c),)
        assert torch.allclose(g, r, rtol=0, atol=1e-5), (g, r)
    default = completion_logps(model, prompts, comps)  # one forward for this toy batch
    assert all(torch.allclose(a, b, rtol=0, atol=1e-5) for a, b in zip(default, got, strict=True))


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
    trainer.accelerator = SimpleNamespace(
        unwrap_model=lambda m: m, distributed_type=DistributedType.NO
    )
    model.train()
    trainer.training_step(model, {})
    g = c * w0**3  # grad at w0
    e = 0.1 * g / g.norm()
    expected = c * (w0 + e) ** 3
    assert torch.equal(model.w.detach(), w0)  # bit-exact restore
    assert torch.allclose(model.w.grad, expected, rtol=0, atol=1e-12)
    assert not torch.allclose(model.w.grad, g)  # and it is not the plain gradient
    assert trainer._metrics["train"]["loss"] == [1.0]  # the ascent pass's log was dropped


class SteppingEngine:
    """A stand-in for DeepSpeed's engine as accelerate drives it: ``backward`` then ``step``
    (SGD step + zero grad) inside ``Accelerator.backward``. With ``master=True`` it steps an
    fp32 master copy and copies it into the model's weights, as ZeRO-1/2 do."""

    def __init__(self, params, lr, master):
        self.params, self.lr, self.steps = params, lr, 0
        self.master = [p.detach().clone() for p in params] if master else None

    def set_gradient_accumulation_boundary(self, is_boundary):
        assert is_boundary

    def backward(self, loss):
        loss.backward()

    def step(self):
        self.steps += 1
        with torch.no_grad():
            for i, p in enumerate(self.params):
                if self.master is None:
                    p -= self.lr * p.grad
                else:
                    self.master[i] -= self.lr * p.grad
                    p.copy_(self.master[i])
                p.grad = None


class StandInAccelerator:
    """accelerate's own ``Accelerator.backward`` routing on a stand-in state."""

    from accelerate import Accelerator

    backward = Accelerator.backward

    def __init__(self, engine=None):
        from accelerate.utils.deepspeed import DeepSpeedEngineWrapper

        self.distributed_type = DistributedType.NO if engine is None else DistributedType.DEEPSPEED
        self.gradient_accumulation_steps, self.sync_gradients = 1, True
        self.scaler, self.has_lomo_optimizer = None, False
        if engine is not None:
            self.deepspeed_engine_wrapped = DeepSpeedEngineWrapper(engine)

    def unwrap_model(self, model):
        return model


@pytest.mark.parametrize("where", ["optimizer", "deepspeed", "deepspeed_master_weights"])
def test_sam_two_steps_by_hand_with_and_without_a_stepping_engine(where, monkeypatch):
    """Two SAM steps on L(w) = (w1^2 + 2 w2^2) / 2 (grad (w1, 2 w2)), rho 0.5, SGD lr 0.1, float64,
    whether the step is the optimizer's after ``training_step`` or, as under DeepSpeed, the
    engine's inside ``accelerator.backward`` (issue 10 row 6: restoring theta afterwards undid
    every DeepSpeed step)::

        w0 = (3, 2):  g = (3, 4), |g| = 5, e = 0.5 g / 5 = (0.3, 0.4), w0 + e = (3.3, 2.4)
                      g' = (3.3, 4.8), w1 = w0 - 0.1 g' = (2.67, 1.52)
        w1:           g = (2.67, 3.04), |g| = sqrt(16.3705) = 4.0460474540
                      e = (0.3299516417, 0.3756752775), w1 + e = (2.9999516417, 1.8956752775)
                      g' = (2.9999516417, 3.7913505550), w2 = (2.3700048358, 1.1408649445)
    """
    from trl import GRPOTrainer

    from frpo.stages.sam import SAMGRPOTrainer

    c = torch.tensor([1.0, 2.0], dtype=torch.float64)

    def loss_fn(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        return (c * model.w**2).sum() / 2

    def step_fn(self, model, inputs, num_items_in_batch=None):  # transformers' training_step
        loss = self.compute_loss(model, inputs)
        self.accelerator.backward(loss)
        return loss.detach()

    monkeypatch.setattr(GRPOTrainer, "compute_loss", loss_fn)
    monkeypatch.setattr(GRPOTrainer, "training_step", step_fn)
    model = torch.nn.Module()
    model.w = torch.nn.Parameter(torch.tensor([3.0, 2.0], dtype=torch.float64))
    model.train()
    trainer = object.__new__(SAMGRPOTrainer)
    trainer.sam_rho, trainer._sam_shift, trainer._metrics = 0.5, [], {"train": {}}
    engine = None
    if where == "optimizer":
        trainer.accelerator = StandInAccelerator()
        opt = torch.optim.SGD([model.w], lr=0.1)
    else:
        engine = SteppingEngine([model.w], 0.1, master=where == "deepspeed_master_weights")
        trainer.accelerator = StandInAccelerator(engine)
    for _ in range(2):
        trainer.training_step(model, {})
        if engine is None:  # the Trainer steps after training_step (a no-op under DeepSpeed)
            opt.step()
            opt.zero_grad()
    expected = torch.tensor([2.3700048358261094, 1.1408649445029013], dtype=torch.float64)
    assert torch.allclose(model.w.detach(), expected, rtol=0, atol=1e-12), model.w
    if engine is not None:
        assert engine.steps == 2 and "step" not in vars(engine)  # the engine's own step again


def test_sam_refuses_zero3(monkeypatch):
    from trl import GRPOTrainer

    from frpo.stages.sam import SAMGRPOTrainer

    def init(self, *args, **kwargs):
        plugin = SimpleNamespace(zero_stage=3)
        self.accelerator = SimpleNamespace(state=SimpleNamespace(deepspeed_plugin=plugin))

    monkeypatch.setattr(GRPOTrainer, "__init__", init)
    with pytest.raises(ValueError, match="grpo_sam cannot run under DeepSpeed ZeRO-3"):
        SAMGRPOTrainer(sam_rho=0.05)


def test_token_kls_match_a_float64_full_vocabulary_loop(models):
    model, other, tok = models
    samples = sample(model, tok, PROMPTS, max_new_tokens=5, seed=3)
    got = token_kls(model, other, samples.prompt_ids, samples.completion_ids, chunk_budget=7)
    for p, c, kl in zip(samples.prompt_ids, samples.completion_ids, got, strict=True):
        assert len(kl) == len(c) > 0 and bool((kl >= 0).all())
        ids = torch.tensor([p + c])
        with torch.no_grad():
            lq = torch.log_softmax(model(input_ids=ids).logits.double(), -1)[0]
            lp = torch.log_softmax(other(input_ids=ids).logits.double(), -1)[0]
        for t in range(len(c)):
            pos = len(p) - 1 + t  # the logits that predict completion token t
            want = float((lq[pos].exp() * (lq[pos] - lp[pos])).sum())
            assert float(kl[t]) == pytest.approx(want, rel=1e-4, abs=1e-6)


def test_token_kls_sum_to_the_sequence_kl_in_expectation(models):
    # Chain rule: E_{y ~ q}[sum_t KL(q_t || p_t)] = KL(q || p) over whole answers. Enumerate every
    # answer of two tokens (every pair of the vocabulary, V^2 answers) with its q(y).
    model, other, tok = models
    prompt = tok.apply_chat_template(PROMPTS[0], add_generation_prompt=True, tokenize=False)
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    vocab = model.config.vocab_size
    answers = [[a, b] for a in range(vocab) for b in range(vocab)]
    lq = completion_logps(model, [p_ids] * len(answers), answers)
    lp = completion_logps(other, [p_ids] * len(answers), answers)
    kls = token_kls(model, other, [p_ids] * len(answers), answers)
    weights = torch.stack([q.sum() for q in lq]).exp()  # q(y), sums to 1
    assert float(weights.sum()) == pytest.approx(1.0, abs=1e-4)
    triples = zip(weights, lq, lp, strict=True)
    sequence_kl = float(sum(w * (q.sum() - p.sum()) for w, q, p in triples))
    expected = float(sum(w * k.sum() for w, k in zip(weights, kls, strict=True)))
    assert expected == pytest.approx(sequence_kl, rel=1e-4)
    assert sequence_kl > 0


def test_kl_to_is_the_token_kls_per_token(models):
    model, other, tok = models
    samples = sample(model, tok, PROMPTS, max_new_tokens=5, seed=4)
    kls = token_kls(model, other, samples.prompt_ids, samples.completion_ids)
    total = sum(float(k.sum()) for k in kls) / sum(len(k) for k in kls)
    assert kl_to(model, other, samples) == pytest.approx(total, rel=1e-12)
    assert kl_to(model, model, samples) == pytest.approx(0.0, abs=1e-6)
