"""Small notebooks and profiles that follow the project's notebook conventions, for the book
tests (imported by tests/test_book_*.py; holds one sanity test of its own)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import yaml

# Executes in a few hundred milliseconds: a metrics file, one figure shown inline and saved as PNG.
ALPHA_BODY = """\
import json
import matplotlib
import matplotlib.pyplot as plt
from frpo.paths import resolve
run_dir = resolve(run_dir)
run_dir.mkdir(parents=True, exist_ok=True)
values = [scale * (seed + i) for i in range(n)]
json.dump({"fixture/total": sum(values), "fixture/n": n}, open(run_dir / "metrics.json", "w"))
fig, ax = plt.subplots(figsize=(3, 2))
ax.plot(values, marker="o")
ax.set_title("alpha")
fig.savefig(run_dir / "alpha.png")
plt.show()
"""

# Reads notebook 01's metrics (so it depends on it) and writes the profile's claims.json.
BETA_BODY = """\
import json
import matplotlib.pyplot as plt
from frpo.paths import resolve
run_dir = resolve(run_dir)
run_dir.mkdir(parents=True, exist_ok=True)
alpha = json.load(open(run_dir.parent / "01_alpha" / "metrics.json"))
if fail:
    raise RuntimeError("beta was told to fail")
claims = [
    {"id": "C1", "claim": "alpha total is positive", "paper": "> 0",
     "value": alpha["fixture/total"], "interval": [0.0, 2 * alpha["fixture/total"]],
     "seeds": [0, 1, 2], "verdict": "reproduced", "notebook": "01_alpha"},
    {"id": "C2", "claim": "beta agrees", "paper": 1.0, "value": 1.0, "interval": None,
     "seeds": 3, "verdict": "not tested", "notebook": "02_beta"},
]
json.dump(claims, open(run_dir.parent / "claims.json", "w"))
fig, ax = plt.subplots(figsize=(3, 1))
ax.plot([alpha["fixture/total"]], [0], "o")
fig.savefig(run_dir.parent / "claims_forest.png")
plt.close(fig)
for k in range(2):
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.bar(["a", "b"], [alpha["fixture/total"], k + 1])
    plt.show()
"""


def write_notebook(path: Path, title: str, params: str, body: str) -> Path:
    """A notebook: a title, a code cell tagged ``parameters`` and a body cell; no outputs."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    params_cell = nbformat.v4.new_code_cell(params)
    params_cell.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell(f"# {title}\n\nA fixture chapter."),
        params_cell,
        nbformat.v4.new_markdown_cell("## Result\n\nThe figure below comes from the body cell."),
        nbformat.v4.new_code_cell(body),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def make_fixture_repo(root: Path, *, alpha_scale: float = 1.0, beta_fail: bool = False) -> dict:
    """notebooks/, profiles/ (profile ``fix``) and runs/ under ``root``; returns their paths."""
    nbs, profs, runs = root / "notebooks", root / "profiles", root / "runs"
    write_notebook(
        nbs / "01_alpha.ipynb",
        "Alpha chapter",
        'profile = "toy"\nrun_dir = "runs/toy/01_alpha"\nseed = 0\nn = 3\nscale = 1.0\n',
        ALPHA_BODY,
    )
    write_notebook(
        nbs / "02_beta.ipynb",
        "Beta chapter",
        'profile = "toy"\nrun_dir = "runs/toy/02_beta"\nfail = False\n',
        BETA_BODY,
    )
    profs.mkdir(parents=True, exist_ok=True)
    profile = {
        "description": "fixture profile",
        "notebooks": {
            "02_beta": {"params": {"fail": beta_fail}, "depends_on": ["01_alpha"]},
            "01_alpha": {"params": {"n": 2, "scale": alpha_scale}},
        },
    }
    (profs / "fix.yaml").write_text(yaml.safe_dump(profile))
    return {"notebooks_dir": nbs, "profiles_dir": profs, "runs_root": runs}


def test_fixture_notebooks_follow_the_conventions(tmp_path):
    dirs = make_fixture_repo(tmp_path)
    for nb_path in sorted(dirs["notebooks_dir"].glob("*.ipynb")):
        nb = json.loads(nb_path.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert code[0]["metadata"]["tags"] == ["parameters"]
        assert all(not c["outputs"] for c in code)
        src = "".join(code[0]["source"])
        assert 'profile = "toy"' in src and "run_dir = " in src
