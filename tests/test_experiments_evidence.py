"""frpo.experiments.evidence: the one NaN policy (nan inside, None at the boundaries)."""

from __future__ import annotations

import json
import math

import numpy as np

from frpo.claims import load_evidence
from frpo.experiments import evidence

NAN = float("nan")


def test_interval_of_and_triple():
    assert evidence.interval_of((0.5, 0.1, 0.9)) == (0.1, 0.9)
    assert evidence.interval_of((0.5, NAN, NAN)) is None
    assert evidence.interval_of((0.5, 0.1, NAN)) is None  # half an interval is no interval
    assert evidence.interval_of(0.5) is None  # a bare number has none
    assert evidence.interval_of((0.5, 0.1, 0.9, 3)) == (0.1, 0.9)  # (mean, lo, hi, n)
    assert evidence.triple((np.float64(0.5), NAN, 2)) == [0.5, None, 2.0]


def test_jsonable_turns_every_nan_into_none():
    obj = {"a": NAN, "b": [1.0, NAN, (NAN, 2)], "c": {"d": np.float64(NAN), "e": np.int64(3)}}
    out = evidence.jsonable(obj)
    assert out == {"a": None, "b": [1.0, None, [None, 2]], "c": {"d": None, "e": 3}}
    assert type(out["c"]["e"]) is int
    assert evidence.jsonable(math.inf) == math.inf  # inf is a value (C4's lam = inf), not missing


def test_record_and_write_metrics(tmp_path):
    ev = evidence.record(tmp_path, "C1", (-0.01, -0.05, 0.03), 3, "worst lam")
    assert ev.value == -0.01 and ev.interval == (-0.05, 0.03) and ev.seeds == 3
    evidence.record(tmp_path, "C3", (0.2, NAN, NAN), 1, "one seed")
    evidence.record(tmp_path, "C4", 0.5, 3, "best lam", target=(0.1, 0.4))
    evidence.record(tmp_path, "C6.bias", (1.0, 1.0, 1.0), 1, "exact", exact=True)
    found = load_evidence(tmp_path.parent)
    assert found["C3"].interval is None and found["C3"].value == 0.2
    assert found["C4"].interval is None and found["C4"].target == (0.1, 0.4)
    assert found["C6.bias"].interval is None and found["C6.bias"].exact
    path = evidence.write_metrics(tmp_path, {"gap": [0.1, NAN, NAN], "n": np.int64(2)})
    assert json.loads(path.read_text()) == {"gap": [0.1, None, None], "n": 2}
    assert "NaN" not in path.read_text()
