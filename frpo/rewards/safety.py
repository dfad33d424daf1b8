"""The paper's stage-1 safety reward (Sec. 5.1, App. C.1), as one TRL reward function.

For a prompt of category ``"harmful"``: r = 1 - (s_moderation + s_strongreject) / 2, both
harmfulness scores in [0, 1]. For ``"harmless"``: r = sigmoid(RM score) of the helpfulness
reward model. The dataset's ``category`` column (:func:`frpo.data.load_safety_prompts`) routes
each row.

An undecided judge score (nan) does not become a reward of 0: when one of the two harm judges is
undecided the other one alone gives r = 1 - s; when both are, or the reward model is, the row's
reward is None (TRL then leaves it out of the group's statistics) and is counted in
``undecided``.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from frpo.judges.api import ModerationJudge
from frpo.judges.base import Judge
from frpo.judges.catalogue import PAPER_SETTINGS
from frpo.judges.classifiers import RewardModelJudge, StrongRejectFinetunedJudge
from frpo.rewards.math import completion_text

CATEGORIES = ("harmful", "harmless")


def prompt_text(prompt: Any) -> str:
    """The user's request: a string, or the last user turn of a conversational prompt."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list | tuple):
        users = [m["content"] for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        if users:
            return str(users[-1])
    raise ValueError(f"prompt {prompt!r} is neither a string nor a conversation with a user turn")


_LOCAL_ONLY = contextvars.ContextVar("frpo_local_scoring", default=False)


@contextmanager
def local_scoring() -> Iterator[None]:
    """Inside this block :func:`on_main_process` scores this process's own pairs, with no
    collective.

    For work only one process does: the RL runner's held-out evaluation runs on rank 0 after the
    other ranks have returned, where a gather would wait for ranks that are gone (a hang under
    ZeRO-3, where rank 0 alone evaluates the gathered model).
    """
    token = _LOCAL_ONLY.set(True)
    try:
        yield
    finally:
        _LOCAL_ONLY.reset(token)


def on_main_process(
    score: Callable[[list[str], list[str]], list[float]],
    prompts: list[str],
    completions: list[str],
) -> list[float]:
    """``score(prompts, completions)`` computed once, on rank 0, for every rank's pairs.

    Under ``torch.distributed`` with several processes each rank's pairs are gathered to rank 0,
    scored there in one call (one set of API requests, one rate-limit budget), and each rank gets
    its own slice back by broadcast. A single process, or any process inside
    :func:`local_scoring`, just calls ``score``. Otherwise every rank must call this the same
    number of times (it is a collective).
    """
    import torch.distributed as dist

    if (
        _LOCAL_ONLY.get()
        or not (dist.is_available() and dist.is_initialized())
        or dist.get_world_size() == 1
    ):
        return list(score(prompts, completions))
    world, rank = dist.get_world_size(), dist.get_rank()
    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, (prompts, completions))
    if rank == 0:
        all_p = [p for ps, _ in gathered for p in ps]
        all_c = [c for _, cs in gathered for c in cs]
        flat = list(score(all_p, all_c)) if all_p else []
        per_rank, start = [], 0
        for ps, _ in gathered:
            per_rank.append(flat[start : start + len(ps)])
            start += len(ps)
        box: list[Any] = [per_rank]
    else:
        box = [None]
    dist.broadcast_object_list(box, src=0)
    return box[0][rank]


class SafetyReward:
    """TRL reward function ``f(prompts, completions, category, **kw) -> list[float | None]``.

    Args:
        moderation: harm judge scored on the main process only (an API judge).
        strongreject: harm judge scored by every process on its own rows (local weights).
        helpfulness: judge of kind "helpfulness" for harmless rows (sigmoid of the RM).
        moderation_on_main_process: gather the moderation calls onto rank 0 (default True).
    """

    __name__ = "safety"

    def __init__(
        self,
        moderation: Judge,
        strongreject: Judge,
        helpfulness: Judge,
        moderation_on_main_process: bool = True,
    ):
        for judge, kind in (
            (moderation, "harmfulness"),
            (strongreject, "harmfulness"),
            (helpfulness, "helpfulness"),
        ):
            if judge.kind != kind:
                raise ValueError(f"judge {judge.name} has kind {judge.kind!r}, expected {kind!r}")
        self.moderation = moderation
        self.strongreject = strongreject
        self.helpfulness = helpfulness
        self.moderation_on_main_process = moderation_on_main_process
        self.undecided = 0

    def __call__(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        category: Sequence[str],
        **kwargs: Any,
    ) -> list[float | None]:
        if not len(prompts) == len(completions) == len(category):
            raise ValueError(
                f"safety reward: {len(prompts)} prompts, {len(completions)} "
                f"completions, {len(category)} categories"
            )
        bad = sorted({c for c in category if c not in CATEGORIES})
        if bad:
            raise ValueError(f"safety reward: unknown category {bad[0]!r}; expected {CATEGORIES}")
        p_text = [prompt_text(p) for p in prompts]
        c_text = [completion_text(c) for c in completions]
        harmful = [i for i, c in enumerate(category) if c == "harmful"]
        harmless = [i for i, c in enumerate(category) if c == "harmless"]
        out: list[float | None] = [None] * len(prompts)

        hp, hc = [p_text[i] for i in harmful], [c_text[i] for i in harmful]
        if self.moderation_on_main_process:
            s_mod = on_main_process(self.moderation, hp, hc)  # collective: every rank calls it
        else:
            s_mod = self.moderation(hp, hc) if harmful else []
        s_sr = self.strongreject(hp, hc) if harmful else []
        for i, m, s in zip(harmful, s_mod, s_sr, strict=True):
            decided = [x for x in (m, s) if not math.isnan(x)]
            out[i] = 1.0 - sum(decided) / len(decided) if decided else None

        if harmless:
            s_rm = self.helpfulness([p_text[i] for i in harmless], [c_text[i] for i in harmless])
            for i, r in zip(harmless, s_rm, strict=True):
                out[i] = None if math.isnan(r) else float(r)
        self.undecided += sum(r is None for r in out)
        return out


def paper_safety_reward(
    *,
    moderation_endpoint=None,
    strongreject_base: str = PAPER_SETTINGS["judge.strongreject_base"],
    strongreject_adapter: str | None = PAPER_SETTINGS["judge.strongreject_adapter"],
    reward_model: str = PAPER_SETTINGS["judge.reward_model"],
    reward_model_revision: str | None = PAPER_SETTINGS["judge.reward_model_revision"],
    dtype: str | None = None,
    device: str | None = None,
) -> SafetyReward:
    """The paper's safety reward with its judges: OpenAI ``omni-moderation-latest`` (key from
    ``OPENAI_API_KEY``, or ``moderation_endpoint``), the StrongREJECT fine-tuned grader and the
    RB2 reward model (both loaded once per process, see :mod:`frpo.judges.hf_cache`); the
    weights default to the paper's (:mod:`frpo.judges.catalogue`)."""
    return SafetyReward(
        ModerationJudge(endpoint=moderation_endpoint),
        StrongRejectFinetunedJudge(
            strongreject_base, strongreject_adapter, dtype=dtype, device=device
        ),
        RewardModelJudge(reward_model, revision=reward_model_revision, dtype=dtype, device=device),
    )
