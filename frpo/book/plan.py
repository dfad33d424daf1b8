"""What a notebook would launch and need: the lines a dry run prints for it.

``describe(notebook, params)`` lists the resolved parameters, then:

- for a parameter whose value is a run spec (a mapping with ``stage: rl | sft | eval | bench``,
  or a list holding some), one ``launch[<param>]: accelerate launch ...`` line per spec
  (:func:`frpo.stages.launch.plan`, which writes the spec file the command names,
  ``runs/<profile>/specs/<run>.json``, so a printed line runs as it stands; the spec is parsed
  by ``from_dict``, so an unknown stage or field is an error; ``n_gpus`` comes from the
  notebook's parameters, default 8);
- for the shared *stage-1 block* (``world``, ``stage1``, ``betas`` and ``seeds`` or
  ``sweep_seeds``, optionally ``methods``) that most notebooks build their stage-1 runs from
  (:func:`frpo.recipes.stage1_spec`), one ``launch[stage1]`` line per method and seed;
- after each launch line, an ``identity:`` line (:func:`frpo.stages.identity.planned_identity`):
  the digest of the code that shapes the run and its base model's checksum, or ``pending (...)``
  where that is not known without building or downloading (a toy base model not pretrained yet,
  a hub model not in the cache);
- ``needs:`` lines for what the notebook needs from the machine (:mod:`frpo.book.needs`).

The downstream runs a notebook derives from its stage-1 models are printed by the notebook itself
when it runs.
"""

from __future__ import annotations

from typing import Any


def stage_specs(value: Any) -> list[dict[str, Any]]:
    """The stage specs inside one parameter value (a spec, or a list holding specs)."""
    if isinstance(value, dict) and "stage" in value:
        return [value]
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, dict) and "stage" in v]
    return []


def stage1_block_specs(params: dict[str, Any]) -> list:
    """The stage-1 run specs a notebook builds from its stage-1 block, or [].

    Methods: ``params["methods"]`` when given, else every key of ``betas``; seeds: ``seeds``, else
    ``sweep_seeds``, else [0]. Parsing errors (unknown method key, bad field) propagate.
    """
    if not all(key in params for key in ("world", "stage1", "betas")):
        return []
    from frpo.recipes import stage1_spec

    betas = params["betas"]
    methods = params.get("methods") or list(betas)
    seeds = params.get("seeds") or params.get("sweep_seeds") or [0]
    return [
        stage1_spec(m, int(s), params["world"], params["stage1"], betas)
        for m in methods
        for s in seeds
    ]


def launch_lines(label: str, spec, params: dict[str, Any]) -> list[str]:
    """``launch[<label>]: <command>`` and ``identity: ...`` for one run spec."""
    from frpo.stages.identity import planned_identity
    from frpo.stages.launch import plan

    profile = str(params.get("profile", "paper"))
    command = plan(spec, profile=profile, n_gpus=int(params.get("n_gpus", 8)))["command"]
    return [f"launch[{label}]: {command}", f"identity: {planned_identity(spec)}"]


def describe(notebook: str, params: dict[str, Any]) -> list[str]:
    """Lines a dry run prints for ``notebook`` run with ``params`` (already resolved)."""
    from frpo.book.needs import describe_needs
    from frpo.stages.spec import from_dict

    lines = [f"{key} = {params[key]!r}" for key in sorted(params)]
    for key in sorted(params):
        for spec in stage_specs(params[key]):
            lines += launch_lines(key, from_dict(spec), params)
    for spec in stage1_block_specs(params):
        lines += launch_lines("stage1", spec, params)
    return lines + describe_needs(notebook, params)
