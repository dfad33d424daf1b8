"""notebooks/01_entropic_objective.ipynb runs end to end (papermill) and writes sane metrics."""

import os

# One BLAS thread, set before numpy loads: the problems are tiny and the CPU is shared.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import json
from pathlib import Path

import numpy as np
import pytest

papermill = pytest.importorskip("papermill")

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "01_entropic_objective.ipynb"


def test_notebook_01_runs_and_writes_metrics(tmp_path):
    run_dir = tmp_path / "nb01"
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(tmp_path / "out.ipynb"),
        parameters={
            "profile": "smoke",
            "run_dir": str(run_dir),
            "n_checks": 4,
            "check_rhos": [0.01, 0.1],
            "n_rho": 8,
            "loglinear_seeds": [0],
            "loglinear_lams": [0.3],
            "n_prompts": 6,
            "n_answers": 5,
            "dim": 3,
            "finetune_steps": 30,
            "worst_case_rhos": [0.01, 0.1],
            "adversarial_steps": 30,
        },
        kernel_name="python3",
        progress_bar=False,
    )
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["max_primal_dual_gap"] < 1e-5
    assert metrics["loglinear/max_grad_norm"] < 1e-6
    # lam* tracks std / sqrt(2 rho) within a few per cent at rho = 0.02 (Gaussian-like reward).
    for std, lam in metrics["lam_star_rho_0.02"].items():
        taylor = metrics["taylor_lambda_rho_0.02"][std]
        assert lam == pytest.approx(taylor, rel=0.05)
    # The flat policy loses more in the KL ball than the sharp one with the same mean.
    assert (
        metrics["sharp_flat/flat_worst_case_at_rho_0.1"]
        < metrics["sharp_flat/sharp_worst_case_at_rho_0.1"]
    )
    worst = np.array(metrics["loglinear/grpo/worst_case"], dtype=float)  # (n_rho, n_seeds)
    assert np.all(np.diff(worst[:, 0]) < 0)
    assert len(metrics["loglinear/frpo_lam0.3/kept_reward"]) == 3
    # Every point of the adversarial paths is one Q in the ball: at or above the worst case.
    assert metrics["loglinear/min_margin_above_worst_case"] >= -1e-9
    assert len(metrics["loglinear/frpo_lam0.3/kept_adversarial"]) == 3
    for name in [
        "primal_dual",
        "tilted_policy",
        "lambda_star",
        "sharp_vs_flat",
        "loglinear",
        "loglinear_adversarial",
    ]:
        assert (run_dir / f"{name}.png").is_file()
