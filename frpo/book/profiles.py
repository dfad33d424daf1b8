"""Profiles: which notebooks a profile runs, with which parameters, in which order.

A profile is ``profiles/<name>.yaml``::

    description: one line on what this profile is for
    setup: package.module:function   # optional: called with the Profile before notebooks run
    notebooks:
      01_entropic_objective:          # notebooks/01_entropic_objective.ipynb
        params: {seed: 0, n_grid: 64} # overrides of the notebook's `parameters` cell
        depends_on: []                # notebooks that must run first (optional)

``profile`` and ``run_dir`` are injected by the runner and may not be set here. Every parameter
name is checked against the notebook's declared parameters (``papermill.inspect_notebook``): a typo
is an error naming the culprit and the closest declared name, never a silently ignored value.
"""

from __future__ import annotations

import ast
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from frpo.paths import repo_root

INJECTED = ("profile", "run_dir")
"""Parameters the runner sets itself; every notebook declares them, no profile sets them."""

_TOP_KEYS = ("description", "setup", "notebooks")
_ENTRY_KEYS = ("params", "depends_on")


@dataclass(frozen=True)
class NotebookSpec:
    """One notebook of a profile: its source file, parameter overrides and dependencies."""

    name: str
    path: Path
    params: dict[str, Any]
    depends_on: tuple[str, ...] = ()
    declared: dict[str, str] = field(default_factory=dict)
    """Declared parameter name -> default value as written in the `parameters` cell."""


@dataclass(frozen=True)
class Profile:
    """A validated profile; ``notebooks`` is in dependency (execution) order."""

    name: str
    path: Path
    description: str
    notebooks: dict[str, NotebookSpec]
    setup: str = ""
    """``module:function`` called with this profile before its notebooks execute (the
    rehearsal's stand-ins, :func:`frpo.rehearsal.setup`); "" for none."""

    def run_setup(self) -> None:
        """Call the profile's ``setup`` hook, if it has one."""
        if not self.setup:
            return
        import importlib

        module, _, name = self.setup.partition(":")
        getattr(importlib.import_module(module), name)(self)

    def select(self, only: list[str] | None = None) -> list[str]:
        """Names to run, in order: all, or those in ``only`` (``NN`` or full name) plus their
        upstream dependencies."""
        if not only:
            return list(self.notebooks)
        wanted: set[str] = set()
        stack = [match_notebook(tok, self.notebooks, self.name) for tok in only]
        while stack:
            name = stack.pop()
            if name not in wanted:
                wanted.add(name)
                stack.extend(self.notebooks[name].depends_on)
        return [n for n in self.notebooks if n in wanted]


def _closest(word: str, candidates) -> str:
    hits = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.5)
    return f" (did you mean {hits[0]!r}?)" if hits else ""


def match_notebook(token: str, names, profile: str) -> str:
    """The notebook a ``--only`` token names: its full name or its ``NN`` number prefix."""
    names = list(names)
    if token in names:
        return token
    by_number = [n for n in names if n.split("_", 1)[0] == token]
    if len(by_number) == 1:
        return by_number[0]
    raise ValueError(
        f"profile {profile!r} has no notebook {token!r}{_closest(token, names)}; "
        f"it has: {', '.join(names) or '(none)'}"
    )


def default_profiles_dir() -> Path:
    return repo_root() / "profiles"


def default_notebooks_dir() -> Path:
    return repo_root() / "notebooks"


def available_profiles(directory: Path | None = None) -> list[str]:
    """Names of the profile YAML files in ``directory`` (default ``profiles/``)."""
    directory = Path(directory) if directory else default_profiles_dir()
    return sorted(p.stem for p in directory.glob("*.yaml"))


def declared_parameters(path: Path) -> dict[str, str]:
    """Parameter name -> default source text of a notebook's cell tagged ``parameters``."""
    import papermill  # slow import; only when validating

    found = papermill.inspect_notebook(str(path))
    return {name: str(info.get("default", "")) for name, info in found.items()}


def _type_problem(name: str, value: Any, default_src: str) -> str | None:
    """A message if ``value`` cannot stand where the notebook's default literal stands."""
    try:
        default = ast.literal_eval(default_src)
    except (ValueError, SyntaxError):
        return None  # not a literal: nothing to compare against
    if default is None or value is None:
        return None
    kinds: tuple[type, ...]
    if isinstance(default, bool):
        kinds = (bool,)
    elif isinstance(default, int | float):
        kinds = (int, float)
    elif isinstance(default, list | tuple):
        kinds = (list, tuple)
    else:
        kinds = (type(default),)
    if isinstance(value, bool) and bool not in kinds:
        ok = False
    else:
        ok = isinstance(value, kinds)
    if ok:
        return None
    return (
        f"parameter {name!r} = {value!r} is a {type(value).__name__}, but the notebook's "
        f"default {default_src} is a {type(default).__name__}"
    )


