"""Pages written at build time from ``runs/<profile>/`` files (never typed by hand):
the scoreboard on the front page, the reproducibility tables and the table of contents."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

CLAIM_KEYS = ("id", "claim", "paper", "value", "interval", "seeds", "verdict", "notebook")
SCOREBOARD_MARK = "<!-- frpo:scoreboard -->"
REPRO_MARK = "<!-- frpo:reproducibility -->"
POWER_MARK = "<!-- frpo:power -->"
FOREST_FIGURE = "claims_forest.png"
"""The scoreboard's forest plot, written by notebook 10 beside ``claims.json`` in
``runs/<profile>/`` and shown at the top of the front page's scoreboard."""


def _cell(value: Any) -> str:
    """A markdown table cell: numbers to 4 significant digits, pipes and newlines escaped."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_cell(v) for v in value) + "]"
    return str(value).replace("|", "\\|").replace("\n", " ")


def load_claims(path: Path) -> list[dict[str, Any]] | None:
    """The claims of ``claims.json`` (None when the file does not exist), each checked for the
    keys notebook 10 writes: id, claim, paper, value, interval, seeds, verdict, notebook."""
    path = Path(path)
    if not path.is_file():
        return None
    claims = json.loads(path.read_text())
    if not isinstance(claims, list):
        raise ValueError(f"{path}: expected a list of claims, got {type(claims).__name__}")
    for i, claim in enumerate(claims):
        if not isinstance(claim, dict):
            raise ValueError(f"{path}: claim #{i} is a {type(claim).__name__}, not a mapping")
        missing = [k for k in CLAIM_KEYS if k not in claim]
        if missing:
            raise ValueError(f"{path}: claim {claim.get('id', f'#{i}')!r} lacks {missing}")
    return claims


def chapter_for(reference: Any, chapters: list[str]) -> str | None:
    """The chapter a claim's ``notebook`` field points at (full name, file name or ``NN``)."""
    if not reference:
        return None
    stem = Path(str(reference)).stem
    if stem in chapters:
        return stem
    hits = [c for c in chapters if c.split("_", 1)[0] == stem.split("_", 1)[0]]
    return hits[0] if len(hits) == 1 else None


def notebook_title(path: Path) -> str:
    """The first ``# heading`` of a notebook's markdown cells, else its file name."""
    nb = json.loads(Path(path).read_text())
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        src = cell.get("source", "")
        for line in ("".join(src) if isinstance(src, list) else src).splitlines():
            if line.startswith("# "):
                return line[2:].strip()
    return Path(path).stem


def _value_text(value: Any, interval: Any) -> str:
    """``+0.012 [-0.03, 0.05]``: a signed value and its interval, when there is one."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        text = "n/a" if math.isnan(value) else f"{value:+.3g}"
    else:
        text = _cell(value)
    if isinstance(interval, list | tuple) and len(interval) == 2 and None not in interval:
        text += f" [{interval[0]:.3g}, {interval[1]:.3g}]"
    return text


def _reference_text(ref: dict | None) -> str:
    """``ref +0.01 [..]: consistent (p 0.4)``, or that the verdict changed, for one part."""
    if not ref or ref.get("ref_value") is None:
        return ""
    text = f"reference {_value_text(ref['ref_value'], ref.get('ref_interval'))}"
    if ref.get("consistent") is True:
        text += f", consistent with noise (p {ref['p']:.2g})" if ref.get("p") is not None else ""
    elif ref.get("consistent") is False:
        text += (
            f", **differs beyond noise (p {ref['p']:.2g})**"
            if ref.get("p") is not None
            else ", **differs (exact)**"
        )
    else:
        text += ", not testable"
    if ref.get("verdict_changed"):
        text += f"; **verdict changed (was {ref.get('ref_verdict')})**"
    return text


def _part_line(part: dict[str, Any], several: bool) -> str:
    """One part of the *Measured* cell: what, value [interval], rule, verdict, MDE, the paper's
    effect and reading, the secondary metric and the reference comparison."""
    value = _value_text(part.get("value"), part.get("interval"))
    bits = [f"needs {part['rule']}"] if part.get("rule") else []
    if several and part.get("verdict"):
        bits.append(str(part["verdict"]))
    if part.get("mde") is not None:
        bits.append(f"MDE {part['mde']:.2g}")
    if part.get("exact"):
        bits.append("exact")
    if part.get("paper_effect") is not None:
        bits.append(f"paper {part['paper_effect']:+.3g}")
    if part.get("reading"):
        bits.append(str(part["reading"]))
    line = f"{'• ' if several else ''}{_cell(part.get('what', part.get('key', '')))}: **{value}**"
    line += f" ({_cell('; '.join(bits))})" if bits else ""
    second = part.get("secondary")
    if second:
        shown = _value_text(second.get("value"), second.get("interval"))
        line += f"; {_cell(second.get('what', ''))}: {shown}"
    ref = _reference_text(part.get("reference"))
    return line + (f"; {_cell(ref)}" if ref else "")


def measured_cell(claim: dict[str, Any]) -> str:
    """The *Measured* cell of one claim: one line per part (``parts`` as notebook 10 writes them),
    else the claim's own value and interval."""
    parts = claim.get("parts") or []
    if not parts:
        return _value_text(claim["value"], claim["interval"])
    return "<br>".join(_part_line(part, len(parts) > 1) for part in parts)


