"""FRPOTrainer's optimiser step equals one hand SGD step on frpo_loss(whole batch) + beta * KL.

Layouts (one process): one micro-batch holding the whole generation batch, and
gradient_accumulation_steps = steps_per_generation = 2, where TRL shuffles the rows and splits
groups across the two micro-batches. The reference recomputes the log-probs with its own forward
pass, takes the groups from the prompt tokens (not from the trainer's bookkeeping), applies
``frpo_loss`` to the whole batch in float64 and steps by hand. Two processes: see
test_trainer_distributed.py.
"""

import _tiny
import pytest
import torch

from frpo.trainer import loss_scale_factor

LR = 0.5


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    torch.set_num_threads(1)
    return _tiny.build_tiny(tmp_path_factory.mktemp("tiny"), hidden_size=32, num_layers=2,
                            intermediate_size=64)  # fmt: skip


def _params(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _train_one_step(path, out, **overrides):
    trainer = _tiny.exact_recording_trainer(path, str(out), learning_rate=LR, **overrides)
    start = _params(trainer.model)
    trainer.train()
    _train_one_step.logged = trainer.state.log_history[0]
    return start, _params(trainer.model), trainer.recorded, trainer.args


def _reference(path, batches, args, **kw):
    model, _ = _tiny.load_tiny(path, torch.float64)
    scale = loss_scale_factor(args.lam, args.loss_scale)
    _reference.value = _tiny.reference_step(
        model, batches, lam=args.lam, beta=args.beta, epsilon=args.epsilon, lr=LR, scale=scale, **kw
    )
    return _params(model)


@pytest.mark.parametrize(
    "overrides",
    [
        dict(per_device_train_batch_size=12, lam=0.5, beta=0.1, loss_scale="none"),
        dict(per_device_train_batch_size=12, lam=0.3, beta=0.0, jackknife=False),
    ],
    ids=["beta0.1-jackknife", "beta0-plain"],
)
def test_one_process_one_micro_batch(tiny_path, tmp_path, overrides):
    start, after, batches, args = _train_one_step(tiny_path, tmp_path, **overrides)
    assert len(batches) == 1 and batches[0]["completion_ids"].shape[0] == 12
    ref = _reference(tiny_path, batches, args, jackknife=args.jackknife)
    rel = _tiny.max_rel_diff(ref, after, start)
    print(f"step mismatch relative to the step: {rel:.2e}")
    assert rel < 1e-6
    # the logged loss is the value of scale * frpo_loss + beta * KL, not the surrogate's
    assert _train_one_step.logged["loss"] == pytest.approx(_reference.value, rel=1e-5, abs=1e-9)
    assert abs(_reference.value) > 1e-3


def test_one_process_two_micro_batches_split_groups(tiny_path, tmp_path):
    start, after, batches, args = _train_one_step(
        tiny_path, tmp_path, per_device_train_batch_size=6, gradient_accumulation_steps=2,
        steps_per_generation=2, lam=0.5, beta=0.1,
    )  # fmt: skip
    assert len(batches) == 2
    # the layout is the hard one: some prompt's group is split across the two micro-batches
    gids = _tiny.prompt_group_ids(batches)
    assert set(gids[:6].tolist()) & set(gids[6:].tolist())
    ref = _reference(tiny_path, batches, args)
    rel = _tiny.max_rel_diff(ref, after, start)
    print(f"step mismatch relative to the step: {rel:.2e}")
    assert rel < 1e-6

    # negative control: frpo_loss applied per micro-batch (split groups) is a different step
    plain = _reference(tiny_path, batches, args, jackknife=False)
    naive, _ = _tiny.load_tiny(tiny_path, torch.float64)
    _tiny.naive_step(naive, batches, lam=args.lam, epsilon=args.epsilon, lr=LR,
                     scale=loss_scale_factor(args.lam, args.loss_scale), n_micro=2)  # fmt: skip
    assert _tiny.max_rel_diff(plain, _params(naive), start) > 1e-3


def test_one_process_two_generations_per_step(tiny_path, tmp_path):
    # gradient_accumulation_steps = 2 x steps_per_generation: two generation batches (2 groups
    # each) feed one optimiser step; the step is that of frpo_loss on all 4 groups. beta = 0 here:
    # with beta > 0 the KL is a token mean per generation batch (as TRL's "dapo"), averaged.
    start, after, batches, args = _train_one_step(
        tiny_path, tmp_path, per_device_train_batch_size=8, gradient_accumulation_steps=2,
        steps_per_generation=1, lam=0.5, beta=0.0,
    )  # fmt: skip
    assert len(batches) == 2 and len(set(_tiny.prompt_group_ids(batches).tolist())) == 4
    ref = _reference(tiny_path, batches, args)
    rel = _tiny.max_rel_diff(ref, after, start)
    print(f"step mismatch relative to the step: {rel:.2e}")
    assert rel < 1e-6
