"""A reference scoreboard shipped with the repository, and how a new build compares with it.

``reference/<profile>.json`` holds, for every claim part, the value, interval, seeds, degrees of
freedom and verdict of one build of the profile, with the commit and the machine that made it.
Notebook 10 compares its own scoreboard with it (:func:`annotate`), part by part:

- a two-sample Welch test of "same value" from the two estimates, each with the standard error
  behind its interval (:func:`frpo.stats.interval_se`) and its degrees of freedom
  (:func:`frpo.stats.compare_estimates`); ``consistent`` when the two-sided p-value is at least
  :data:`ALPHA`. Exact evidence on both sides is consistent when equal up to
  :data:`EXACT_RTOL` (floating point only). A side with neither an interval nor exactness cannot
  be tested (``consistent`` is None);
- ``verdict_changed`` when the two verdicts differ.

The two builds usually ran the same seeds on different machines, so their estimates are not
independent draws: the test treats them as independent, which makes it conservative (it flags
fewer differences than a paired test would). It asks whether a difference is larger than seed
noise can explain, which is what a reader who sees a changed number needs to know.

CLI: ``python -m frpo.reference write --profile toy`` writes ``reference/toy.json`` from
``runs/toy/claims.json`` (after reviewing the build), ``python -m frpo.reference show --profile
toy`` prints it.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import subprocess
import sys
from pathlib import Path

from frpo.paths import repo_root
from frpo.stats import compare_estimates, interval_se

REFERENCE_DIR = "reference"
ALPHA = 0.05
EXACT_RTOL = 1e-6
PART_FIELDS = ("value", "interval", "seeds", "df", "exact", "verdict")


def reference_path(profile: str, root: Path | None = None) -> Path:
    """``<repository>/reference/<profile>.json``."""
    return (root or repo_root()) / REFERENCE_DIR / f"{profile}.json"


def load_reference(profile: str, root: Path | None = None) -> dict | None:
    """The reference of ``profile`` (None when the repository has none for it); ValueError
    naming the file when it is not a reference."""
    path = reference_path(profile, root)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); restore it with git") from err
    if not isinstance(data, dict) or not isinstance(data.get("parts"), dict):
        raise ValueError(f"{path}: a reference holds a 'parts' mapping; restore it with git")
    return data


def make_reference(
    board: list[dict],
    *,
    profile: str,
    commit: str,
    machine: dict,
    notebook_wall_s: dict[str, float] | None = None,
) -> dict:
    """A reference from a scoreboard (:func:`frpo.claims.scoreboard` rows), with the seconds each
    notebook took in that build (``notebook_wall_s``: the book runner starts the longest first,
    :func:`frpo.book.execute.expected_walls`)."""
    parts = {
        p["key"]: {k: p.get(k) for k in PART_FIELDS}
        for row in board
        for p in row["parts"]
        if p.get("value") is not None
    }
    return {
        "profile": profile,
        "commit": commit,
        "machine": machine,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "parts": parts,
        "notebook_wall_s": dict(sorted((notebook_wall_s or {}).items())),
    }


def _se_df(part: dict) -> tuple[float, float] | None:
    """(standard error, degrees of freedom) of a part's estimate; (0, inf) when exact; None when
    it has no interval to read them from."""
    if part.get("exact"):
        return 0.0, math.inf
    interval = part.get("interval")
    if not interval or any(v is None or not math.isfinite(v) for v in interval):
        return None
    df = part.get("df")
    df = max(float(part.get("seeds", 1)) - 1, 1.0) if df is None else float(df)
    return interval_se(abs(interval[1] - interval[0]) / 2, df), df


def compare_part(now: dict, ref: dict) -> dict:
    """How one part of this build compares with the reference's (see the module docstring)."""
    out = {
        "ref_value": ref.get("value"),
        "ref_interval": ref.get("interval"),
        "ref_seeds": ref.get("seeds"),
        "ref_verdict": ref.get("verdict"),
        "verdict_changed": now.get("verdict") != ref.get("verdict"),
        "diff": None,
        "p": None,
        "consistent": None,
    }
    a, b = now.get("value"), ref.get("value")
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
        return out
    out["diff"] = a - b
    if now.get("exact") and ref.get("exact"):
        out["consistent"] = abs(a - b) <= EXACT_RTOL * max(1.0, abs(a), abs(b))
        return out
    sa, sb = _se_df(now), _se_df(ref)
    if sa is None or sb is None:
        return out
    _, p = compare_estimates(a, sa[0], sa[1], b, sb[0], sb[1])
    out["p"] = p
    out["consistent"] = p >= ALPHA
    return out


def annotate(board: list[dict], reference: dict | None) -> list[dict]:
    """The scoreboard with a ``reference`` entry on every part (None when the reference lacks
    the part or there is no reference), and ``reference`` (commit, machine) on each claim row."""
    parts = (reference or {}).get("parts", {})
    meta = None
    if reference is not None:
        meta = {k: reference.get(k) for k in ("profile", "commit", "machine", "created")}
    for row in board:
        row["reference"] = meta
        for part in row["parts"]:
            ref = parts.get(part["key"])
            part["reference"] = None if ref is None else compare_part(part, ref)
    return board


def _git_commit() -> str:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo_root(), capture_output=True, text=True
        )
    except OSError:
        return "unknown"
    return done.stdout.strip() or "unknown"


def _notebook_walls(manifest: Path) -> dict[str, float]:
    """Seconds of each notebook's last successful execution in a runs folder's manifest."""
    try:
        notebooks = json.loads(manifest.read_text()).get("notebooks", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return {
        name: round(float(e["wall_s"]), 1)
        for name, e in notebooks.items()
        if isinstance(e, dict) and e.get("status") == "ok" and e.get("wall_s")
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m frpo.reference", description=__doc__)
    parser.add_argument("command", choices=("write", "show"))
    parser.add_argument("--profile", default="toy")
    args = parser.parse_args(argv)
    if args.command == "show":
        ref = load_reference(args.profile)
        print(json.dumps(ref, indent=1) if ref else f"no reference for {args.profile!r}")
        return 0
    from frpo.book import envinfo
    from frpo.paths import runs_dir

    claims = runs_dir(args.profile) / "claims.json"
    if not claims.is_file():
        print(f"no {claims}: run `frpo book run --profile {args.profile}` first", file=sys.stderr)
        return 1
    env = envinfo.environment()
    machine = {k: env[k] for k in ("cpu", "cpu_count", "memory_gib", "platform", "gpus")}
    machine["torch"] = env["packages"].get("torch")
    ref = make_reference(
        json.loads(claims.read_text()),
        profile=args.profile,
        commit=_git_commit(),
        machine=machine,
        notebook_wall_s=_notebook_walls(runs_dir(args.profile) / "manifest.json"),
    )
    path = reference_path(args.profile)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(ref, indent=1, sort_keys=True) + "\n")
    print(f"wrote {path} ({len(ref['parts'])} parts, commit {ref['commit'][:12]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