def _reference_note(claims: list[dict[str, Any]]) -> list[str]:
    """A line on the reference build, and the parts whose verdict changed against it."""
    meta = next((c.get("reference") for c in claims if c.get("reference")), None)
    if not meta:
        return ["No reference build is shipped for this profile.", ""]
    machine = meta.get("machine") or {}
    changed = [
        p["key"]
        for c in claims
        for p in c.get("parts", [])
        if (p.get("reference") or {}).get("verdict_changed")
    ]
    differs = [
        p["key"]
        for c in claims
        for p in c.get("parts", [])
        if (p.get("reference") or {}).get("consistent") is False
    ]
    lines = [
        f"Each part is also compared with the **reference build** shipped in "
        f"`reference/{meta.get('profile')}.json` (commit `{str(meta.get('commit'))[:12]}`, "
        f"{machine.get('cpu', 'unknown CPU')}, {machine.get('cpu_count', '?')} cores): a Welch "
        "test from both intervals says whether the difference is larger than seed noise explains.",
        "",
    ]
    if changed or differs:
        lines += [
            ":::{warning} Differences from the reference build",
            f"Verdict changed: {', '.join(changed) or 'none'}. "
            f"Value differs beyond noise: {', '.join(differs) or 'none'}.",
            ":::",
            "",
        ]
    else:
        lines += ["Every verdict matches the reference build's.", ""]
    return lines


