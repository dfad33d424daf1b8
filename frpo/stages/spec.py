"""Run specifications: frozen dataclasses whose hash names a run's directory.

A spec holds everything that decides a run's result (method, lam, beta, seed, model source,
hyper-parameters, parent run). Two notebooks asking for the same spec get the same directory, so
the second one reuses the first one's run, and a killed sweep resumes where it stopped.

Specs nest: a downstream fine-tuning spec holds its stage-1 spec as ``parent`` (an evaluation
the run it evaluates as ``model``); the upstream's hash is part of the child's, so a changed
stage-1 run can never be mistaken for the old one.

:data:`STAGES` is the registry of the kinds of run: for each stage name (a spec's ``stage`` tag
and its runs' folder), the spec class, the field naming its upstream run, and the module whose
runner builds it and whose command line (``python -m <module> --spec file.json``) runs one spec.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from frpo.losses import reward_scaling_problem
from frpo.stages.fields import SpecError, check_field_types, non_negative, positive
from frpo.toyworld.config import SIZES, WorldConfig

METHODS = ("grpo", "frpo", "grpo_sam")
ADDED_LATER = "added_later"
"""Field metadata key: a field added after runs existed, left out of :func:`to_dict` (and so of
the hash) while it holds its default, so every spec written before it keeps its run directory."""
SCALE_REWARDS = ("none", "group", "batch")
SOURCE_KINDS = ("toy", "files", "hub")


@dataclass(frozen=True)
class Source:
    """Where the base model (pi_ref), tokenizer, datasets, rewards and judges come from."""

    kind: str = "toy"
    """``toy``: the offline ToyWorld; ``files``: a local model dir + local data files; ``hub``:
    real model ids and datasets through ``frpo.data`` (paper profile)."""
    seed: int = 0
    """ToyWorld seed (``toy`` only)."""
    size: str = "smoke"
    """ToyWorld recipe, ``smoke`` or ``toy`` (``toy`` only)."""
    model: str = ""
    """Local path or hub id of the base model (``files`` and ``hub``)."""
    data: tuple[tuple[str, str], ...] = ()
    """``(task, path-or-id)`` pairs for the datasets (``files`` and ``hub``)."""
    recipe: str = ""
    """The ToyWorld recipe hash (``toy`` only; filled in automatically), so that a changed world
    (new ``WORLD_VERSION`` or preset) gives new run directories instead of stale ones."""

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.kind not in SOURCE_KINDS:
            raise SpecError("kind", f"Source.kind {self.kind!r} unknown; expected one of "
                            f"{SOURCE_KINDS}")  # fmt: skip
        if self.kind != "toy" and not self.model:
            raise SpecError("model", f"Source.kind={self.kind!r} needs a model path or hub id")
        object.__setattr__(self, "data", tuple(tuple(p) for p in self.data))
        if self.kind == "toy":
            non_negative("seed", self.seed)
            object.__setattr__(self, "recipe", _toy_recipe(self))


def _toy_recipe(source: Source) -> str:
    if source.size not in SIZES:
        raise SpecError("size", f"Source.size {source.size!r} unknown; expected one of {SIZES}")
    current = WorldConfig(seed=source.seed, size=source.size).recipe_hash()
    if source.recipe and source.recipe != current:
        raise SpecError(
            "recipe",
            f"Source recipe {source.recipe} is not the current toy world's ({current}): the "
            "world changed since this spec was written",
        )
    return current


@dataclass(frozen=True)
class Track:
    """What a downstream run measures at fixed intervals (the reward-against-KL trajectory)."""

    every: int = 5
    """Measure every this many optimizer steps (and at step 0 and at the end)."""
    tasks: tuple[str, ...] = ("safety",)
    """Stage-1 tasks whose reward is tracked on held-out prompts."""
    n_prompts: int = 16
    """Fixed held-out prompts per task (the same at every measurement)."""
    max_new_tokens: int = 16
    """Sampled answer length for the reward and KL estimates."""
    seed: int = 1234
    """Sampling seed of every measurement (fixed, so the noise is common to all points)."""

    def __post_init__(self) -> None:
        check_field_types(self)
        object.__setattr__(self, "tasks", tuple(self.tasks))
        for name in ("every", "n_prompts", "max_new_tokens"):
            positive(name, getattr(self, name))


@dataclass(frozen=True)
class RLSpec:
    """One RL run: stage-1 RLHF (GRPO / FRPO / GRPO+SAM) or downstream RL (``parent`` set)."""

    source: Source = field(default_factory=Source)
    method: str = "grpo"
    """``grpo``, ``frpo`` (entropic objective, Eq. 3.5) or ``grpo_sam`` (Sec. 5.3)."""
    tasks: tuple[str, ...] = ("safety",)
    """Training tasks; rewards are those the source gives for each task."""
    lam: float = 1.0
    """FRPO temperature lam (``frpo`` only)."""
    baseline: bool = True
    """FRPO variance-reduction baseline, Eq. 4.2 (``frpo`` only)."""
    jackknife: bool = True
    """FRPO jackknife bias correction, Eq. 4.3 (``frpo`` only)."""
    sam_rho: float = 0.05
    """SAM ascent radius rho (``grpo_sam`` only)."""
    beta: float = 0.04
    """KL coefficient to the starting model (TRL's k3 penalty)."""
    scale_rewards: str = "none"
    """Advantage scaling (TRL's ``scale_rewards``): ``none`` centres each group's rewards and does
    not divide by their std, as the paper does for GRPO and FRPO alike (Sec. 2, App. C.1);
    ``group``/``batch`` is TRL's std scaling (GRPO and GRPO+SAM only)."""
    seed: int = 0
    lr: float = 2e-4
    epochs: float = 1.0
    max_steps: int = -1
    """If > 0, overrides ``epochs``."""
    n_prompts: int = 64
    """Training prompts (per task)."""
    num_generations: int = 8
    """Group size G."""
    batch_size: int = 32
    """Completions per optimizer step (a multiple of G)."""
    max_completion_length: int = 16
    temperature: float = 1.0
    lora_rank: int = 0
    """0 = full fine-tuning; > 0 = LoRA of this rank."""
    lora_alpha: int = 0
    """LoRA alpha (0 = same as the rank)."""
    n_eval: int = 32
    """Held-out prompts for the final KL-to-reference estimate."""
    parent: Any = None
    """The run whose model this one starts from (None = the source's base model)."""
    track: Track | None = None
    """Trajectory tracking (downstream runs)."""

    stage = "rl"

    def __post_init__(self) -> None:
        check_field_types(self)
        object.__setattr__(self, "tasks", tuple(self.tasks))
        _check_method(self)
        for name in ("lr", "n_prompts", "max_completion_length", "temperature", "n_eval"):
            positive(name, getattr(self, name))
        if self.beta < 0:
            raise SpecError("beta", f"beta must be finite and >= 0, got {self.beta}")
        if self.num_generations < 2:
            raise SpecError("num_generations", "num_generations must be >= 2 (a group needs two "
                            f"completions to compare), got {self.num_generations}")  # fmt: skip
        if self.batch_size <= 0 or self.batch_size % self.num_generations:
            raise SpecError("batch_size", f"batch_size {self.batch_size} is not a positive "
                            f"multiple of num_generations {self.num_generations}")  # fmt: skip
        _common_checks(self)


@dataclass(frozen=True)
class SFTSpec:
    """Downstream supervised fine-tuning (TRL SFTTrainer) of a parent run's model."""

    source: Source = field(default_factory=Source)
    dataset: str = "alpaca"
    """Task name of the SFT data (``messages`` format)."""
    parent: Any = None
    lr: float = 1e-4
    epochs: float = 1.0
    max_steps: int = -1
    n_examples: int = 64
    batch_size: int = 8
    max_length: int = 64
    lora_rank: int = 0
    """0 = full fine-tuning; > 0 = LoRA of this rank."""
    lora_alpha: int = 0
    full: bool = True
    """Full fine-tuning; a LoRA rank with ``full=True`` is rejected as contradictory."""
    replay_share: float = 0.0
    """App. B.4: share of the SFT set replaced by the parent's own sampled answers to stage-1
    prompts (0 = no replay)."""
    replay_tasks: tuple[str, ...] = ("safety",)
    """Stage-1 tasks whose training prompts are replayed."""
    replay_max_new_tokens: int = 16
    """Length of the replayed sampled answers."""
    mix: tuple[tuple[str, float], ...] = field(default=(), metadata={ADDED_LATER: True})
    """Other SFT tasks mixed into the set, ``(task, share)`` pairs: each adds training examples
    of its task so that they are ``share`` of the mixed set (the mixed fine-tuning attack:
    Alpaca with 1% or 10% harmful -> compliant pairs). Empty = ``dataset`` alone."""
    seed: int = 0
    track: Track | None = None

    stage = "sft"

    def __post_init__(self) -> None:
        check_field_types(self)
        object.__setattr__(self, "replay_tasks", tuple(self.replay_tasks))
        object.__setattr__(self, "mix", tuple((str(t), float(s)) for t, s in self.mix))
        for name in ("lr", "n_examples", "batch_size", "max_length", "replay_max_new_tokens"):
            positive(name, getattr(self, name))
        if self.full and self.lora_rank:
            raise SpecError("lora_rank", f"lora_rank={self.lora_rank} given for a full "
                            "fine-tuning run (full=True); set full=False for LoRA")  # fmt: skip
        if not self.full and self.lora_rank <= 0:
            raise SpecError("lora_rank", "full=False (LoRA) needs lora_rank > 0")
        if not 0.0 <= self.replay_share < 1.0:
            raise SpecError("replay_share", f"replay_share must be in [0, 1), got "
                            f"{self.replay_share}")  # fmt: skip
        for task, share in self.mix:
            if not 0.0 < share < 1.0:
                raise SpecError("mix", f"mix share of {task!r} must be in (0, 1), got {share}")
        if self.replay_share + sum(s for _, s in self.mix) >= 1.0:
            raise SpecError(
                "mix",
                f"replay_share + mix shares must be < 1, got {self.replay_share} + "
                f"{sum(s for _, s in self.mix)}",
            )
        _common_checks(self)


@dataclass(frozen=True)
class EvalSpec:
    """Evaluation of one model on fixed held-out prompt sets."""

    source: Source = field(default_factory=Source)
    model: Any = None
    """The run to evaluate (None = the source's base model)."""
    tasks: tuple[str, ...] = ("safety",)
    n_prompts: int = 32
    """Held-out prompts per task, the first ``n_prompts`` of the test split (never resampled)."""
    max_new_tokens: int = 16
    n_samples: int = 1
    """Sampled answers per prompt for the sampled metrics."""
    seed: int = 0

    stage = "eval"

    def __post_init__(self) -> None:
        check_field_types(self)
        object.__setattr__(self, "tasks", tuple(self.tasks))
        for name in ("n_prompts", "n_samples", "max_new_tokens"):
            positive(name, getattr(self, name))
        non_negative("seed", self.seed)
        if self.model is not None and not isinstance(self.model, RLSpec | SFTSpec):
            raise SpecError("model", f"EvalSpec.model must be an RLSpec or SFTSpec, got "
                            f"{self.model!r}")  # fmt: skip


# ----------------------------------------------------------------------------- validation


def _check_method(spec: RLSpec) -> None:
    if spec.method not in METHODS:
        raise SpecError("method", f"unknown method {spec.method!r}; expected one of {METHODS}")
    if spec.method == "frpo":
        positive("lam", spec.lam)
    if spec.method == "grpo_sam":
        positive("sam_rho", spec.sam_rho)
    if spec.scale_rewards not in SCALE_REWARDS:
        raise SpecError("scale_rewards", f"unknown scale_rewards {spec.scale_rewards!r}; "
                        f"expected one of {SCALE_REWARDS}")  # fmt: skip
    if spec.method == "frpo":
        problem = reward_scaling_problem(spec.scale_rewards)
        if problem:
            raise SpecError("scale_rewards", problem)


@dataclass(frozen=True)
class BenchSpec:
    """The paper's benchmarks on one model (:mod:`frpo.stages.benchmarks`; ``hub`` sources)."""

    source: Source = field(default_factory=Source)
    model: Any = None
    """The run to evaluate (None = the source's base model)."""
    lm_eval: tuple[str, ...] = ()
    """lm-eval benchmarks (:data:`frpo.harness.lmeval.BENCHMARKS`: math500, mmlu, ifeval,
    humaneval, gsm8k_maj8)."""
    evalplus: tuple[str, ...] = ()
    """EvalPlus datasets (mbpp, humaneval)."""
    safety: tuple[str, ...] = ()
    """Safety prompt sets judged here: harmbench (HarmBench classifier), strongreject
    (StrongREJECT fine-tuned grader)."""
    max_new_tokens: int = 512
    """Greedy answer length on the safety prompt sets (HarmBench's default)."""
    max_gen_toks: int = 2048
    """lm-eval's generation length (the default of tasks that set none; on lm-eval's hf
    backend, every task's cap)."""
    limit: int = 0
    """0: every item; > 0: the first ``limit`` items of each benchmark and prompt set (a smaller
    run, e.g. the CPU rehearsal; lm-eval's ``--limit``)."""
    data: tuple[tuple[str, str], ...] = ()
    """``(name, path-or-URL)`` of the benchmark data that are files: ``harmbench`` (HarmBench's
    behaviours CSV), ``strongreject`` (StrongREJECT's CSV), ``mbpp_plus`` /
    ``humaneval_plus`` (EvalPlus's released ``.jsonl``, else EvalPlus downloads it)."""

    stage = "bench"

    def __post_init__(self) -> None:
        for name in ("lm_eval", "evalplus", "safety"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        data = self.data.items() if isinstance(self.data, dict) else self.data
        object.__setattr__(self, "data", tuple(sorted((str(k), str(v)) for k, v in data)))
        if not (self.lm_eval or self.evalplus or self.safety):
            raise ValueError("BenchSpec needs at least one of lm_eval, evalplus, safety")
        positive("max_new_tokens", self.max_new_tokens)
        positive("max_gen_toks", self.max_gen_toks)
        if self.limit < 0:
            raise ValueError(f"limit must be >= 0, got {self.limit}")
        if self.model is not None and not isinstance(self.model, RLSpec | SFTSpec):
            raise ValueError(f"BenchSpec.model must be an RLSpec or SFTSpec, got {self.model!r}")


def _common_checks(spec: RLSpec | SFTSpec) -> None:
    if spec.lora_rank < 0:
        raise SpecError("lora_rank", f"lora_rank must be >= 0, got {spec.lora_rank}")
    if spec.lora_alpha < 0:
        raise SpecError("lora_alpha", f"lora_alpha must be >= 0, got {spec.lora_alpha}")
    non_negative("seed", spec.seed)
    if spec.max_steps <= 0:
        positive("epochs", spec.epochs)
    if spec.parent is not None and not isinstance(spec.parent, RLSpec | SFTSpec):
        raise SpecError("parent", "parent must be an RLSpec or SFTSpec, got "
                        f"{type(spec.parent).__name__}")  # fmt: skip
    if spec.parent is not None and spec.parent.source != spec.source:
        raise SpecError("parent", "a run and its parent must share the same source")


# ----------------------------------------------------------------------------- the stages


@dataclass(frozen=True)
class Stage:
    """One kind of run: the spec it takes, the run it reads a model from, the module running it."""

    spec: type
    upstream: str
    """The spec field naming the run whose saved model this one reads: ``parent`` (it starts
    from it) or ``model`` (it evaluates it); None there means the source's base model."""
    module: str
    """The module whose runner builds the run and whose command line runs one spec file."""
    runner: str
    """The runner's name in ``module``: ``runner(spec, profile) -> Path``."""

    @property
    def name(self) -> str:
        """The spec's ``stage`` tag, and the folder of its runs (``runs/<profile>/<name>/``)."""
        return self.spec.stage


STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage(RLSpec, "parent", "frpo.stages.rlhf", "run_rl"),
        Stage(SFTSpec, "parent", "frpo.stages.sft", "run_sft"),
        Stage(EvalSpec, "model", "frpo.stages.evaluate", "run_eval"),
        Stage(BenchSpec, "model", "frpo.stages.benchmarks", "run_bench"),
    )
}


