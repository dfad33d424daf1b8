"""Profiles: which notebooks a profile runs, with which parameters, in which order.

A profile is ``profiles/<name>.yaml``::

    description: one line on what this profile is for
    setup: package.module:function   # optional: called with the Profile before notebooks run
    shared:                           # optional: values several notebooks take
      world: {kind: toy, size: toy, seed: 0}
    notebooks:
      01_entropic_objective:          # notebooks/01_entropic_objective.ipynb
        params: {seed: 0, n_grid: 64} # overrides of the notebook's `parameters` cell
        depends_on: []                # notebooks that must run first (optional)

``profile`` and ``run_dir`` are injected by the runner and may not be set here. Every parameter
name is checked against the notebook's declared parameters (``papermill.inspect_notebook``): a typo
is an error naming the culprit and the closest declared name, never a silently ignored value.

Shared values. A notebook takes a value from the ``shared`` section by declaring the parameter
with a profile's name as its default, a *named default* (``world = "toy"``): executed for
profile P it gets P's ``shared`` value of that parameter (unless its entry sets it; a profile
without one gets the default, the named profile's value), and run alone (plain papermill) it
resolves the name itself with :func:`shared_values`, to the named profile's value. So a value
that several notebooks must agree on (the stage-1 block whose runs they reuse, the SFT and
tracking blocks) is written once, in the profile, and in no notebook; a notebook's own settings
keep literal defaults.
"""

from __future__ import annotations

import copy
import difflib
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from frpo.paths import PROFILE_NAME, repo_root

INJECTED = ("profile", "run_dir")
"""Parameters the runner sets itself; every notebook declares them, no profile sets them."""
SHARED = "shared"
"""The profile's section of values several notebooks take (see the module docstring)."""

_TOP_KEYS = ("description", "setup", "gpu", "shared", "notebooks")
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
    shared: tuple[str, ...] = ()
    """The parameters whose value (in ``params``) is a shared one: the profile's ``shared``
    section's, or (a profile without it) the named default's."""


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
    gpu: bool = True
    """Whether the profile's ``hub`` worlds need a CUDA GPU (``gpu: false``: the rehearsal, the
    paper's code path on CPU; :func:`frpo.book.needs.unmet`)."""

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
    """Names of the profile YAML files in ``directory`` (default ``profiles/``) that are valid
    profile names (letters, digits, ``-``, ``_``)."""
    directory = Path(directory) if directory else default_profiles_dir()
    return sorted(p.stem for p in directory.glob("*.yaml") if PROFILE_NAME.fullmatch(p.stem))


def declared_parameters(path: Path) -> dict[str, str]:
    """Parameter name -> default source text of a notebook's cell tagged ``parameters``."""
    import papermill  # slow import; only when validating

    found = papermill.inspect_notebook(str(path))
    return {name: str(info.get("default", "")) for name, info in found.items()}


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


def check_profile_name(name: str, directory: Path) -> Path:
    """``<directory>/<name>.yaml`` of a profile that exists and has a valid name; else
    ValueError listing the available ones."""
    path = directory / f"{name}.yaml"
    if PROFILE_NAME.fullmatch(name) and path.is_file():
        return path
    known = available_profiles(directory)
    if path.is_file():
        why = "profile names are letters, digits, '-' and '_'"
        raise ValueError(f"{path}: {why}; rename it (available: {', '.join(known)})")
    raise ValueError(
        f"unknown profile {name!r}{_closest(name, known)}; "
        f"available: {', '.join(known) or '(none)'} in {directory}"
    )


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (YAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, list | dict):
                continue  # unhashable: the base class reports it
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None,
                    f"duplicate key {key!r} (first given on line {seen[key] + 1})",
                    key_node.start_mark,
                )  # fmt: skip
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def read_yaml(path: Path) -> Any:
    """The YAML document in ``path``; ValueError naming the file, line and column of a syntax
    error or a duplicate key (one line, not the parser's traceback)."""
    try:
        return yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 - safe loader
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        problem = " ".join(str(x) for x in (err.context, err.problem) if x)
        hint = " (YAML indents with spaces, never tabs)" if "\\t" in problem else ""
        raise ValueError(f"{where}: {problem}{hint}") from None
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from None


def _top_problems(raw: Any, path: Path) -> list[str]:
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    if not isinstance(raw.get("notebooks") or {}, dict):
        raise ValueError(f"{path}: 'notebooks' must map notebook names to entries")
    return [
        f"unknown top-level key {key!r}{_closest(str(key), _TOP_KEYS)}"
        for key in raw
        if key not in _TOP_KEYS
    ]


