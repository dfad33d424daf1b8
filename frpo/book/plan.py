"""What a notebook would launch: the lines a dry run prints for it.

``describe(notebook, params)`` lists the resolved parameters. A parameter whose value is a *stage
spec* (a mapping with a ``stage`` key, or a list of them) is also handed to that stage's launcher,
which returns the command lines the notebook would run (``accelerate launch ...`` at paper scale).
A launcher is found, in this order: in the registry (``register_launcher``); for the run specs of
``frpo.stages.spec`` (``stage`` in ``rl``, ``sft``, ``eval``, ``bench``),
``frpo.stages.launch.plan``, which writes the spec file the command names
(``runs/<profile>/specs/<run>.json``) so that a printed line runs as it stands (the spec is
parsed by ``from_dict``, so an unknown field is an error; ``n_gpus`` comes from the notebook's
parameters, default 8); else the function ``launch_command(spec)`` of the module
``frpo.stages.<stage>``. A stage spec that names no known launcher is an error, so the paper
profile's dry run cannot hide a typo.

Most notebooks do not take specs but the shared *stage-1 block* (``world``, ``stage1``, ``betas``
and ``seeds`` or ``sweep_seeds``, optionally ``methods``) and build their stage-1 runs with
:func:`frpo.recipes.stage1_spec`; ``describe`` builds the same specs and prints one
``launch[stage1]`` line per method and seed, so a bad block fails the dry run too. (The downstream
runs a notebook derives from them are printed by the notebook itself when it runs.)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

Launcher = Callable[[dict[str, Any]], "str | list[str]"]
_LAUNCHERS: dict[str, Launcher] = {}


def register_launcher(stage: str, launcher: Launcher) -> None:
    """Make ``launcher(spec)`` the source of launch commands for stage specs ``{stage: ...}``."""
    if not stage or not isinstance(stage, str):
        raise ValueError(f"stage name must be a non-empty string, got {stage!r}")
    _LAUNCHERS[stage] = launcher


def _run_spec_launcher(stage: str, params: dict[str, Any]) -> Launcher | None:
    """``frpo.stages.launch.launch_command`` for the run specs of ``frpo.stages.spec``."""
    try:
        from frpo.stages.launch import plan
        from frpo.stages.spec import STAGES, from_dict
    except ImportError:
        return None
    if stage not in STAGES:
        return None
    profile = str(params.get("profile", "paper"))
    n_gpus = int(params.get("n_gpus", 8))

    def launcher(spec: dict[str, Any]) -> str:
        # writes runs/<profile>/specs/<run>.json, so the printed command runs as it stands
        return plan(from_dict(spec), profile=profile, n_gpus=n_gpus)["command"]

    return launcher


def find_launcher(stage: str, params: dict[str, Any] | None = None) -> Launcher:
    """The launcher for ``stage`` (see the module docstring for the search order); ``params``
    are the notebook's resolved parameters (``profile``, ``n_gpus``)."""
    if stage in _LAUNCHERS:
        return _LAUNCHERS[stage]
    run_spec = _run_spec_launcher(stage, params or {})
    if run_spec is not None:
        return run_spec
    module_name = f"frpo.stages.{stage}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and module_name.startswith(err.name):
            known = ", ".join(sorted(_LAUNCHERS)) or "none registered"
            raise ValueError(
                f"stage spec names unknown stage {stage!r}: no launcher registered ({known}) "
                f"and no module {module_name}"
            ) from err
        raise
    launcher = getattr(module, "launch_command", None)
    if not callable(launcher):
        raise ValueError(f"stage {stage!r}: module {module_name} has no launch_command(spec)")
    return launcher


def stage_specs(value: Any) -> list[dict[str, Any]]:
    """The stage specs inside one parameter value (a spec, or a list holding specs)."""
    if isinstance(value, dict) and "stage" in value:
        return [value]
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, dict) and "stage" in v]
    return []


def stage1_block_specs(params: dict[str, Any]) -> list[dict[str, Any]]:
    """The stage-1 run specs (as dicts) a notebook builds from its stage-1 block, or [].

    Methods: ``params["methods"]`` when given, else every key of ``betas``; seeds: ``seeds``, else
    ``sweep_seeds``, else [0]. Parsing errors (unknown method key, bad field) propagate.
    """
    if not all(key in params for key in ("world", "stage1", "betas")):
        return []
    from frpo.recipes import stage1_spec
    from frpo.stages.spec import to_dict

    betas = params["betas"]
    methods = params.get("methods") or list(betas)
    seeds = params.get("seeds") or params.get("sweep_seeds") or [0]
    return [
        to_dict(stage1_spec(m, int(s), params["world"], params["stage1"], betas))
        for m in methods
        for s in seeds
    ]


def describe(notebook: str, params: dict[str, Any]) -> list[str]:
    """Lines a dry run prints for ``notebook`` run with ``params`` (already resolved).

    One ``name = value`` line per parameter, then for every stage spec among the values one
    ``launch[<param>]: <command>`` line per command its launcher returns.
    """
    lines = [f"{key} = {params[key]!r}" for key in sorted(params)]
    for key in sorted(params):
        for spec in stage_specs(params[key]):
            stage = spec["stage"]
            commands = find_launcher(stage, params)(dict(spec))
            if isinstance(commands, str):
                commands = [commands]
            if not commands:
                raise ValueError(f"{notebook}: launcher for stage {stage!r} returned no command")
            lines.extend(f"launch[{key}]: {cmd}" for cmd in commands)
    for spec in stage1_block_specs(params):
        lines.append(f"launch[stage1]: {find_launcher(spec['stage'], params)(spec)}")
    return lines
