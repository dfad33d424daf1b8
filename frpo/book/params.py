"""Profile parameters checked before anything runs: types, ranges and the run specs they build.

``check_params(notebook, params, declared)`` returns one line per problem, each naming the
parameter's path in the profile and what was expected, e.g.
``03_rlhf_safety.stage1.max_steps: RLSpec.max_steps must be a whole number, got 3.5 (float)``.
``load_profile`` calls it for every notebook, so ``frpo book run --dry-run`` and every execution
refuse a bad value before a kernel starts.

A parameter name means the same in every notebook (a value several notebooks take is written
once, in the profile's ``shared`` section, and checked there with the path ``shared.<name>``),
so the rules are keyed by name:

- *spec blocks* (``world``, ``stage1``, ``rl``, ``track``, ``evaluation``, ...) are checked by
  building the run-spec dataclass they fill (:mod:`frpo.stages.spec`), so a rule lives in one
  place; an error's field is mapped back to the parameter (``stage1.max_steps``);
- *tables*: ``betas``/``math_betas`` (method key -> KL coefficient), ``sft`` (dataset -> SFT
  block);
- *values* with a range (:data:`VALUES`): seeds, counts, positive numbers, lists of them;
- *cross rules*: every method a notebook trains (``lams``, ``methods``, ``lam_main``, ``lam``,
  ``replay.methods``, ``budget.methods``) has a beta, and ``dataset``/``high_lr.dataset`` name an
  entry of ``sft``;
- any other parameter keeps the type of the notebook's default (element by element, and the
  keys of a mapping).
"""

from __future__ import annotations

import ast
import difflib
import math
from collections.abc import Callable
from typing import Any

Problem = list[str]


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _value_rule(test: Callable[[Any], bool], words: str):
    def rule(path: str, value: Any) -> Problem:
        return [] if test(value) else [f"{path}: must be {words}, got {value!r}"]

    return rule


def _list_rule(test: Callable[[Any], bool], words: str, allow_empty: bool = False):
    def rule(path: str, value: Any) -> Problem:
        if not isinstance(value, list | tuple) or (not value and not allow_empty):
            return [f"{path}: must be a non-empty list of {words}, got {value!r}"]
        return [f"{path}[{i}]: must be {words}, got {v!r}" for i, v in enumerate(value)
                if not test(v)]  # fmt: skip

    return rule


_COUNT = (lambda v: _is_int(v) and v > 0, "a whole number > 0")
_SEED = (lambda v: _is_int(v) and v >= 0, "a whole number >= 0")
_POSITIVE = (lambda v: _is_number(v) and v > 0, "a finite number > 0")
_NON_NEGATIVE = (lambda v: _is_number(v) and v >= 0, "a finite number >= 0")
_NUMBER = (_is_number, "a finite number")
_PROBABILITY = (lambda v: _is_number(v) and 0 <= v <= 1, "a number in [0, 1]")
_GROUP_SIZE = (lambda v: _is_int(v) and v >= 2, "a whole number >= 2")

VALUES: dict[str, Callable[[str, Any], Problem]] = {
    **{n: _value_rule(*_COUNT) for n in (
        "n_checks", "n_outcomes", "n_rho", "n_prompts", "n_answers", "dim", "finetune_steps",
        "search_max_tries", "tail", "smooth", "n_threads", "n_settings", "lam_group",
        "fit_min_group", "n_gpus")},
    **{n: _value_rule(*_SEED) for n in ("seed", "settings_seed")},
    **{n: _value_rule(*_POSITIVE) for n in (
        "finetune_lr", "target_kl", "search_rtol", "kl_threshold", "lam_main", "lam", "fit_lam",
        "check_lam", "sam_rho")},
    **{n: _value_rule(*_NON_NEGATIVE) for n in ("beta", "min_gap")},
    **{n: _list_rule(*_SEED) for n in ("seeds", "main_seeds", "sweep_seeds", "loglinear_seeds")},
    **{n: _list_rule(*_POSITIVE) for n in (
        "lams", "metric_lams", "check_rhos", "tilt_lams", "reward_stds", "loglinear_lams",
        "kl_levels", "worst_case_rhos", "bias_lams", "lam_grid", "limit_lams", "search_start")},
    "bias_group_sizes": _list_rule(*_GROUP_SIZE),
    "bias_values": _list_rule(*_NUMBER),
    "bias_probs": _list_rule(*_PROBABILITY),
    "n_mc": _value_rule(lambda v: v is None or _COUNT[0](v), "null or a whole number > 0"),
    "methods": _list_rule(lambda v: isinstance(v, str), "a method key", allow_empty=True),
    "search_betas": _value_rule(lambda v: isinstance(v, bool), "true or false"),
    "dataset": _value_rule(lambda v: isinstance(v, str), "a dataset name"),
}  # fmt: skip