def stage_of(spec: Any) -> Stage:
    """The :class:`Stage` of a run spec (ValueError for anything else)."""
    stage = STAGES.get(getattr(type(spec), "stage", None))
    if stage is None or not isinstance(spec, stage.spec):
        raise ValueError(f"not a run spec: {type(spec).__name__}")
    return stage


def upstream_of(spec: Any):
    """The run whose saved model ``spec``'s run reads (its ``parent`` or ``model``), or None
    when it reads the source's base model (pi_ref)."""
    return getattr(spec, stage_of(spec).upstream)


def to_dict(spec: Any) -> Any:
    """A JSON-ready dict with ``stage`` tags on every nested spec (fields marked
    :data:`ADDED_LATER` are left out while they hold their default)."""
    if dataclasses.is_dataclass(spec):
        out = {
            f.name: to_dict(getattr(spec, f.name))
            for f in dataclasses.fields(spec)
            if not (f.metadata.get(ADDED_LATER) and getattr(spec, f.name) == f.default)
        }
        if hasattr(type(spec), "stage"):
            out = {"stage": type(spec).stage, **out}
        return out
    if isinstance(spec, tuple | list):
        return [to_dict(v) for v in spec]
    return spec


def from_dict(d: dict) -> RLSpec | SFTSpec | EvalSpec | BenchSpec:
    """Inverse of :func:`to_dict` (unknown keys raise ValueError)."""
    d = dict(d)
    stage = d.pop("stage", None)
    if stage not in STAGES:
        raise SpecError("stage", f"unknown stage {stage!r}; expected one of {sorted(STAGES)}")
    cls = STAGES[stage].spec
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise SpecError(min(unknown), f"{cls.__name__}: unknown field(s) {sorted(unknown)}")
    if isinstance(d.get("data"), list):
        d["data"] = tuple(tuple(p) for p in d["data"])
    if "source" in d:
        src = dict(d["source"])
        src["data"] = tuple(tuple(p) for p in src.get("data", ()))
        d["source"] = Source(**src)
    for key in ("parent", "model"):
        if isinstance(d.get(key), dict):
            d[key] = from_dict(d[key])
    if isinstance(d.get("track"), dict):
        d["track"] = Track(**d["track"])
    return cls(**d)