def _toposort(entries: dict[str, tuple[str, ...]], profile: str) -> list[str]:
    """Dependency order, ties broken by name (so ``NN_`` prefixes run in number order)."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done

    def visit(name: str, chain: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = " -> ".join([*chain[chain.index(name) :], name])
            raise ValueError(f"profile {profile!r}: dependency cycle {cycle}")
        state[name] = 1
        for dep in sorted(entries[name]):
            visit(dep, [*chain, name])
        state[name] = 2
        order.append(name)

    for name in sorted(entries):
        visit(name, [])
    return order


def load_profile(
    name: str, *, profiles_dir: Path | None = None, notebooks_dir: Path | None = None
) -> Profile:
    """Read and validate ``<profiles_dir>/<name>.yaml`` against the notebooks it names.

    Raises ValueError naming every problem found: an unknown profile, an unknown key, a missing
    notebook file, a notebook of ``notebooks_dir`` (``NN_*.ipynb``) the profile leaves out, an
    undeclared parameter (with the closest declared name), a parameter the runner injects, a
    value of the wrong type, an unknown dependency or a dependency cycle.
    """
    pdir = Path(profiles_dir) if profiles_dir else default_profiles_dir()
    ndir = Path(notebooks_dir) if notebooks_dir else default_notebooks_dir()
    path = pdir / f"{name}.yaml"
    if not path.is_file():
        known = available_profiles(pdir)
        raise ValueError(
            f"unknown profile {name!r}{_closest(name, known)}; "
            f"available: {', '.join(known) or '(none)'} in {pdir}"
        )
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    problems: list[str] = []
    for key in raw:
        if key not in _TOP_KEYS:
            problems.append(f"unknown top-level key {key!r}{_closest(str(key), _TOP_KEYS)}")
    setup = str(raw.get("setup") or "")
    if setup and (":" not in setup or not all(setup.partition(":")[::2])):
        problems.append(f"setup {setup!r} must be 'package.module:function'")
    entries = raw.get("notebooks") or {}
    if not isinstance(entries, dict):
        raise ValueError(f"{path}: 'notebooks' must map notebook names to entries")

    specs: dict[str, NotebookSpec] = {}
    for nb, entry in entries.items():
        entry = entry or {}
        where = f"notebook {nb!r}"
        if not isinstance(entry, dict):
            problems.append(f"{where}: entry must be a mapping with 'params'/'depends_on'")
            continue
        for key in entry:
            if key not in _ENTRY_KEYS:
                problems.append(f"{where}: unknown key {key!r}{_closest(str(key), _ENTRY_KEYS)}")
        params = entry.get("params") or {}
        deps = entry.get("depends_on") or []
        if not isinstance(params, dict):
            problems.append(f"{where}: 'params' must be a mapping")
            params = {}
        if isinstance(deps, str) or not isinstance(deps, list):
            problems.append(f"{where}: 'depends_on' must be a list of notebook names")
            deps = []
        for dep in deps:
            if dep not in entries:
                problems.append(f"{where}: depends on unknown notebook {dep!r}")
        nb_path = ndir / f"{nb}.ipynb"
        if not nb_path.is_file():
            problems.append(f"{where}: no notebook file {nb_path}")
            declared: dict[str, str] = {}
        else:
            declared = declared_parameters(nb_path)
            missing = [p for p in INJECTED if p not in declared]
            if missing:
                problems.append(
                    f"{where}: its `parameters` cell must declare {', '.join(missing)} "
                    "(the runner injects them)"
                )
            for key, value in params.items():
                if key in INJECTED:
                    problems.append(f"{where}: {key!r} is set by the runner, not the profile")
                elif key not in declared:
                    hint = _closest(key, [d for d in declared if d not in INJECTED])
                    problems.append(f"{where}: unknown parameter {key!r}{hint}")
                else:
                    bad = _type_problem(key, value, declared[key])
                    if bad:
                        problems.append(f"{where}: {bad}")
        specs[nb] = NotebookSpec(nb, nb_path, dict(params), tuple(deps), declared)

    for nb_path in sorted(ndir.glob("[0-9]*.ipynb")):
        if nb_path.stem not in entries:
            problems.append(
                f"notebook {nb_path.stem!r} ({nb_path}) is not in this profile; "
                f"add an entry, even an empty one: `{nb_path.stem}: {{}}`"
            )
    if problems:
        listing = "\n  - ".join(problems)
        raise ValueError(f"profile {name!r} ({path}) is invalid:\n  - {listing}")
    order = _toposort({n: s.depends_on for n, s in specs.items()}, name)
    return Profile(
        name=name,
        path=path,
        description=str(raw.get("description", "")),
        notebooks={n: specs[n] for n in order},
        setup=setup,
    )