RECORDS: dict[str, dict[str, Callable[[str, Any], Problem]]] = {
    "high_lr": {
        "dataset": _value_rule(lambda v: isinstance(v, str), "a dataset name"),
        "lr": _value_rule(*_POSITIVE),
        "n_seeds": _value_rule(*_COUNT),
    },
    "replay": {
        "share": _value_rule(lambda v: _is_number(v) and 0 < v < 1, "a number in (0, 1)"),
        "methods": _list_rule(lambda v: isinstance(v, str), "a method key"),
    },
    "budget": {
        "scales": _list_rule(*_POSITIVE),
        "methods": _list_rule(lambda v: isinstance(v, str), "a method key"),
        "seeds": _list_rule(*_SEED),
    },
    "lrs": {"full": _list_rule(*_POSITIVE), "lora": _list_rule(*_POSITIVE)},
}
"""Mappings with fixed keys: each key's rule (a missing or unknown key is a problem)."""


# ----------------------------------------------------------------------------- spec blocks


def _spec_problem(path: str, block: dict, build: Callable[[], Any]) -> Problem:
    """Build a spec; a SpecError becomes ``<path>.<field>: <message>``."""
    from frpo.stages.spec import SpecError

    try:
        build()
    except SpecError as err:
        where = f"{path}.{err.field}" if err.field in block else path
        return [f"{where}: {err}"]
    except (TypeError, ValueError) as err:
        return [f"{path}: {err}"]
    return []


def _mapping(path: str, value: Any) -> Problem:
    return [] if isinstance(value, dict) else [f"{path}: must be a mapping, got {value!r}"]


def _spec_block(kind: str):
    def rule(path: str, value: Any) -> Problem:
        from frpo.recipes import make_source
        from frpo.stages.spec import EvalSpec, RLSpec, SFTSpec, Track

        builders = {"rl": RLSpec, "sft": SFTSpec, "eval": EvalSpec, "track": Track}
        if _mapping(path, value):
            return _mapping(path, value)
        if kind == "source":
            return _spec_problem(path, value, lambda: make_source(value))
        return _spec_problem(path, value, lambda: builders[kind](**value))

    return rule


def _betas(path: str, value: Any) -> Problem:
    from frpo.recipes import parse_method
    from frpo.stages.spec import RLSpec

    if _mapping(path, value):
        return _mapping(path, value)
    out = []
    for key, beta in value.items():
        try:
            parse_method(str(key))
        except ValueError as err:
            out.append(f"{path}.{key}: {err}")
            continue
        out += _spec_problem(f"{path}.{key}", {}, lambda b=beta: RLSpec(beta=b))
    return out


def _sft_table(path: str, value: Any) -> Problem:
    from frpo.stages.spec import SFTSpec

    if _mapping(path, value):
        return _mapping(path, value)
    out = []
    for dataset, block in value.items():
        where = f"{path}.{dataset}"
        if _mapping(where, block):
            out += _mapping(where, block)
            continue
        fields = {"dataset": dataset, **block}
        out += _spec_problem(where, block, lambda f=fields: SFTSpec(**f))
    return out


BLOCKS: dict[str, Callable[[str, Any], Problem]] = {
    "world": _spec_block("source"),
    **{n: _spec_block("rl") for n in ("stage1", "math_stage1", "rl")},
    "code_sft": _spec_block("sft"),
    "track": _spec_block("track"),
    **{n: _spec_block("eval") for n in ("evaluation", "helpfulness", "bound")},
    "betas": _betas,
    "math_betas": _betas,
    "sft": _sft_table,
}
"""Parameters checked by the run-spec dataclasses they fill (or tables of them)."""


# ----------------------------------------------------------------------------- records, types


def _record(path: str, value: Any, rules: dict) -> Problem:
    if _mapping(path, value):
        return _mapping(path, value)
    out = [f"{path}: unknown key {k!r}{_closest(k, rules)}" for k in value if k not in rules]
    for key, rule in rules.items():
        if key not in value:
            out.append(f"{path}: missing key {key!r}")
        else:
            out += rule(f"{path}.{key}", value[key])
    return out


def _closest(word: Any, names) -> str:
    hits = difflib.get_close_matches(str(word), list(names), n=1, cutoff=0.5)
    return f" (did you mean {hits[0]!r}?)" if hits else ""


