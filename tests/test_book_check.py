"""The book check's chapter rules on hand-made pages: library output in a chapter's outputs, a
chapter without a figure, a chapter that hides the parameters it ran with."""

from __future__ import annotations

import json
from html import escape

import pytest

from frpo.book.check import chapter_problems, log_lines

# Lines copied from executed toy notebooks before the runners were silenced.
LIBRARY_LINES = [
    "Loading weights: 100%|██████████| 38/38 [00:00<00:00, 32573.79it/s]",
    "Tokenizing train dataset:   0%|          | 0/96 [00:00<?, ? examples/s]",
    "Writing model shards: 100%|██████████| 1/1 [00:00<00:00, 658.14it/s]",
    "runs:   0%|          | 0/6 [00:00<?, ?it/s]",
    "/x/transformers/training_args.py:1541: FutureWarning: `gradient_checkpointing` is deprecated",
    '  warnings.warn(f"`{old}` is deprecated and will be removed in v6.", FutureWarning)',
    "/x/tqdm/auto.py:21: TqdmWarning: IProgress not found. Please update jupyter and ipywidgets.",
    "[IPKernelApp] WARNING | Kernel is running over TCP without encryption.",
    "WARNING: a library log record",
]
READER_LINES = [
    "stage-1 runs: 21 runs (0 built, 21 reused) in 0 s; library output: stage-1-runs.log",
    "C2.alpaca: -0.0083 [-0.0967, +0.0801] over 3 seeds",
    "coverage: 31/40 = 0.775 [0.625, 0.877]; per model: {'grpo': 0.8}",
    "  dataset  seed  common KL   FRPO   GRPO     gap  end gap",
    "kept >= predicted floor: 0.95 of runs (whole-response rho), 0.80 (per-token rho)",
    "Spearman(lam, safety change) = -0.310; warnings about noise are in the text",
]


@pytest.mark.parametrize("line", LIBRARY_LINES)
def test_library_lines_are_found(line):
    assert len(log_lines(line)) == 1


@pytest.mark.parametrize("line", READER_LINES)
def test_reader_lines_pass(line):
    assert log_lines(line) == []


def _chapter(tmp_path, outputs: str, images: int = 1, injected: bool = True):
    """A chapter page (MyST-NB's classes) and its executed notebook."""
    cells = [{"cell_type": "code", "metadata": {"tags": ["injected-parameters"]}, "outputs": []}]
    cells = cells if injected else []
    cells.append(
        {
            "cell_type": "code",
            "metadata": {},
            "outputs": [{"output_type": "display_data", "data": {"image/png": "x"}}] * images,
        }
    )
    nb = tmp_path / "nb.ipynb"
    nb.write_text(json.dumps({"cells": cells}))
    img = '<img src="../_images/a.png">' * images
    params = '<div class="cell tag_injected-parameters docutils container">p = 1</div>'
    html = tmp_path / "page.html"
    html.write_text(
        "<html><body><p>Loading weights is what the prose may say.</p>"
        + (params if injected else "")
        + '<div class="cell docutils container"><div class="cell_input">print(x)</div>'
        + '<div class="cell_output docutils container"><div class="output stream"><pre>'
        + escape(outputs)
        + f"</pre></div>{img}</div></div></body></html>"
    )
    return html, nb


def test_a_clean_chapter_passes(tmp_path):
    html, nb = _chapter(tmp_path, "C1: +0.0100 [-0.01, +0.03]")
    assert chapter_problems("03_x", html, nb) == []


def test_library_output_in_a_chapter_fails(tmp_path):
    html, nb = _chapter(tmp_path, "\n".join(["ok"] + LIBRARY_LINES))
    problems = chapter_problems("05_x", html, nb)
    assert problems[0] == (
        "chapter 05_x: library output in the page, progress bar: " + LIBRARY_LINES[0]
    )
    assert problems[-1] == "chapter 05_x: ... and 6 more library output lines"


def test_a_chapter_without_a_figure_or_its_parameters_fails(tmp_path):
    html, nb = _chapter(tmp_path, "numbers", images=0, injected=True)
    assert chapter_problems("04_x", html, nb) == ["chapter 04_x: no figure"]
    html, nb = _chapter(tmp_path, "numbers", images=1, injected=False)
    assert chapter_problems("04_x", html, nb) == []  # nothing injected: nothing to show
    html.write_text(html.read_text())
    nb_with = json.loads(nb.read_text())
    nb_with["cells"].insert(
        0, {"cell_type": "code", "metadata": {"tags": ["injected-parameters"]}, "outputs": []}
    )
    nb.write_text(json.dumps(nb_with))
    assert chapter_problems("04_x", html, nb) == [
        "chapter 04_x: the parameters it ran with (injected cell) are not shown"
    ]
