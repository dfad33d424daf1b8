"""The layout of frpo.stages: no import cycles, no imports hidden in functions, one registry."""

from __future__ import annotations

import ast
from pathlib import Path

from frpo.stages import sweep
from frpo.stages.spec import STAGES

PACKAGE = Path(__file__).resolve().parents[1] / "frpo"


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in PACKAGE.rglob("*.py")}


def _target(name: str) -> str | None:
    """The frpo module an imported name belongs to (``frpo.x.f`` -> ``frpo.x``)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> list[tuple[str, bool]]:
    """(frpo module, inside a function?) of every import statement of ``module``."""
    path = MODULES[module]
    out = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            names = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:  # relative: from the module's package, up level - 1
                    pkg = module.split(".")[: None if path.name == "__init__.py" else -1]
                    pkg = pkg[: len(pkg) - child.level + 1]
                    base = ".".join([*pkg, base] if base else pkg)
                names = [f"{base}.{a.name}" for a in child.names]
            for name in names:
                target = _target(name) if name.startswith("frpo") else None
                if target and target != module:
                    out.append((target, inside))
            visit(child, inside)

    visit(ast.parse(path.read_text()), False)
    return out


def test_frpo_has_no_import_cycles():
    """Every import counts, those inside functions too (a package's ``__init__`` importing its
    own submodules is not a cycle)."""
    graph = {m: {t for t, _ in _imports(m) if not m.startswith(t + ".")} for m in sorted(MODULES)}
    state: dict[str, int] = {}

    def visit(m: str, chain: list[str]) -> None:
        if state.get(m) == 2:
            return
        assert state.get(m) != 1, "import cycle: " + " -> ".join([*chain[chain.index(m) :], m])
        state[m] = 1
        for t in sorted(graph[m]):
            visit(t, [*chain, m])
        state[m] = 2

    for m in graph:
        visit(m, [])


def test_no_frpo_import_is_hidden_in_a_function_of_frpo_stages():
    hidden = [
        f"{m} imports {t} inside a function"
        for m in sorted(MODULES)
        if m.startswith("frpo.stages")
        for t, inside in _imports(m)
        if inside
    ]
    assert hidden == []


def test_every_stage_of_the_registry_has_its_runner_and_command_line():
    assert set(sweep.RUNNERS) == set(STAGES)
    for name, stage in STAGES.items():
        runner = sweep.RUNNERS[name]
        assert runner.__module__ == stage.module and runner.__name__ == stage.runner
        assert stage.spec.stage == name and stage.upstream in ("parent", "model")
        source = MODULES[stage.module].read_text()
        assert f"cli_main(argv, {stage.spec.__name__}, {stage.runner})" in source