def scoreboard_md(
    claims: list[dict[str, Any]] | None,
    chapters: list[str],
    profile: str,
    titles: dict[str, str] | None = None,
    figure: str | None = None,
) -> str:
    """The front-page scoreboard: the forest plot (``figure``, a path relative to the front page),
    then a table with a link per claim to its chapter (link text: the chapter's title from
    ``titles``, else its name), or a visible notice when the claims have not been computed for
    this profile."""
    titles = titles or {}
    head = [
        "(scoreboard)=",
        "## Scoreboard",
        "",
        f"This build renders the **{profile}** profile: the executed notebooks and the files of "
        f"`runs/{profile}/`.",
        "",
    ]
    if claims is None:
        return "\n".join(
            [
                *head,
                ":::{warning} Scoreboard not yet computed",
                f"`runs/{profile}/claims.json` does not exist: notebook 10 (the claims scoreboard) "
                f"has not been executed for the **{profile}** profile. Run "
                f"`frpo book run --profile {profile}` and build again.",
                ":::",
                "",
            ]
        )
    if figure:
        head += [
            f"```{{figure}} {figure}",
            ":name: forest",
            ":alt: forest plot of every claim part",
            "",
            "Every measured part: estimate and 95% interval coloured by verdict, the rule's "
            "threshold (dashed), the paper's effect (diamond) and the reference build (grey), each "
            "row on its own scale.",
            "```",
            "",
        ]
    lines = [
        *head,
        f"Each row is one claim, checked at this profile's scale. *Measured* is this "
        f"reproduction's number for each part of the claim (from `runs/{profile}/claims.json`): "
        "what was measured, its mean with a 95% interval over seeds, the rule, fixed before "
        "the runs, that the part must meet, and its minimal detectable effect (MDE: the distance "
        "from the rule's threshold these seeds detect with 80% power). A part is *reproduced* "
        "when its whole interval lies on the claim's side of the rule, *contradicted* when it "
        "lies wholly on the other side, *inconclusive* when it straddles; an inconclusive part "
        "says whether the paper's effect, where the paper gives one, would have been seen. "
        "*Seeds* is how many independent runs the numbers rest on (seeds; fine-tuning settings "
        "for the sweep; 1 for an exact computation). Claims marked *(frpo extension)* are this "
        "package's, not the paper's.",
        "",
        *_reference_note(claims),
        "| Claim | Statement | Paper | Measured | Seeds | Verdict | Notebook |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in claims:
        target = chapter_for(c["notebook"], chapters)
        link = (
            f"[{_cell(titles.get(target, target))}](notebooks/{target}.ipynb)"
            if target
            else f"{_cell(c['notebook'])} (not in this build)"
        )
        seeds = c["seeds"]
        seeds = len(seeds) if isinstance(seeds, list | tuple) else seeds
        statement = _cell(c["claim"])
        if c.get("origin", "paper") != "paper":
            statement += f" *({_cell(c['origin'])})*"
        cells = [_cell(c["id"]), statement, _cell(c["paper"]), measured_cell(c)]
        cells += [_cell(seeds), f"**{_cell(c['verdict'])}**", link]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join([*lines, ""])


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return [*out, ""]


def _invocations_md(invocations: list[dict]) -> list[str]:
    """The recent ``frpo book run`` invocations: a cold run executes every notebook, a warm one
    reuses them all; their wall times are the build-time targets' measurements."""
    if not invocations:
        return []
    rows = [
        [
            inv.get("started_at"),
            inv.get("wall_s"),
            len(inv.get("executed", [])),
            len(inv.get("reused", [])),
            inv.get("jobs", 1),
            " ".join(inv.get("only", [])) or "all",
            inv.get("status"),
        ]
        for inv in reversed(invocations)
    ]
    header = ["Started (UTC)", "Wall time (s)", "Executed", "Reused", "Jobs", "Selection", "Status"]
    intro = (
        "Recent runs of `frpo book run` on this profile, newest first: a run that executed every "
        "notebook is a cold build, one that reused them all a warm rebuild. Jobs: notebooks "
        "allowed to execute at once (`--jobs`)."
    )
    return ["### Runs of the book", "", intro, "", *_table(header, rows)]


def reproducibility_md(manifest: dict, chapters: list[str], profile: str) -> str:
    """Environment, package versions and time per notebook, from ``manifest.json``."""
    env = manifest.get("environment") or {}
    nbs = manifest.get("notebooks", {})
    lines = [f"## Profile `{profile}`", ""]
    if not env:
        lines += ["No environment was recorded in the manifest.", ""]
    else:
        lines += ["### Hardware and platform", ""]
        lines += _table(
            ["Item", "Value"],
            [
                ["Python", env.get("python")],
                ["Platform", env.get("platform")],
                ["CPU", env.get("cpu")],
                ["CPU cores", env.get("cpu_count")],
                ["Memory (GiB)", env.get("memory_gib")],
                ["GPUs", "; ".join(env.get("gpus") or []) or "none"],
                ["CPU numerics", (env.get("numerics") or {}).get("mode", "not recorded")],
            ],
        )
        lines += ["### Package versions", ""]
        lines += _table(["Package", "Version"], sorted(env.get("packages", {}).items()))
    lines += ["### Time per notebook", ""]
    rows, total = [], 0.0
    for name in chapters:
        e = nbs.get(name, {})
        wall = e.get("wall_s")
        total += wall or 0.0
        key = (e.get("key") or "")[:12]
        rows.append([f"[{name}](notebooks/{name}.ipynb)", wall, e.get("finished_at"), key])
    rows.append(["**total**", total, "", ""])
    lines += _table(["Notebook", "Wall time (s)", "Finished (UTC)", "Cache key"], rows)
    lines += [
        "The total sums each notebook's own time; where notebooks ran at once (`--jobs`), a "
        "build's wall time (next table) is shorter.",
        "",
    ]
    lines += _invocations_md(manifest.get("invocations", []))
    lines += ["### Parameters", ""]
    for name in chapters:
        params = nbs.get(name, {}).get("params", {})
        lines += [f"`{name}`:", "", "```json", json.dumps(params, indent=1, sort_keys=True), "```"]
        lines += [""]
    return "\n".join(lines)


def power_md(plan: list[dict[str, Any]]) -> str:
    """The power analysis table of the methods page (rows of :func:`frpo.power.final_plan`): the
    seeds each stage planned, the seeds run, and the last stage's spread."""
    header = [
        "Part",
        "Family (metric)",
        "Seeds: pilot plan",
        "Seeds: interim plan",
        "Seeds run",
        "Interim SD",
        "Family SD (df)",
        "Planning SD",
        "Target MDE",
    ]
    rows = [
        [
            r["part"],
            f"{r['family']} ({r['metric']})",
            r.get("seeds_0"),
            r.get("seeds_1"),
            r["seeds"],
            r["pilot_sd"],
            f"{r['family_sd']:.3g} ({r['family_df']})",
            r["plan_sd"],
            r["target_mde"],
        ]
        for r in plan
    ]
    return "\n".join(_table(header, rows))


def fill(template: str, mark: str, content: str, page: str) -> str:
    """Replace the line ``mark`` of a source page by generated content."""
    if mark not in template:
        raise ValueError(f"book page {page} lacks the marker {mark}")
    return template.replace(mark, content)


def toc_yaml(chapters: list[str], pages: list[str]) -> str:
    """``_toc.yml``: the front page, the prose pages, one chapter per notebook, reproducibility."""
    parts = [
        {"caption": "About", "chapters": [{"file": p} for p in pages]},
        {"caption": "Notebooks", "chapters": [{"file": f"notebooks/{c}"} for c in chapters]},
        {"caption": "Reproducibility", "chapters": [{"file": "reproducibility"}]},
    ]
    toc = {"format": "jb-book", "root": "intro", "parts": parts}
    return "# Generated by frpo.book.build; do not edit.\n" + yaml.safe_dump(toc, sort_keys=False)
