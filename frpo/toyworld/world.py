"""`ToyWorld`: one seeded toy language with its tasks, judges, rewards and base model."""

from __future__ import annotations

import functools
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from datasets import Dataset

from frpo.artefacts import (
    damaged_files,
    move_into_place,
    read_verified_json,
    remove_dead_tmp,
    tmp_dir,
    write_checksums,
)
from frpo.locks import LOCKS_DIR, exclusive
from frpo.paths import cache_dir
from frpo.toyworld import exact, grammar, lexicon, problems, rewards, tasks
from frpo.toyworld.config import WorldConfig
from frpo.toyworld.judges import (
    CorrectnessJudge,
    HarmfulnessJudge,
    HelpfulnessJudge,
    RefusalJudge,
    prompt_text,
)
from frpo.toyworld.tokenizer import build_tokenizer

DONE = "DONE"


class ToyWorld:
    """The offline world: ``tokenizer``, ``tasks``, ``dataset``, ``sft_dataset``, ``reward_funcs``,
    ``judges``, ``base_model_path`` and ``exact_safety`` (see the package docstring)."""

    tasks = tasks.TASKS

    def __init__(self, config: WorldConfig | None = None):
        self.config = config or WorldConfig()
        c = self.config
        self.actions = lexicon.build_actions(
            c.seed,
            c.harmful_refusal_logit,
            c.borderline_refusal_logit,
            c.benign_refusal_logit,
            c.refusal_spread,
        )
        self._by_key = {(a.verb, a.obj): a for a in self.actions}
        self.code_inputs = problems.code_test_inputs(c.seed)

    # ------------------------------------------------------------------ language
    @functools.cached_property
    def tokenizer(self):
        """Word-level ``PreTrainedTokenizerFast`` with the user/assistant chat template."""
        return build_tokenizer()

    def action(self, verb: str, obj: str) -> lexicon.Action:
        """The action (verb, object); ValueError if the world has no such pair."""
        try:
            return self._by_key[(verb, obj)]
        except KeyError:
            raise ValueError(f"the toy world has no action ({verb!r}, {obj!r})") from None

    def action_of(self, prompt) -> lexicon.Action:
        """The action a request (string or conversational prompt) asks about."""
        return self.action(*grammar.parse_action(prompt_text(prompt)))

    @functools.cached_property
    def _problems(self) -> dict[str, problems.Problem]:
        out = {}
        for task in ("gsm8k", "math", "code"):
            out.update({p.prompt: p for p in tasks.problem_pool(task)})
        return out

    def problem_of(self, prompt) -> problems.Problem:
        """The gsm8k/math/code problem a prompt states; ValueError if it is none of the world's."""
        text = prompt_text(prompt)
        try:
            return self._problems[text]
        except KeyError:
            raise ValueError(f"{text!r} is not a problem of the toy world") from None

    # ------------------------------------------------------------------ data
    @functools.lru_cache(maxsize=32)  # noqa: B019 - a world lives as long as its caches
    def _rows(self, task: str, split: str) -> tuple:
        tasks.check_task_split(task, split)
        if task in ("safety", "alpaca", "helpful", "attack"):
            return tuple(tasks.action_rows(task, split, self.actions, self.config.seed))
        return tuple(tasks.problem_rows(task, split, self.config.seed))

    def _take(self, task: str, split: str, n: int | None) -> list[dict]:
        rows = list(self._rows(task, split))
        if n is not None:
            if n < 0:
                raise ValueError(f"n must be >= 0, got {n}")
            if n > len(rows):
                raise ValueError(f"{task}/{split} has {len(rows)} rows; asked for n={n}")
            rows = rows[:n]
        return rows

    def dataset(self, task: str, split: str, n: int | None = None) -> Dataset:
        """RL rows: ``prompt`` (one user message) plus the reward columns; the first ``n`` rows of a
        fixed seeded shuffle (so smaller ``n`` gives a prefix of a larger one)."""
        rows = self._take(task, split, n)
        return Dataset.from_list([{k: v for k, v in r.items() if k != "solution"} for r in rows])

    def sft_dataset(self, task: str, split: str, n: int | None = None) -> Dataset:
        """SFT rows in TRL's conversational format: ``messages`` = [user, assistant].

        Action tasks answer helpfully (safety: refuse harmful, help otherwise), except
        ``attack``, whose harmful requests get the compliant answer (the fine-tuning attack's
        data, Qi et al. 2023); problems get correct worked solutions."""
        out = []
        for r in self._take(task, split, n):
            if "solution" in r:
                answer = r["solution"]
            else:
                answer = tasks.ideal_answer(self.action(r["verb"], r["obj"]))
            msgs = [r["prompt"][0], {"role": "assistant", "content": answer}]
            out.append({"messages": msgs, "category": r["category"], "task": task})
        return Dataset.from_list(out)

    # ------------------------------------------------------------------ rewards and judges
    def reward_funcs(self, task: str) -> list:
        """TRL reward functions of a task (see :mod:`frpo.toyworld.rewards`)."""
        tasks.check_task_split(task, "train")
        if task in ("safety", "attack"):  # attack: harmful requests, scored for safety
            return [rewards.make_safety_reward(self._by_key)]
        if task in ("alpaca", "helpful"):
            return [rewards.make_helpfulness_reward(self._by_key)]
        if task == "gsm8k":
            return [rewards.toy_gsm8k_reward]
        if task == "math":
            return [rewards.math_reward]
        return [rewards.make_code_reward(self.code_inputs)]

    def judges(self) -> dict:
        """name -> Judge: refusal, harmfulness, helpfulness, correctness (whole-answer readers)."""
        return {
            "refusal": RefusalJudge(self.action_of),
            "harmfulness": HarmfulnessJudge(self.action_of),
            "helpfulness": HelpfulnessJudge(self.action_of),
            "correctness": CorrectnessJudge(self.problem_of, self.code_inputs),
        }

    def exact_safety(self, model, prompts: Sequence, batch_size: int = 256) -> dict:
        """Exact answer-class masses (:mod:`frpo.toyworld.exact`) for action requests.

        ``prompts``: strings, conversational prompts, or a Dataset with a ``prompt`` column.
        Returns ``per_prompt`` lists, ``category`` and ``frpo/exact/...`` means (overall and per
        category).
        """
        if isinstance(prompts, Dataset):
            prompts = prompts["prompt"]
        texts = [prompt_text(p) for p in prompts]
        return exact.exact_masses(
            model, self.tokenizer, texts, [self.action_of(t) for t in texts], batch_size
        )

    # ------------------------------------------------------------------ base model
    def base_model_dir(self) -> Path:
        """``cache_dir()/toyworld/<recipe hash>`` (may not exist yet)."""
        return cache_dir() / "toyworld" / self.config.recipe_hash()

    def base_model_path(self, verbose: bool = False) -> Path:
        """Directory of the pretrained base model and tokenizer; pretrains once per recipe hash.

        The directory is built under a temporary name and renamed into place, so a reader never
        sees a half-written model; a concurrent asker (another notebook) waits on a lock
        (:mod:`frpo.locks`) and then reuses the model instead of pretraining it again. Its files
        are checked against their ``checksums.json`` (:mod:`frpo.artefacts`) whenever it is
        asked for: a damaged cache is rebuilt (one line on stderr says which file), never used.
        A leftover temporary directory of a killed pretraining is removed by the next build.
        """
        final = self.base_model_dir()
        if (final / DONE).is_file() and not damaged_files(final):
            return final
        with exclusive(final.parent / LOCKS_DIR / f"{final.name}.lock"):
            problems = damaged_files(final) if final.exists() else ["not built yet"]
            if not problems:
                if not (final / DONE).is_file():  # only the marker was lost: the model is whole
                    (final / DONE).write_text("ok\n")
                return final
            if final.exists():
                print(
                    f"frpo: rebuilding the toy base model {final}: {'; '.join(problems)}",
                    file=sys.stderr,
                    flush=True,
                )
            return self._pretrain_into(final, verbose)

    def _pretrain_into(self, final: Path, verbose: bool) -> Path:
        from frpo.toyworld.pretrain import pretrain

        final.parent.mkdir(parents=True, exist_ok=True)
        remove_dead_tmp(final.parent)
        tmp = tmp_dir(final)
        shutil.rmtree(tmp, ignore_errors=True)
        pools = {
            t: tasks.split_pool(
                tasks.problem_pool(t), self.config.seed, 100 + tasks.TASKS.index(t)
            )["train"]
            for t in ("gsm8k", "math", "code")
        }
        model, stats = pretrain(
            self.config, self.tokenizer, self.actions, pools, log_every=100 if verbose else 0
        )
        model.generation_config.eos_token_id = self.tokenizer.eos_token_id
        model.generation_config.pad_token_id = self.tokenizer.pad_token_id
        try:
            model.save_pretrained(tmp)
            self.tokenizer.save_pretrained(tmp)
            stats.update(self._measure(model))
            recipe = json.dumps(self.config.recipe(), indent=1, sort_keys=True)
            (tmp / "recipe.json").write_text(recipe)
            (tmp / "properties.json").write_text(json.dumps(stats, indent=1, sort_keys=True))
            write_checksums(tmp, skip=(DONE,))
            (tmp / DONE).write_text("ok\n")
            move_into_place(tmp, final, lambda p: (p / DONE).is_file() and not damaged_files(p))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    def load_base_model(self):
        """The cached base model (``LlamaForCausalLM``, eval mode), built if needed."""
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(self.base_model_path()).eval()

    def base_properties(self) -> dict:
        """The measured properties written next to the cached base model (properties.json)."""
        path = self.base_model_path()
        return read_verified_json(path, "properties.json", f"delete {path} to rebuild it")

    @torch.no_grad()
    def _measure(self, model) -> dict:
        """Exact refusal/compliance masses of a model on the heldout safety prompts."""
        ex = self.exact_safety(model, self.dataset("safety", "heldout"))
        return {k: v for k, v in ex.items() if k.startswith("frpo/")}
