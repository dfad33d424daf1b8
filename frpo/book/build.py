"""Assemble a profile's book and build it with Jupyter Book 1 (offline, no execution).

The build tree ``book/_build/<profile>/src`` holds the ``book/`` sources, the executed notebooks of
``runs/<profile>/notebooks/`` and the pages generated from ``runs/<profile>/`` (scoreboard,
reproducibility, ``_toc.yml``). ``jupyter-book build`` writes the HTML to
``book/_build/<profile>/_build/html`` (front page ``intro.html``; ``index.html`` redirects to it).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from frpo.artefacts import DamagedArtefact, file_sha256
from frpo.book import pages
from frpo.book.execute import profile_dir
from frpo.book.manifest import read_manifest
from frpo.book.profiles import load_profile
from frpo.paths import LOGS, repo_root

PROSE_PAGES = ("methods", "how-to-run")
"""Hand-written pages of ``book/`` listed under *About*, in this order."""


def default_book_dir() -> Path:
    return repo_root() / "book"


def executed_chapters(names: list[str], out_dir: Path) -> tuple[list[str], list[str]]:
    """Split notebook names into (executed successfully, missing) by the manifest; an executed
    copy that does not match the checksum recorded when it ran is a DamagedArtefact naming it
    and the command that re-executes it."""
    manifest = read_manifest(out_dir)
    done, missing = [], []
    for name in names:
        entry = manifest["notebooks"].get(name, {})
        path = out_dir / "notebooks" / f"{name}.ipynb"
        ok = entry.get("status") == "ok" and path.is_file()
        if ok and entry.get("sha256") != file_sha256(path):
            raise DamagedArtefact(
                f"{path} does not match the checksum recorded when it ran (damaged); re-execute "
                f"it with `frpo book run --profile {out_dir.name} --only {name.split('_')[0]}`"
            )
        (done if ok else missing).append(name)
    return done, missing


def chapter_copy(executed: Path, dest: Path) -> None:
    """Copy an executed notebook for the book, hiding its ``parameters`` cell (the notebook's
    defaults) so the chapter shows only the values it ran with (papermill's injected cell)."""
    nb = json.loads(Path(executed).read_text())
    injected = any(
        "injected-parameters" in c.get("metadata", {}).get("tags", []) for c in nb["cells"]
    )
    for cell in nb["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if injected and "parameters" in tags and "remove-cell" not in tags:
            cell["metadata"]["tags"] = [*tags, "remove-cell"]
    Path(dest).write_text(json.dumps(nb, indent=1))


def assemble(
    profile: str,
    *,
    book_dir: Path | None = None,
    runs_root: Path | None = None,
    build_root: Path | None = None,
    profiles_dir: Path | None = None,
    notebooks_dir: Path | None = None,
    allow_missing: bool = False,
) -> Path:
    """Write the build tree for ``profile`` and return its directory (``<build_root>/src``).

    Raises ValueError when a profile notebook has no successful execution (unless
    ``allow_missing``; then the front page lists what is missing) or when no notebook has one.
    """
    book_dir = Path(book_dir) if book_dir else default_book_dir()
    build_root = Path(build_root) if build_root else book_dir / "_build" / profile
    prof = load_profile(profile, profiles_dir=profiles_dir, notebooks_dir=notebooks_dir)
    out_dir = profile_dir(profile, runs_root)
    # reading order (NN_ file names), not execution order: 02 runs after 03 but reads before it
    chapters, missing = executed_chapters(sorted(prof.notebooks), out_dir)
    if missing and not allow_missing:
        raise ValueError(
            f"profile {profile!r}: not executed yet: {', '.join(missing)}; run "
            f"`frpo book run --profile {profile}` first (or build with --allow-missing)"
        )
    if not chapters:
        raise ValueError(f"profile {profile!r}: no executed notebook under {out_dir}")

    src = build_root / "src"
    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(
        book_dir, src, ignore=shutil.ignore_patterns("_build", "_toc.yml", ".ipynb_checkpoints")
    )
    (src / "notebooks").mkdir(exist_ok=True)
    for name in chapters:
        chapter_copy(out_dir / "notebooks" / f"{name}.ipynb", src / "notebooks" / f"{name}.ipynb")

    claims = pages.load_claims(out_dir / "claims.json")
    titles = {n: pages.notebook_title(src / "notebooks" / f"{n}.ipynb") for n in chapters}
    figure = None
    if claims is not None and (out_dir / pages.FOREST_FIGURE).is_file():
        shutil.copyfile(out_dir / pages.FOREST_FIGURE, src / pages.FOREST_FIGURE)
        figure = pages.FOREST_FIGURE
    board = pages.scoreboard_md(claims, chapters, profile, titles, figure)
    if missing:
        board += (
            "\n:::{note} Not in this build\n"
            f"These notebooks of the {profile} profile have not been executed: "
            f"{', '.join(missing)}.\n:::\n"
        )
    intro = src / "intro.md"
    intro.write_text(pages.fill(intro.read_text(), pages.SCOREBOARD_MARK, board, "intro.md"))
    repro = src / "reproducibility.md"
    body = pages.reproducibility_md(read_manifest(out_dir), chapters, profile)
    repro.write_text(pages.fill(repro.read_text(), pages.REPRO_MARK, body, "reproducibility.md"))
    methods = src / "methods.md"
    if methods.is_file() and pages.POWER_MARK in methods.read_text():
        from frpo.power import final_plan

        table = pages.power_md(final_plan())
        methods.write_text(pages.fill(methods.read_text(), pages.POWER_MARK, table, "methods.md"))
    (src / "_toc.yml").write_text(pages.toc_yaml(chapters, list(PROSE_PAGES)))
    return src


def jupyter_book_build(src: Path, build_root: Path, *, quiet: bool = True) -> Path:
    """Run ``jupyter-book build`` on ``src``; the HTML directory it wrote."""
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(src)]
    cmd += ["--path-output", str(build_root), "--builder", "html", "--all"]
    if quiet:
        cmd.append("-q")
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(
            f"jupyter-book build failed ({done.returncode}):\n{done.stdout[-4000:]}\n"
            f"{done.stderr[-4000:]}"
        )
    warnings = [ln for ln in done.stderr.splitlines() if "WARNING" in ln]
    for line in warnings:
        print(line, file=sys.stderr)
    return build_root / "_build" / "html"


def build_book(
    profile: str,
    *,
    book_dir: Path | None = None,
    runs_root: Path | None = None,
    build_root: Path | None = None,
    profiles_dir: Path | None = None,
    notebooks_dir: Path | None = None,
    allow_missing: bool = False,
) -> Path:
    """Assemble and build ``profile``'s book; returns the HTML directory."""
    book_dir = Path(book_dir) if book_dir else default_book_dir()
    build_root = Path(build_root) if build_root else book_dir / "_build" / profile
    src = assemble(
        profile,
        book_dir=book_dir,
        runs_root=runs_root,
        build_root=build_root,
        profiles_dir=profiles_dir,
        notebooks_dir=notebooks_dir,
        allow_missing=allow_missing,
    )
    html = jupyter_book_build(src, build_root)
    chapters = sorted(p.stem for p in (src / "notebooks").glob("*.ipynb"))
    copy_logs(profile_dir(profile, runs_root), chapters, html)
    return html


def copy_logs(out_dir: Path, chapters: list[str], html_dir: Path) -> None:
    """Copy each chapter's library logs (``runs/<profile>/<name>/logs/``, see
    :mod:`frpo.experiments.runs`) to ``<html>/<name>/logs/``, where the chapter's links
    (``../<name>/logs/<file>``) point."""
    for name in chapters:
        logs = Path(out_dir) / name / LOGS
        if logs.is_dir():
            dest = Path(html_dir) / name / LOGS
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(logs, dest)
