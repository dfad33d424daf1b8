"""Checks on a built book's HTML: internal links and images resolve, the scoreboard is on the
front page, every notebook chapter is present with at least one figure and as many images as its
executed notebook has image outputs, shows the parameters it ran with (papermill's injected cell),
and has no library progress bar or warning in its outputs (:func:`log_lines`). Standard library
only (``html.parser``)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from frpo.book.build import executed_chapters
from frpo.book.execute import profile_dir
from frpo.book.pages import FOREST_FIGURE, load_claims

IMAGE_MIMES = ("image/png", "image/jpeg", "image/svg+xml")
_SKIP_SCHEMES = ("http", "https", "mailto", "data", "javascript", "tel", "ftp")
OUTPUT_CLASS = "cell_output"
"""MyST-NB's class of a code cell's output area."""
INJECTED_CLASS = "tag_injected-parameters"
"""MyST-NB's class of papermill's injected parameters cell (a chapter must show it)."""
LOG_PATTERNS = {
    "progress bar": re.compile(r"\d+%\|.*\||\[\d+:\d\d<\d+:\d\d|\d (it|s|examples|ba)/s\]"),
    "library progress": re.compile(
        r"^\s*(Loading weights|Writing model shards|Tokenizing|Truncating|Building labels|"
        r"Dropping fully masked|Map|Filter|Generating \w+ split)\b"
    ),
    "warning": re.compile(r"\b[A-Z]\w*Warning:|warnings\.warn\(|^\s*(WARNING|ERROR)\b[:| ]"),
    "kernel log": re.compile(r"\[IPKernelApp\]|IPKernelApp\b"),
}
"""What library output looks like in a page: tqdm bars, transformers'/datasets' progress
descriptions, Python warnings (with their source line) and log records, the kernel's own log."""


class _Page(HTMLParser):
    """Collects link targets, image sources, element ids, classes, text and the text of code
    cell outputs of one page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.images: list[str] = []
        self.ids: set[str] = set()
        self.classes: set[str] = set()
        self.text: list[str] = []
        self.output_text: list[str] = []
        self._output_depth = 0  # > 0 inside a cell output's <div>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v for k, v in attrs if v is not None}
        if "id" in a:
            self.ids.add(a["id"])
        classes = a.get("class", "").split()
        self.classes.update(classes)
        if tag == "div" and (self._output_depth or OUTPUT_CLASS in classes):
            self._output_depth += 1
        if tag == "a" and "href" in a:
            self.links.append(a["href"])
        elif tag == "link" and a.get("rel") in ("stylesheet", "icon") and "href" in a:
            self.links.append(a["href"])
        elif tag == "img" and "src" in a:
            self.images.append(a["src"])
        elif tag == "script" and "src" in a:
            self.links.append(a["src"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self._output_depth:
            self._output_depth -= 1
            if not self._output_depth:
                self.output_text.append("\n")

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._output_depth:
            self.output_text.append(data)


def parse_page(path: Path) -> _Page:
    page = _Page()
    page.feed(Path(path).read_text(errors="replace"))
    return page


def _internal(url: str) -> bool:
    parts = urlsplit(url)
    return (not parts.scheme and not parts.netloc) or parts.scheme == "file"


def broken_references(html_dir: Path) -> list[str]:
    """``page: kind target`` for every internal link, image, script or stylesheet that does not
    resolve to a file, and every ``#fragment`` that names no element of its target page."""
    html_dir = Path(html_dir)
    pages = {
        p: parse_page(p)
        for p in html_dir.rglob("*.html")
        if not {"_sources", "_static"} & set(p.parts)
    }
    problems = []
    for path, page in sorted(pages.items()):
        rel = path.relative_to(html_dir)
        refs = [("link", u) for u in page.links] + [("image", u) for u in page.images]
        for kind, url in refs:
            if not url or not _internal(url):
                continue
            parts = urlsplit(url)
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if not target.exists():
                problems.append(f"{rel}: {kind} {url} does not resolve")
                continue
            if target.is_dir():
                target = target / "index.html"
            frag = unquote(parts.fragment)
            if frag and target.suffix == ".html" and target in pages:
                if frag not in pages[target].ids:
                    problems.append(f"{rel}: {kind} {url}: no element with id {frag!r}")
    return problems


def log_lines(text: str) -> list[str]:
    """``"<kind>: <line>"`` for each line of ``text`` that is library output
    (:data:`LOG_PATTERNS`)."""
    found = []
    for line in text.splitlines():
        for kind, pattern in LOG_PATTERNS.items():
            if pattern.search(line):
                found.append(f"{kind}: {line.strip()[:120]}")
                break
    return found