def _entry_problems(nb: str, entry: Any, entries: dict) -> tuple[dict, tuple, list[str]]:
    """``(params, depends_on, problems)`` of one notebook's entry (its shape and dependencies)."""
    where = f"notebook {nb!r}"
    if not isinstance(entry, dict):
        return {}, (), [f"{where}: entry must be a mapping with 'params'/'depends_on'"]
    problems = [
        f"{where}: unknown key {key!r}{_closest(str(key), _ENTRY_KEYS)}"
        for key in entry
        if key not in _ENTRY_KEYS
    ]
    params = entry.get("params") or {}
    deps = entry.get("depends_on") or []
    if not isinstance(params, dict):
        problems.append(f"{where}: 'params' must be a mapping")
        params = {}
    if isinstance(deps, str) or not isinstance(deps, list):
        problems.append(f"{where}: 'depends_on' must be a list of notebook names")
        deps = []
    problems += [f"{where}: depends on unknown notebook {d!r}" for d in deps if d not in entries]
    return params, tuple(deps), problems


def _param_problems(nb: str, params: dict, declared: dict[str, str], taken: dict) -> list[str]:
    """Names against the notebook's declared parameters, then values (:mod:`frpo.book.params`;
    the shared values it ``taken`` count in the cross rules, their own checks are
    :func:`_shared_problems`')."""
    from frpo.book.params import check_params

    where = f"notebook {nb!r}"
    missing = [p for p in INJECTED if p not in declared]
    problems = []
    if missing:
        problems.append(f"{where}: its `parameters` cell must declare {', '.join(missing)} "
                        "(the runner injects them)")  # fmt: skip
    for key in params:
        if key in INJECTED:
            problems.append(f"{where}: {key!r} is set by the runner, not the profile")
        elif key not in declared:
            hint = _closest(key, [d for d in declared if d not in INJECTED])
            problems.append(f"{where}: unknown parameter {key!r}{hint}")
    known = {k: v for k, v in params.items() if k in declared and k not in INJECTED}
    return problems + check_params(nb, known, declared, shared=taken)


def _notebook_spec(nb: str, entry: Any, entries: dict, ndir: Path, shared: dict, pdir: Path):
    """``(NotebookSpec, problems)`` of one entry of the profile; its params are the shared
    values it takes (:func:`taken_shared`) under its own, so the runner injects them (and its
    cache key covers them)."""
    params, deps, problems = _entry_problems(nb, entry or {}, entries)
    nb_path = ndir / f"{nb}.ipynb"
    declared: dict[str, str] = {}
    taken: dict[str, Any] = {}
    if not nb_path.is_file():
        problems.append(f"notebook {nb!r}: no notebook file {nb_path}")
    else:
        declared = declared_parameters(nb_path)
        taken = taken_shared(declared, params, shared, pdir)
        # a named default is no type to match: the shared value's rules check the value
        plain = {k: "None" if named_default(k, v, pdir) else v for k, v in declared.items()}
        problems += _param_problems(nb, params, plain, taken)
    merged = {**taken, **params}
    return NotebookSpec(nb, nb_path, merged, deps, declared, tuple(taken)), problems


def named_default(name: str, source: str, profiles_dir: Path | None = None) -> str | None:
    """The profile that parameter ``name``'s default names (``world = "toy"``: a named
    default), or None: the default must be a string naming a profile whose ``shared`` section
    has ``name`` (``profile = "toy"`` is a plain string: no profile shares a ``profile``)."""
    from frpo.book.params import literal

    value = literal(source)
    pdir = Path(profiles_dir) if profiles_dir else default_profiles_dir()
    if not (isinstance(value, str) and PROFILE_NAME.fullmatch(value)):
        return None
    path = pdir / f"{value}.yaml"
    return value if path.is_file() and name in _shared_section(path) else None