def _kind(x: Any) -> str:
    if isinstance(x, bool):
        return "true or false"
    if isinstance(x, int | float):
        return "a number"
    return {str: "a string", list: "a list", tuple: "a list", dict: "a mapping"}.get(
        type(x), type(x).__name__
    )


def like_default(path: str, value: Any, default: Any) -> Problem:
    """``value`` has the type of the notebook's default: numbers for numbers (bool is not one),
    lists element by element (against the default's first element), mappings key by key."""
    if default is None or value is None:
        return []
    if _kind(value) != _kind(default):
        return [f"{path}: must be {_kind(default)} like the notebook's default {default!r}, "
                f"got {value!r}"]  # fmt: skip
    if isinstance(value, list | tuple) and default:
        return [p for i, v in enumerate(value) for p in like_default(f"{path}[{i}]", v, default[0])]
    if isinstance(value, dict):
        out = []
        for key, v in value.items():
            if key in default:
                out += like_default(f"{path}.{key}", v, default[key])
        return out
    return []


# ----------------------------------------------------------------------------- cross rules


def _method_keys(params: dict) -> list[tuple[str, str]]:
    """(parameter path, method key) of every stage-1 method a notebook will train."""
    from frpo.recipes import method_key

    keys = [(f"lams[{i}]", method_key("frpo", lam)) for i, lam in enumerate(params.get("lams", []))
            if _POSITIVE[0](lam)]  # fmt: skip
    keys += [(f"methods[{i}]", m) for i, m in enumerate(params.get("methods") or [])]
    for name in ("lam_main", "lam"):
        if _POSITIVE[0](params.get(name)):
            keys.append((name, method_key("frpo", params[name])))
    for record in ("replay", "budget"):
        block = params.get(record)
        if isinstance(block, dict):
            keys += [(f"{record}.methods[{i}]", m) for i, m in enumerate(block.get("methods", []))]
    return keys


def cross_problems(notebook: str, params: dict) -> Problem:
    """Methods without a beta; ``dataset``/``high_lr.dataset`` without an ``sft`` entry."""
    from frpo.recipes import parse_method

    table_name = "betas" if "betas" in params else "math_betas"
    table = params.get(table_name)
    out = []
    if isinstance(table, dict):
        for path, key in _method_keys(params):
            base = str(key).replace("-nojk", "").replace("-nobase", "")
            try:
                parse_method(str(key))
            except ValueError as err:
                out.append(f"{notebook}.{path}: {err}")
                continue
            if key not in table and base not in table:
                out.append(f"{notebook}.{path}: no beta for method {key!r} in "
                           f"{table_name} {sorted(table)}")  # fmt: skip
    sft = params.get("sft")
    high_lr = params.get("high_lr") if isinstance(params.get("high_lr"), dict) else {}
    for path, name in (("dataset", params.get("dataset")), ("high_lr.dataset",
                                                            high_lr.get("dataset"))):  # fmt: skip
        if isinstance(sft, dict) and isinstance(name, str) and name not in sft:
            out.append(f"{notebook}.{path}: {name!r} has no entry in sft {sorted(sft)}")
    return out


# ----------------------------------------------------------------------------- entry point


def literal(source: str) -> Any:
    """A default's source text (``"toy"``, ``[0, 1]``) as its value; None if not a literal."""
    try:
        return ast.literal_eval(source)
    except (ValueError, SyntaxError):
        return None


def check_param(notebook: str, name: str, value: Any, default_src: str) -> Problem:
    """Problems of one parameter (its rule, else its notebook default's type)."""
    path = f"{notebook}.{name}"
    if name in BLOCKS:
        return BLOCKS[name](path, value)
    if name in RECORDS:
        return _record(path, value, RECORDS[name])
    if name in VALUES:
        return VALUES[name](path, value)
    return like_default(path, value, literal(default_src))


def check_params(
    notebook: str, params: dict, declared: dict[str, str], shared: dict | None = None
) -> Problem:
    """Every problem of a notebook's parameters ``params`` (its profile entry's), each naming
    its path ``<notebook>.<param>[.<field>]``; the cross rules read the values it will run with
    (its entry's over the ``shared`` values it takes, over its defaults)."""
    values = {name: literal(src) for name, src in declared.items()}
    values.update(shared or {})
    values.update(params)
    out = []
    for name, value in params.items():
        out += check_param(notebook, name, value, declared.get(name, ""))
    if not out:
        out += cross_problems(notebook, values)
    return out