def has_injected_parameters(notebook: Path) -> bool:
    """Whether an executed notebook has papermill's injected parameters cell."""
    nb = json.loads(Path(notebook).read_text())
    return any("injected-parameters" in c.get("metadata", {}).get("tags", []) for c in nb["cells"])


def chapter_problems(name: str, html: Path, notebook: Path) -> list[str]:
    """What is wrong with one chapter page: fewer images than its notebook's image outputs, no
    figure at all, papermill's parameters cell not shown, library output in its outputs."""
    page = parse_page(html)
    problems = []
    want = image_outputs(notebook)
    have = len([s for s in page.images if _internal(s) or s.startswith("data:")])
    if have < want:
        problems.append(f"chapter {name}: {have} images on the page, notebook has {want}")
    if have == 0:
        problems.append(f"chapter {name}: no figure")
    if has_injected_parameters(notebook) and INJECTED_CLASS not in page.classes:
        problems.append(f"chapter {name}: the parameters it ran with (injected cell) are not shown")
    lines = log_lines("".join(page.output_text))
    for line in lines[:3]:
        problems.append(f"chapter {name}: library output in the page, {line}")
    if len(lines) > 3:
        problems.append(f"chapter {name}: ... and {len(lines) - 3} more library output lines")
    return problems


def image_outputs(notebook: Path) -> int:
    """How many image outputs an executed notebook holds (what its chapter must show)."""
    nb = json.loads(Path(notebook).read_text())
    count = 0
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            if any(m in out.get("data", {}) for m in IMAGE_MIMES):
                count += 1
    return count


def check_book(
    html_dir: Path,
    chapters: dict[str, Path],
    *,
    claims: list[dict] | None = None,
    front: str = "intro.html",
) -> list[str]:
    """All problems of a built book (empty when it is sound).

    ``chapters`` maps each notebook name to its executed notebook; its page must be
    ``notebooks/<name>.html`` and pass :func:`chapter_problems`.
    ``claims`` (the content of claims.json, or None when it is missing) fixes what the front
    page's scoreboard must show: a row per claim id, or the "not yet computed" notice.
    """
    html_dir = Path(html_dir)
    if not (html_dir / front).is_file():
        return [f"no front page {front} in {html_dir}"]
    page = parse_page(html_dir / front)
    problems = broken_references(html_dir)
    problems += scoreboard_problems(page, front, claims)
    for name, notebook in chapters.items():
        html = html_dir / "notebooks" / f"{name}.html"
        if not html.is_file():
            problems.append(f"chapter {name}: no page notebooks/{name}.html")
            continue
        problems += chapter_problems(name, html, notebook)
        if f"notebooks/{name}.html" not in " ".join(page.links):
            problems.append(f"{front}: no link to chapter {name}")
    return problems


def scoreboard_problems(page, front: str, claims: list[dict] | None) -> list[str]:
    """The front page's scoreboard: its section, a row per claim id and the forest plot, or
    the "not yet computed" notice when ``claims`` is None."""
    text = " ".join(" ".join(page.text).split())
    problems = []
    if "scoreboard" not in page.ids:
        problems.append(f"{front}: no scoreboard section (id 'scoreboard')")
    if claims is None:
        if "Scoreboard not yet computed" not in text:
            problems.append(f"{front}: claims missing but no 'not yet computed' notice")
        return problems
    for claim in claims:
        if str(claim["id"]) not in text:
            problems.append(f"{front}: scoreboard lacks claim {claim['id']!r}")
    if claims and not any(Path(s).name == FOREST_FIGURE for s in page.images):
        problems.append(f"{front}: the scoreboard has no forest plot ({FOREST_FIGURE})")
    return problems


def check_profile(
    profile: str,
    html_dir: Path | None = None,
    *,
    runs_root: Path | None = None,
    book_dir: Path | None = None,
    profiles_dir: Path | None = None,
    notebooks_dir: Path | None = None,
) -> list[str]:
    """``check_book`` for a built profile: the chapters are the profile's notebooks that the
    manifest records as executed, the claims those of ``runs/<profile>/claims.json``."""
    from frpo.book.build import default_book_dir
    from frpo.book.profiles import load_profile

    if html_dir is None:
        root = (Path(book_dir) if book_dir else default_book_dir()) / "_build" / profile
        html_dir = root / "_build" / "html"
    prof = load_profile(profile, profiles_dir=profiles_dir, notebooks_dir=notebooks_dir)
    out_dir = profile_dir(profile, runs_root)
    done, _ = executed_chapters(list(prof.notebooks), out_dir)
    chapters = {n: out_dir / "notebooks" / f"{n}.ipynb" for n in done}
    return check_book(html_dir, chapters, claims=load_claims(out_dir / "claims.json"))