def _shared_section(path: Path) -> dict:
    """The ``shared`` section of the profile at ``path`` ({} when it has none)."""
    stat = path.stat()
    return _read_shared(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _read_shared(path: str, _size: int, _mtime: int) -> dict:
    raw = read_yaml(Path(path))
    section = raw.get(SHARED) if isinstance(raw, dict) else None
    return section if isinstance(section, dict) else {}


def taken_shared(declared: dict[str, str], own: dict, shared: dict, pdir: Path) -> dict:
    """The value of every parameter whose default is a named default and that the entry
    ``own`` does not set: the profile's ``shared`` value, else (a profile without it) the
    default's, the named profile's ``shared`` value, as a notebook run alone takes it."""
    values = {}
    for name, source in declared.items():
        named = None if name in own else named_default(name, source, pdir)
        if named is not None:
            values[name] = (
                shared[name] if name in shared else _shared_section(pdir / f"{named}.yaml")[name]
            )
    return values


def _shared_problems(shared: dict, specs: dict[str, NotebookSpec]) -> list[str]:
    """Each shared value checked once (its path: ``shared.<name>...``); a name no notebook takes
    is a problem (a typo, or a notebook that declares it with a literal default)."""
    from frpo.book.params import check_param

    takers = {name for spec in specs.values() for name in spec.shared}
    declared = {name for spec in specs.values() for name in spec.declared}
    problems = []
    for name, value in shared.items():
        if name in takers:
            problems += check_param(SHARED, name, value, "")
            continue
        why = "a notebook takes a shared value by defaulting the parameter to a profile's name"
        if name in declared:
            why += ", as no notebook here declares it (or its entry sets it)"
        else:
            why += _closest(str(name), declared - set(INJECTED))
        problems.append(f"{SHARED}.{name}: no notebook takes it ({why})")
    return problems


def shared_values(profiles_dir: Path | None = None, **values: Any) -> tuple:
    """The values of a notebook's shared parameters, in the order given: a named default (the
    string ``"toy"``) becomes that profile's ``shared`` value; any other value, such as the one
    ``frpo book run`` injected, is its own. A notebook's setup cell calls it, e.g.
    ``world, stage1 = shared_values(world=world, stage1=stage1)``."""
    pdir = Path(profiles_dir) if profiles_dir else default_profiles_dir()
    out = []
    for name, value in values.items():
        if isinstance(value, str):
            section = _shared_section(check_profile_name(value, pdir))
            if name not in section:
                raise ValueError(f"profile {value!r} has no {SHARED}.{name} ({pdir / value}.yaml)")
            value = copy.deepcopy(section[name])
        out.append(value)
    return tuple(out)


def _left_out(ndir: Path, entries: dict) -> list[str]:
    return [
        f"notebook {p.stem!r} ({p}) is not in this profile; "
        f"add an entry, even an empty one: `{p.stem}: {{}}`"
        for p in sorted(ndir.glob("[0-9]*.ipynb"))
        if p.stem not in entries
    ]


def load_profile(
    name: str, *, profiles_dir: Path | None = None, notebooks_dir: Path | None = None
) -> Profile:
    """Read and validate ``<profiles_dir>/<name>.yaml`` against the notebooks it names.

    Raises ValueError naming every problem found: an unknown profile, a YAML syntax error or a
    duplicate key (file, line, column), an unknown key, a missing notebook file, a notebook of
    ``notebooks_dir`` (``NN_*.ipynb``) the profile leaves out, an undeclared parameter (with the
    closest declared name), a parameter the runner injects, a value of the wrong type or out of
    range (its path, e.g. ``03_rlhf_safety.stage1.max_steps``, and what was expected: see
    :mod:`frpo.book.params`), an unknown dependency or a dependency cycle.
    """
    pdir = Path(profiles_dir) if profiles_dir else default_profiles_dir()
    ndir = Path(notebooks_dir) if notebooks_dir else default_notebooks_dir()
    path = check_profile_name(name, pdir)
    raw = read_yaml(path) or {}
    problems = _top_problems(raw, path)
    setup = str(raw.get("setup") or "")
    if setup and (":" not in setup or not all(setup.partition(":")[::2])):
        problems.append(f"setup {setup!r} must be 'package.module:function'")
    gpu = raw.get("gpu", True)
    if not isinstance(gpu, bool):
        problems.append(f"gpu must be true or false, got {gpu!r}")
    entries = raw.get("notebooks") or {}
    shared = raw.get(SHARED) or {}
    if not isinstance(shared, dict):
        problems.append(f"'{SHARED}' must map parameter names to values")
        shared = {}
    specs: dict[str, NotebookSpec] = {}
    for nb, entry in entries.items():
        specs[nb], found = _notebook_spec(str(nb), entry, entries, ndir, shared, pdir)
        problems += found
    problems += _shared_problems(shared, specs) + _left_out(ndir, entries)
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
        gpu=gpu is not False,
    )