def spec_json(spec: Any) -> str:
    """Canonical JSON (sorted keys, no spaces): the text that is hashed."""
    return json.dumps(to_dict(spec), sort_keys=True, separators=(",", ":"))


def spec_hash(spec: Any) -> str:
    """First 12 hex digits of the SHA-256 of :func:`spec_json`."""
    return hashlib.sha256(spec_json(spec).encode()).hexdigest()[:12]


def run_name(spec: RLSpec | SFTSpec | EvalSpec | BenchSpec) -> str:
    """Readable prefix + hash, e.g. ``rl-frpo-lam0.5-beta0.04-s0-<hash>``."""
    if isinstance(spec, RLSpec):
        bits = ["rl", spec.method]
        if spec.method == "frpo":
            bits.append(f"lam{spec.lam:g}")
            if not spec.baseline:
                bits.append("nobase")
            if not spec.jackknife:
                bits.append("nojk")
        if spec.method == "grpo_sam":
            bits.append(f"rho{spec.sam_rho:g}")
        bits += [f"beta{spec.beta:g}", "-".join(spec.tasks)]
    elif isinstance(spec, SFTSpec):
        bits = ["sft", spec.dataset, f"lr{spec.lr:g}"]
        if spec.lora_rank:
            bits.append(f"r{spec.lora_rank}")
        if spec.replay_share:
            bits.append(f"replay{spec.replay_share:g}")
        bits += [f"mix-{task}{share:g}" for task, share in spec.mix]
    elif isinstance(spec, BenchSpec):
        return "-".join(["bench", *spec.lm_eval, *spec.evalplus, *spec.safety, spec_hash(spec)])
    else:
        bits = ["eval", "-".join(spec.tasks)]
    bits += [f"s{spec.seed}", spec_hash(spec)]
    return "-".join(bits)
